from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Moderation and operations"

    def ready(self) -> None:
        from generations.events import catalog_listener_add, provider_listener_add
        from generations.prompt_checks import prompt_check_add
        from moderation.blocklist import prompt_check
        from moderation.services import catalog_change_audit, provider_change_audit

        # Every new generation's prompt is checked against the blocklist; every pause and resume of
        # submissions to fal, by hand or by the studio, and every change to the catalog's overrides
        # (an endpoint marked gone by the studio included) is audited.
        prompt_check_add(prompt_check)
        provider_listener_add(provider_change_audit)
        catalog_listener_add(catalog_change_audit)
