"""Request and response shapes of the webhooks API (secrets appear only in the *Created* shapes)."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webhooks.models import EVENT_STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

EVENTS_HELP = ("statuses to send, any of: " + ", ".join(EVENT_STATUSES) + "; empty (the default) means all")
SECRET_HELP = "the signing secret; shown only in this response, so store it now"
PREFIX_HELP = "the visible start of the secret, to recognise it"


class EventField(serializers.ChoiceField):
    default_error_messages = {
        "invalid_choice": '"{input}" is not an event; allowed: ' + ", ".join(EVENT_STATUSES) + ".",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=EVENT_STATUSES, **kwargs)


class WebhookEndpointInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=1000, help_text="a public http(s) URL that accepts POSTed JSON")
    events = serializers.ListField(child=EventField(), required=False, default=list, help_text=EVENTS_HELP)
    is_active = serializers.BooleanField(required=False, default=True)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=EventField(), help_text=EVENTS_HELP)
    secret_prefix = serializers.CharField(read_only=True, help_text=PREFIX_HELP)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "is_active", "secret_prefix", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text=SECRET_HELP)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "url", "outcome", "http_status", "error", "response_excerpt", "duration_ms",
                  "started_at", "finished_at"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.id", read_only=True,
                                     help_text="sent as X-Studio-Webhook-Id; the same on every attempt")
    event_type = serializers.CharField(source="event.type", read_only=True,
                                       help_text='"generation.<status>" or "ping"')
    generation = serializers.UUIDField(source="event.generation_id", read_only=True, allow_null=True)
    endpoint = serializers.UUIDField(source="endpoint_id", read_only=True, allow_null=True,
                                     help_text="null for a delivery to the generation's own webhook_url")
    url = serializers.CharField(source="target_url", read_only=True)
    payload = serializers.JSONField(source="event.payload", read_only=True, help_text="the JSON body sent")
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "generation", "endpoint", "url", "status", "attempt_count",
                  "max_attempts", "next_attempt_at", "delivered_at", "created_at", "payload", "attempts"]
        read_only_fields = fields


class WebhookDeliveryFilterSerializer(serializers.Serializer):
    generation = serializers.UUIDField(required=False, help_text="only deliveries about this generation")
    endpoint = serializers.UUIDField(required=False, help_text="only deliveries to this endpoint")
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)


class JobWebhookSecretSerializer(serializers.Serializer):
    secret_prefix = serializers.CharField(allow_null=True, help_text=PREFIX_HELP + "; null until one exists")
    created_at = serializers.DateTimeField(allow_null=True)
    rotated_at = serializers.DateTimeField(allow_null=True)


class JobWebhookSecretCreatedSerializer(JobWebhookSecretSerializer):
    secret = serializers.CharField(help_text=SECRET_HELP)
