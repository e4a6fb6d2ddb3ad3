"""ProviderSwitch moves from the moderation app to generations (whether submissions to fal are
paused is the pipeline's state; moderators and the studio itself change it through generations'
services). Its rows stay: the table is renamed, and the model's content type is carried over, so
the permission `pause_provider` and every grant of it follow (now `generations.pause_provider`)."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CAUSES = [('account_locked', 'fal locked the account'),
          ('balance_exhausted', "the fal account's balance is exhausted"),
          ('bad_key', 'fal does not know the key (FAL_KEY)')]


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="generations", model="providerswitch").delete()  # a fresh one, if any
    ContentType.objects.filter(app_label="moderation", model="providerswitch").update(app_label="generations")


def move_content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="moderation", model="providerswitch").delete()
    ContentType.objects.filter(app_label="generations", model="providerswitch").update(app_label="moderation")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('generations', '0010_stream_slot'),
        ('moderation', '0003_provider_pause_cause'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ProviderSwitch',
                    fields=[
                        ('id', models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                        ('paused', models.BooleanField(default=False)),
                        ('reason', models.TextField(blank=True)),
                        ('cause', models.CharField(blank=True, choices=CAUSES, max_length=32,
                                                   help_text="set when the studio paused itself; empty for a "
                                                             "moderator's pause")),
                        ('changed_at', models.DateTimeField(blank=True, null=True)),
                        ('probed_at', models.DateTimeField(blank=True, null=True)),
                        ('probe_result', models.TextField(blank=True)),
                        ('changed_by', models.ForeignKey(blank=True, null=True,
                                                         on_delete=django.db.models.deletion.SET_NULL,
                                                         related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'provider switch',
                        'permissions': [('pause_provider', 'Can pause and resume submissions to fal')],
                        'db_table': 'moderation_providerswitch',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name='providerswitch', table=None),  # renames the table to generations_…
        migrations.RunPython(move_content_type, move_content_type_back),
    ]
