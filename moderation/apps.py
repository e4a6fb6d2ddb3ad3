from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Moderation and operations"

    def ready(self) -> None:
        # Every pause and resume of submissions to fal, by hand or by the studio, is audited.
        from generations.events import provider_listener_add
        from moderation.services import provider_change_audit

        provider_listener_add(provider_change_audit)
