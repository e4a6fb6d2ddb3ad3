"""Webhooks to integrators: endpoints, the events sent to them, deliveries and their attempts.

An event is written once, in the same transaction as the status change it reports (an outbox),
with its JSON body frozen at that moment. It gets one delivery per target — each matching active
endpoint of the owner, plus the generation's own `webhook_url` — unique per (event, target).
A delivery is pending until one attempt is answered with a 2xx (delivered) or its attempts run
out (failed); every attempt is recorded.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# The generation statuses integrators hear about; an endpoint's empty filter means all of them.
EVENT_STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
PING = "ping"
FAL_EVENT = "fal.completed"  # a gateway request's fal-style webhook (its body is fal's, not ours)
MAX_ATTEMPTS = 15  # with the backoff in services.retry_delay: about a day in all


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=1000)
    events = models.JSONField(default=list, blank=True, help_text="statuses to send; empty means all")
    # Kept in the clear: HMAC signing needs it. Shown to the owner only when created or rotated.
    secret = models.CharField(max_length=100, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret_prefix(self) -> str:
        return self.secret[:12]

    def wants(self, status: str) -> bool:
        return not self.events or status in self.events


class JobWebhookSecret(models.Model):
    """Signs deliveries to generations' own `webhook_url`s; one per user, created when first needed."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="job_webhook_secret")
    secret = models.CharField(max_length=100, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"job webhook secret of {self.owner}"

    @property
    def secret_prefix(self) -> str:
        return self.secret[:12]


class WebhookEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # sent as X-Studio-Webhook-Id
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=32)  # "generation.<status>" or "ping"
    generation = models.ForeignKey("generations.Generation", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="webhook_events")
    body = models.TextField(help_text="the exact JSON sent on every attempt")
    created_at = models.DateTimeField(default=timezone.now)  # also in the body, so set by the caller

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    # Either an endpoint (sent to its current URL) or, when null, the generation's own webhook_url in `url`.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="deliveries")
    url = models.URLField(max_length=1000, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=MAX_ATTEMPTS)
    # While pending: when the next attempt is due. A claimed attempt pushes it a lease ahead, so a
    # worker that dies mid-attempt leaves the delivery due again once the lease has run out.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a send task was last enqueued; the sweeper enqueues a due time once (see services).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"),
            models.UniqueConstraint(fields=["event"], condition=Q(endpoint__isnull=True),
                                    name="webhook_delivery_once_per_job_webhook"),
        ]
        indexes = [
            # The sweeper's scan: only pending rows, so it stays cheap as delivered ones pile up.
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.target_url} ({self.status})"

    @property
    def target_url(self) -> str:
        return self.endpoint.url if self.endpoint is not None else self.url  # no query when endpoint_id is NULL


class WebhookAttempt(models.Model):
    """One POST of a delivery, written before the request and completed after it."""

    class Outcome(models.TextChoices):
        SENDING = "sending"  # still "sending" long after `started_at`: the worker died mid-request
        SUCCEEDED = "succeeded"  # 2xx
        HTTP_ERROR = "http_error"  # any other status code (redirects are not followed)
        TIMEOUT = "timeout"
        NETWORK_ERROR = "network_error"  # connection refused or reset, DNS failure, TLS error, …
        BLOCKED = "blocked"  # the URL is not public: no connection was made
        INTERRUPTED = "interrupted"  # found still "sending" by a later attempt
        SKIPPED = "skipped"  # the endpoint had been deactivated: nothing was sent, the delivery failed

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=1000)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SENDING)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.outcome}"


class SigningKey(models.Model):
    """The gateway's Ed25519 webhook signing key when STUDIO_SIGNING_KEY is not set (development only)."""

    name = models.CharField(max_length=32, primary_key=True)
    private_key = models.CharField(max_length=100, editable=False, help_text="base64 of the raw 32-byte key")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"signing key {self.name}"
