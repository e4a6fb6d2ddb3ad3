"""ProviderSwitch now belongs to the generations app (generations/migrations/0011 took its table)."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('moderation', '0003_provider_pause_cause'),
        ('generations', '0011_providerswitch'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name='ProviderSwitch')],
                                            database_operations=[]),
    ]
