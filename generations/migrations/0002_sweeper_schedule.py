"""Schedule the once-a-minute sweeper (the safety net that restarts tracking if its chain died)."""
from django.db import migrations

SWEEPER = "generations.tasks.sweep_task"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        func=SWEEPER, defaults={"name": "generations sweeper", "schedule_type": "I", "minutes": 1, "repeats": -1}
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=SWEEPER).delete()


class Migration(migrations.Migration):
    dependencies = [("generations", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
