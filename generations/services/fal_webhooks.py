"""fal's webhooks to the studio, used only as a hint that a job finished (signed as fal_protocol/signature.py checks).

Each job is submitted with its own unguessable URL (`Generation.webhook_token`, see
`submit.fal_webhook_url`) when STUDIO_FAL_WEBHOOKS is on. A delivery is verified against fal's
JWKS (FAL_WEBHOOK_JWKS_URL, cached for a day and refetched once when a signature fails, so key
rotation works) within a five-minute timestamp window. Its payload is never trusted: the studio
reads the job's status from fal itself and applies that, exactly as the tracker would. Polling
stays the backstop, so a lost, late or repeated webhook changes nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from fal_protocol.client import FalError
from fal_protocol.signature import FalSignatureError, verify
from generations.models import Generation
from generations.services.submit import generation_attach_request
from generations.services.tracking import generation_apply_status
from generations.transitions import update_while
from generations.upstream import get_fal_client

log = logging.getLogger(__name__)
Status = Generation.Status
JWKS_CACHE_KEY = "fal-webhook-jwks"
JWKS_CACHE_SECONDS = 24 * 3600
JWKS_REFETCH_KEY = "fal-webhook-jwks-refetched"
JWKS_REFETCH_SECONDS = 60
JWKS_TIMEOUT_SECONDS = 5.0


class WebhookRejected(Exception):
    """Not a genuine, fresh webhook of fal's for this job; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def fal_webhook_receive(token: str, headers: Mapping[str, str], body: bytes) -> str:
    """Handle one delivery; returns what it did: "applied" (fal's fresh status was recorded),
    "due" (the tracker will look now) or "ignored" (the job is past tracking: a repeat).

    Raises WebhookRejected: 404 for an unknown token, 401 for a bad signature or a request id that
    is not this job's.
    """
    generation = Generation.objects.filter(webhook_token=token).first()
    if generation is None:
        raise WebhookRejected(404, "no such webhook")
    request_id = _verified_request_id(headers, body)
    if generation.fal_request_id and request_id != generation.fal_request_id:
        raise WebhookRejected(401, "the webhook is for another request")
    if generation.status not in (Status.SUBMITTING, Status.QUEUED, Status.RUNNING):
        return "ignored"
    if generation.status == Status.SUBMITTING or not generation.fal_status_url:
        # We never read fal's answer to the submit (a timeout, a reset, a crash), but fal's signed
        # webhook to this job's own URL names the request: attach it instead of failing the job as
        # `submit_unknown` and paying for a video nobody keeps.
        generation_attach_request(generation, request_id)
        return "due"
    try:
        fresh = get_fal_client().status(generation.fal_status_url, logs=True)
    except FalError as exc:
        log.info("status read after fal's webhook for %s failed (%s); the tracker will retry", generation.pk, exc)
        update_while(generation.pk, [Status.QUEUED, Status.RUNNING], next_poll_at=timezone.now())
        return "due"
    generation_apply_status(generation.pk, fresh)
    return "applied"


def _verified_request_id(headers: Mapping[str, str], body: bytes) -> str:
    try:
        return verify(headers, body, _jwks())
    except FalSignatureError as exc:
        failure = exc
        # fal may have rotated its keys since we cached them: refetch, at most once a minute.
        if cache.add(JWKS_REFETCH_KEY, True, JWKS_REFETCH_SECONDS):
            try:
                return verify(headers, body, _jwks(refresh=True))
            except FalSignatureError as again:
                failure = again
        raise WebhookRejected(401, f"signature check failed: {failure}") from None


def _jwks(*, refresh: bool = False) -> dict:
    jwks = None if refresh else cache.get(JWKS_CACHE_KEY)
    if jwks is None:
        try:
            response = httpx.get(settings.FAL_WEBHOOK_JWKS_URL, timeout=JWKS_TIMEOUT_SECONDS)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WebhookRejected(503, f"fal's public keys could not be fetched: {exc}") from None
        cache.set(JWKS_CACHE_KEY, jwks, JWKS_CACHE_SECONDS)
    return jwks
