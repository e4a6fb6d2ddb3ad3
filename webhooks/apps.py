from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every status change of a generation records its integrator webhooks (an outbox).
        from generations.events import status_listener_add
        from webhooks.services import webhook_events_for_generation

        status_listener_add(webhook_events_for_generation)
