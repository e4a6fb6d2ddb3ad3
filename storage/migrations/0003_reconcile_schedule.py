"""Schedule the daily storage reconcile report."""
from django.db import migrations

RECONCILE = "storage.tasks.storage_reconcile_task"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        func=RECONCILE, defaults={"name": "storage reconcile", "schedule_type": "D", "repeats": -1}
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=RECONCILE).delete()


class Migration(migrations.Migration):
    dependencies = [("storage", "0002_quotas"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
