"""The "moderator" group: review, hide, flag and suspend; no quota changes, refunds or API keys.

Superusers have every permission and need no group. Staff status (is_staff) is still needed to
enter the admin; give it to each moderator together with this group.
"""
from django.db import migrations

GROUP = "moderator"
PERMISSIONS = [
    ("generations", "generation", "view_generation"),
    ("generations", "generation", "moderate_generation"),
    ("generations", "generationattempt", "view_generationattempt"),
    ("generations", "generationevent", "view_generationevent"),
    ("generations", "project", "view_project"),
    ("auth", "user", "view_user"),
    ("storage", "userquota", "view_userquota"),
    ("moderation", "suspension", "suspend_user"),
    ("moderation", "suspension", "view_suspension"),
    ("moderation", "auditentry", "view_auditentry"),
    ("moderation", "videoreport", "view_videoreport"),
    ("moderation", "blockedterm", "view_blockedterm"),
    ("moderation", "blockedterm", "add_blockedterm"),
    ("moderation", "blockedterm", "change_blockedterm"),
]


def create_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # On a fresh database the permissions are only created after all migrations; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    permissions = []
    for app_label, model, codename in PERMISSIONS:
        permissions.append(Permission.objects.get(content_type__app_label=app_label, content_type__model=model,
                                                  codename=codename))
    group.permissions.set(permissions)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0001_initial"),
        ("generations", "0005_moderation_fields"),
        ("storage", "0003_reconcile_schedule"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
