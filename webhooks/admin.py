"""Read-only admin views of webhook endpoints, events and deliveries (changes go through the API)."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from core.admin_readonly import ReadOnlyAdmin
from webhooks.models import JobWebhookSecret, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    list_display = ["url", "owner", "events", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "owner__username"]
    exclude = ["secret"]
    readonly_fields = ["secret_prefix"]


@admin.register(JobWebhookSecret)
class JobWebhookSecretAdmin(ReadOnlyAdmin):
    list_display = ["owner", "secret_prefix", "created_at", "rotated_at"]
    exclude = ["secret"]
    readonly_fields = ["secret_prefix"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "url", "outcome", "http_status", "error", "response_excerpt", "duration_ms",
                       "started_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "event", "endpoint", "url", "status", "attempt_count", "next_attempt_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["id", "event__id", "url", "endpoint__url"]
    inlines = [WebhookAttemptInline]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "owner", "generation", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "generation__id", "owner__username"]
