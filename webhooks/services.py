"""Webhooks to integrators: endpoints, events, and at-least-once delivery with retries.

- Events are recorded by `webhook_events_for_generation` inside the status change's transaction
  (an outbox): the event, its frozen JSON body and one delivery per target commit with the new
  status or not at all, and a send task is enqueued for each delivery on commit.
- `webhook_delivery_send` (a django-q2 task, delivered at least once) claims the delivery's due
  attempt with a compare-and-set on its due time, so duplicate or stale runs send nothing. The
  attempt row commits before the POST. A 2xx delivers; anything else is retried after
  `retry_delay` (30 s doubling, capped at 4 h: 15 attempts over about 24 h), then the delivery
  fails. A URL that breaks the public-address rule fails at once (nothing is sent).
- Due retries are found by `webhook_deliveries_enqueue_due`, scheduled every minute; it enqueues
  each due time once (compare-and-set on `enqueued_at`), again only if that task looks lost.
- Redelivery happens only when asked (`webhook_delivery_redeliver`), never after a success.
- A gateway request's `?fal_webhook=` URL gets fal's webhook body once the job ends, signed the
  way fal signs (Ed25519, `X-Fal-Webhook-*`) with the studio's key; its JWKS is public at
  `/fal/.well-known/jwks.json`. Same outbox, same retries (`FAL_MAX_ATTEMPTS` of them).
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, When
from django.utils import timezone

from core.netguard import HostNotFound, UnsafeURL, check_webhook_url, read_at_most, safe_stream
from fal_protocol import signature as fal_signature
from generations.models import Generation
from generations.payloads import generation_payload, webhook_body
from generations.queue import enqueue_on_commit
from webhooks.models import (
    EVENT_STATUSES,
    FAL_EVENT,
    PING,
    JobWebhookSecret,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.signing import new_secret, signature_headers
from webhooks.signing_keys import studio_signing_key

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
Outcome = WebhookAttempt.Outcome

SEND_TASK = "webhooks.tasks.webhook_delivery_send_task"
SEND_TIMEOUT_SECONDS = 10.0
# Longer than any attempt can take (connect + write + read timeouts and the excerpt read).
CLAIM_LEASE = timedelta(seconds=60)
# A due delivery whose send task has not claimed it this long after the enqueue is enqueued again.
REENQUEUE_AFTER = timedelta(minutes=5)
SWEEP_BATCH = 500
EXCERPT_BYTES = 500
MAX_ENDPOINTS_PER_USER = 20
USER_AGENT = "LTX-Studio-Webhooks/1"
FAL_MAX_ATTEMPTS = 10  # fal retries its webhooks 10 times
ENDPOINT_SECRET_PREFIX = "whsec"
JOB_SECRET_PREFIX = "whjob"


class WebhookFieldError(Exception):
    """A field of an endpoint is not acceptable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class EndpointInactive(Exception):
    """The endpoint is deactivated, so nothing is sent to it."""


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1-based): 30 s doubling, at most 4 h."""
    return timedelta(seconds=min(30 * 2 ** (attempt - 1), 4 * 3600))


# --- reads (every user-facing read is scoped to its owner) -------------------------------------------

def webhook_endpoints_for(user: User) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=user)


def webhook_deliveries_for(user: User) -> QuerySet[WebhookDelivery]:
    return _with_details(WebhookDelivery.objects.filter(event__owner=user))


def _with_details(deliveries: QuerySet[WebhookDelivery]) -> QuerySet[WebhookDelivery]:
    return deliveries.select_related("event", "endpoint").prefetch_related("attempts")


# --- endpoints and secrets ------------------------------------------------------------------------------

def _clean_url(url: str) -> str:
    try:
        return check_webhook_url(url)
    except UnsafeURL as exc:
        raise WebhookFieldError("url", str(exc)) from exc


def _clean_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_STATUSES))
    if unknown:
        raise WebhookFieldError("events", f"unknown event {', '.join(unknown)}; allowed: {', '.join(EVENT_STATUSES)} "
                                          "(or none, for all)")
    return [status for status in EVENT_STATUSES if status in events]


def webhook_endpoint_create(*, owner: User, url: str, events: Sequence[str] = (),
                            is_active: bool = True) -> WebhookEndpoint:
    """Create an endpoint with a new random secret (the caller shows `endpoint.secret` once).

    Raises WebhookFieldError for a URL that is not public http(s), an unknown event, or too many endpoints.
    """
    url, events = _clean_url(url), _clean_events(events)
    if WebhookEndpoint.objects.filter(owner=owner).count() >= MAX_ENDPOINTS_PER_USER:
        raise WebhookFieldError("url", f"you already have {MAX_ENDPOINTS_PER_USER} webhook endpoints; delete one first")
    return WebhookEndpoint.objects.create(owner=owner, url=url, events=events, is_active=is_active,
                                          secret=new_secret(ENDPOINT_SECRET_PREFIX))


def webhook_endpoint_update(endpoint: WebhookEndpoint, *, url: str | None = None, events: Sequence[str] | None = None,
                            is_active: bool | None = None) -> WebhookEndpoint:
    """Change the given fields (None leaves a field as it is). Raises WebhookFieldError like create.

    Deliveries still pending go to the endpoint's URL as it is when they are attempted.
    """
    if url is not None:
        endpoint.url = _clean_url(url)
    if events is not None:
        endpoint.events = _clean_events(events)
    if is_active is not None:
        endpoint.is_active = is_active
    endpoint.save(update_fields=["url", "events", "is_active", "updated_at"])
    return endpoint


def webhook_endpoint_rotate_secret(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Replace the endpoint's secret at once: every later attempt, retries included, is signed with the new one."""
    endpoint.secret = new_secret(ENDPOINT_SECRET_PREFIX)
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


def webhook_endpoint_delete(endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint with its deliveries and their attempts (pending ones are never sent)."""
    endpoint.delete()


def job_webhook_secret_for(*, owner_id: int) -> JobWebhookSecret:
    """The owner's secret for generations' own webhook URLs, created on first use (race-safe)."""
    secret, _ = JobWebhookSecret.objects.get_or_create(owner_id=owner_id,
                                                       defaults={"secret": new_secret(JOB_SECRET_PREFIX)})
    return secret


def job_webhook_secret_rotate(*, owner_id: int) -> JobWebhookSecret:
    """Replace (or create) the owner's job webhook secret; the caller shows `.secret` once."""
    job_secret = job_webhook_secret_for(owner_id=owner_id)
    job_secret.secret = new_secret(JOB_SECRET_PREFIX)
    job_secret.rotated_at = timezone.now()
    job_secret.save(update_fields=["secret", "rotated_at"])
    return job_secret


# --- events -------------------------------------------------------------------------------------------

def _generation_data(generation: Generation) -> dict[str, Any]:
    """What the REST API returns for `generation` (absolute media links from STUDIO_BASE_URL)."""
    return generation_payload(generation)


def _event_create(*, owner_id: int, type: str, generation: Generation | None, data: dict[str, Any]) -> WebhookEvent:
    event_id, now = uuid.uuid4(), timezone.now()
    body = json.dumps({"id": str(event_id), "type": type, "created_at": now.isoformat().replace("+00:00", "Z"),
                       "data": data}, cls=DjangoJSONEncoder, separators=(",", ":"))
    return WebhookEvent.objects.create(id=event_id, owner_id=owner_id, type=type, generation=generation, body=body,
                                       created_at=now)


def webhook_events_for_generation(generation: Generation) -> None:
    """Record the event for `generation`'s new status and one delivery per target; enqueue sends on commit.

    Targets: the owner's active endpoints whose filter includes the status, and the generation's
    own `webhook_url` (all five statuses). Other statuses (pending, submitting, storing, …) are not
    events. A gateway request's `fal_webhook_url` gets one fal-style event when the job ends. Call
    inside the status change's transaction, with the freshly read row, so the body shows that
    moment. Never raises.
    """
    status = generation.status
    if status not in EVENT_STATUSES:
        return
    try:
        # A savepoint, and no exception escapes: a webhook fault must never undo or block the
        # status change it reports.
        with transaction.atomic():
            deliveries = _studio_deliveries(generation) + _fal_deliveries(generation)
            WebhookDelivery.objects.bulk_create(deliveries)
    except Exception:
        logger.exception("could not record the webhook event for generation %s (%s)", generation.pk, status)
        return
    for delivery in deliveries:
        enqueue_on_commit(SEND_TASK, str(delivery.pk))


def _studio_deliveries(generation: Generation) -> list[WebhookDelivery]:
    endpoints = [endpoint for endpoint in WebhookEndpoint.objects.filter(owner_id=generation.owner_id, is_active=True)
                 if endpoint.wants(generation.status)]
    if not endpoints and not generation.webhook_url:
        return []
    event = _event_create(owner_id=generation.owner_id, type=f"generation.{generation.status}", generation=generation,
                          data=_generation_data(generation))
    now = event.created_at
    deliveries = [WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now, enqueued_at=now)
                  for endpoint in endpoints]
    if generation.webhook_url:
        deliveries.append(WebhookDelivery(event=event, url=generation.webhook_url, next_attempt_at=now,
                                          enqueued_at=now))
    return deliveries


def _fal_deliveries(generation: Generation) -> list[WebhookDelivery]:
    if not generation.fal_webhook_url or generation.status not in Generation.TERMINAL:
        return []
    body = json.dumps(webhook_body(generation), cls=DjangoJSONEncoder, separators=(",", ":"))
    event = WebhookEvent.objects.create(owner_id=generation.owner_id, type=FAL_EVENT, generation=generation, body=body)
    now = event.created_at
    return [WebhookDelivery(event=event, url=generation.fal_webhook_url, max_attempts=FAL_MAX_ATTEMPTS,
                            next_attempt_at=now, enqueued_at=now)]


def webhook_ping(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `ping` event to `endpoint` now: one attempt, no retries, enqueued on commit.

    Raises EndpointInactive for a deactivated endpoint.
    """
    if not endpoint.is_active:
        raise EndpointInactive("the endpoint is inactive; activate it before pinging it")
    with transaction.atomic():
        event = _event_create(owner_id=endpoint.owner_id, type=PING, generation=None, data={
            "endpoint": {"id": str(endpoint.pk), "url": endpoint.url, "events": endpoint.events},
            "message": "A test ping from LTX Studio.",
        })
        delivery = WebhookDelivery.objects.create(event=event, endpoint=endpoint, max_attempts=1,
                                                  next_attempt_at=event.created_at, enqueued_at=event.created_at)
        enqueue_on_commit(SEND_TASK, str(delivery.pk))
    return delivery


# --- delivery -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttemptResult:
    outcome: str
    http_status: int | None = None
    error: str = ""
    response_excerpt: str = ""


def webhook_delivery_send(pk: uuid.UUID | str) -> None:
    """Make delivery `pk`'s due attempt, if it is still due; record it and decide what comes next.

    At-least-once safe: the claim is a compare-and-set on the due time, so a duplicate or stale
    run finds nothing to do. Runs outside any transaction (the attempt row commits before the
    POST). The receiver's failures are recorded, never raised.
    """
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(pk=pk, status=Status.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + CLAIM_LEASE, attempt_count=F("attempt_count") + 1, updated_at=now)
    if not claimed:
        return
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=pk)
    number = delivery.attempt_count
    # An earlier attempt still "sending" belongs to a worker that died (its lease ran out).
    delivery.attempts.filter(outcome=Outcome.SENDING, number__lt=number).update(
        outcome=Outcome.INTERRUPTED, finished_at=now)
    attempt = WebhookAttempt.objects.create(delivery=delivery, number=number, url=delivery.target_url)
    started = time.monotonic()
    if delivery.endpoint is not None and not delivery.endpoint.is_active:
        result = AttemptResult(Outcome.SKIPPED, error="the endpoint is inactive")
    else:
        result = _post(delivery.target_url, _signature_headers(delivery), delivery.event)
    WebhookAttempt.objects.filter(pk=attempt.pk).update(
        outcome=result.outcome, http_status=result.http_status, error=result.error[:500],
        response_excerpt=result.response_excerpt[:500], duration_ms=round((time.monotonic() - started) * 1000),
        finished_at=timezone.now())
    _after_attempt(delivery, number, result)


def _signature_headers(delivery: WebhookDelivery) -> dict[str, str]:
    event, body = delivery.event, delivery.event.body.encode()
    if event.type == FAL_EVENT:
        return fal_signature.signature_headers(studio_signing_key(), request_id=str(event.generation_id),
                                               user_id=str(event.owner_id), body=body)
    if delivery.endpoint is not None:
        secret = delivery.endpoint.secret
    else:
        secret = job_webhook_secret_for(owner_id=event.owner_id).secret
    return signature_headers(secret, str(event.pk), body)


def _post(url: str, signature: dict[str, str], event: WebhookEvent) -> AttemptResult:
    body = event.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signature}
    try:
        with safe_stream("POST", url, content=body, headers=headers, timeout=SEND_TIMEOUT_SECONDS) as response:
            try:
                excerpt = read_at_most(response, EXCERPT_BYTES, deadline_seconds=SEND_TIMEOUT_SECONDS)
            except httpx.HTTPError:
                excerpt = b""  # the status line is what counts
    except HostNotFound as exc:
        return AttemptResult(Outcome.NETWORK_ERROR, error=str(exc))
    except UnsafeURL as exc:
        return AttemptResult(Outcome.BLOCKED, error=f"{exc}; webhooks are sent only to public addresses")
    except httpx.TimeoutException:
        return AttemptResult(Outcome.TIMEOUT, error=f"no answer within {SEND_TIMEOUT_SECONDS:g} s")
    except httpx.HTTPError as exc:
        return AttemptResult(Outcome.NETWORK_ERROR, error=f"{type(exc).__name__}: {exc}")
    text = excerpt.decode("utf-8", "replace")
    if response.is_success:
        return AttemptResult(Outcome.SUCCEEDED, response.status_code, response_excerpt=text)
    error = f"HTTP {response.status_code}"
    if response.is_redirect:
        error += f": redirects are not followed (to {response.headers.get('location', '?')})"
    return AttemptResult(Outcome.HTTP_ERROR, response.status_code, error=error, response_excerpt=text)


def _after_attempt(delivery: WebhookDelivery, number: int, result: AttemptResult) -> None:
    now = timezone.now()
    if result.outcome == Outcome.SUCCEEDED:
        # Any 2xx delivers, even from an attempt overtaken by a redeliver: the receiver has the event.
        WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=Status.DELIVERED).update(
            status=Status.DELIVERED, delivered_at=now, next_attempt_at=None, updated_at=now)
        return
    # Only the latest attempt decides what happens next (a redeliver may have started a newer one).
    latest = WebhookDelivery.objects.filter(pk=delivery.pk, status=Status.PENDING, attempt_count=number)
    retry_pointless = result.outcome in (Outcome.BLOCKED, Outcome.SKIPPED)
    if retry_pointless or number >= delivery.max_attempts:
        latest.update(status=Status.FAILED, next_attempt_at=None, updated_at=now)
    else:
        latest.update(next_attempt_at=now + retry_delay(number), updated_at=now)


def webhook_deliveries_enqueue_due(*, limit: int = SWEEP_BATCH) -> int:
    """Enqueue a send for each pending delivery whose attempt is due; returns how many were enqueued.

    A due time is enqueued once: a compare-and-set on (due time, last enqueue) stamps `enqueued_at`,
    so concurrent or repeated sweeps do not pile up tasks. A delivery still due `REENQUEUE_AFTER`
    after its enqueue (the task was lost) is enqueued again. Runs its own transaction.
    """
    now = timezone.now()
    due = (WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
           .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=F("next_attempt_at"))
                   | Q(enqueued_at__lt=now - REENQUEUE_AFTER))
           .order_by("next_attempt_at").values_list("pk", "next_attempt_at", "enqueued_at")[:limit])
    enqueued = 0
    with transaction.atomic():
        for pk, due_at, enqueued_at in due:
            if WebhookDelivery.objects.filter(pk=pk, status=Status.PENDING, next_attempt_at=due_at,
                                              enqueued_at=enqueued_at).update(enqueued_at=now) == 1:
                enqueue_on_commit(SEND_TASK, str(pk))
                enqueued += 1
    return enqueued


def webhook_delivery_redeliver(delivery: WebhookDelivery) -> WebhookDelivery:
    """Make one more attempt at `delivery` now, whatever its status; the send is enqueued on commit.

    A delivered or failed delivery gets exactly one attempt (no retries after it); a pending one
    keeps its remaining retries. Raises EndpointInactive for a deactivated endpoint.
    """
    if delivery.endpoint is not None and not delivery.endpoint.is_active:
        raise EndpointInactive("the endpoint is inactive; activate it before redelivering to it")
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.PENDING, next_attempt_at=now, enqueued_at=now, updated_at=now,
            max_attempts=Case(When(status=Status.PENDING, then=F("max_attempts")), default=F("attempt_count") + 1))
        enqueue_on_commit(SEND_TASK, str(delivery.pk))
    return _with_details(WebhookDelivery.objects.all()).get(pk=delivery.pk)
