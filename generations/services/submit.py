"""Submitting a generation to fal: the one step that cannot be undone (shared style.md §3.4)."""
from __future__ import annotations

import base64
import dataclasses
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from generations import ltx
from generations.fal import FalAmbiguous, FalRejected, FalSubmission, FalUnavailable, describe_detail
from generations.media_links import absolute_url
from generations.models import Generation, GenerationAttempt
from generations.queue import enqueue_on_commit
from generations.services.attempts import attempt_finish, attempt_start
from generations.services.lease import tracker_ensure
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client
from moderation.switch import provider_is_paused

log = logging.getLogger(__name__)
Status = Generation.Status
# How often a submit whose outcome is unknown is looked at again before its grace period ends.
AMBIGUOUS_RECHECK = timedelta(seconds=30)


def submit_lease() -> timedelta:
    """Longer than any submit call can take, so a SUBMITTING row past it was abandoned."""
    return timedelta(seconds=settings.FAL_CONNECT_TIMEOUT + settings.FAL_READ_TIMEOUT + 30)


def retry_backoff(attempt: int, retry_after: float | None = None) -> timedelta:
    seconds = min(2.0 ** attempt, 60.0)
    return timedelta(seconds=max(seconds, retry_after or 0.0))


def fal_webhook_url(generation: Generation) -> str:
    """The job's own webhook URL handed to fal at submit ("" when STUDIO_FAL_WEBHOOKS is off);
    deliveries are handled by `fal_webhooks.fal_webhook_receive`."""
    if not settings.STUDIO_FAL_WEBHOOKS:
        return ""
    return absolute_url(reverse("fal-webhook", args=[generation.webhook_token]))


def generation_submit(pk: uuid.UUID | str) -> None:
    """Send a PENDING generation to fal once.

    Idempotent: only the caller that claims PENDING → SUBMITTING sends anything. The attempt row is
    committed before the POST, so a crash mid-call is visible to `generation_resolve_submitting`.
    Rejected → FAILED; unavailable → back to PENDING with backoff (FAILED after
    STUDIO_MAX_SUBMIT_ATTEMPTS); ambiguous → stays SUBMITTING, never resent blindly.
    Runs without an open transaction (network I/O); call outside `atomic`. While the provider is
    paused (moderation.switch) the job is moved to HELD instead, to be submitted on resume.
    """
    now = timezone.now()
    if provider_is_paused():
        transition(pk, from_=[Status.PENDING], to=Status.HELD, next_poll_at=None)
        return
    if not transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING,
                      submit_attempts=F("submit_attempts") + 1, next_poll_at=now + submit_lease()):
        return
    generation = Generation.objects.get(pk=pk)
    spec = ltx.MODELS[generation.model_id]
    try:
        payload = _payload_for_fal(generation)
    except (FalRejected, FalUnavailable) as exc:
        # Nothing was submitted: a failed upload is retried like an unavailable submit, or ends the job.
        if isinstance(exc, FalRejected):
            transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                       error_message=f"fal refused the start image upload: {describe_detail(exc.detail)}")
        else:
            _retry_or_fail(generation, exc)
        return
    except OSError as exc:  # the stored start image could not be read; storage errors are worth retrying
        log.warning("start image of %s unreadable: %s", pk, exc)
        _retry_or_fail(generation, FalUnavailable(f"the stored start image could not be read: {exc}"))
        return
    attempt = attempt_start(generation, GenerationAttempt.Kind.SUBMIT, number=generation.submit_attempts)
    try:
        submission = get_fal_client().submit(spec.upstream_id, payload, webhook_url=fal_webhook_url(generation) or None)
    except FalRejected as exc:
        attempt_finish(attempt, error=exc)
        transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                   error_message=f"fal rejected the request: {describe_detail(exc.detail)}")
        return
    except FalUnavailable as exc:
        attempt_finish(attempt, error=exc)
        _retry_or_fail(generation, exc)
        return
    except FalAmbiguous as exc:
        attempt_finish(attempt, error=exc)
        log.warning("submit of %s is ambiguous: %s", pk, exc)
        update_while(pk, [Status.SUBMITTING], next_poll_at=timezone.now() + AMBIGUOUS_RECHECK)
        return
    attempt_finish(attempt, http_status=200, response=dataclasses.asdict(submission))
    _accept(generation, submission)


def data_uri_max_bytes() -> int:
    return settings.STUDIO_FAL_DATA_URI_MAX_BYTES


def _payload_for_fal(generation: Generation) -> dict:
    """The LTX-2 input to send: the stored start image handed over as a data URI (small) or a fal storage URL.

    fal never reaches the studio's storage. The choice, and why, is recorded as an `upload` attempt.
    Raises FalUnavailable / FalRejected when the upload to fal's storage fails (nothing submitted yet).
    """
    payload = dict(generation.input)
    start = generation.start_image
    if start is None:
        return payload
    with default_storage.open(start.key, "rb") as handle:
        data = handle.read()
    limit = data_uri_max_bytes()
    attempt = attempt_start(generation, GenerationAttempt.Kind.UPLOAD, number=generation.submit_attempts)
    if len(data) <= limit:
        payload["image_url"] = f"data:{start.content_type};base64,{base64.b64encode(data).decode('ascii')}"
        attempt_finish(attempt, response={"method": "data_uri", "bytes": len(data), "content_type": start.content_type,
                                          "reason": f"{len(data)} bytes <= data URI limit {limit} bytes"})
        return payload
    file_name = start.key.rsplit("/", 1)[-1]
    try:
        file_url = get_fal_client().upload(data, start.content_type, file_name)
    except (FalRejected, FalUnavailable) as exc:
        attempt_finish(attempt, error=exc, response={"method": "fal_storage", "bytes": len(data)})
        raise
    payload["image_url"] = file_url
    attempt_finish(attempt, http_status=200, response={
        "method": "fal_storage", "bytes": len(data), "content_type": start.content_type, "file_url": file_url,
        "reason": f"{len(data)} bytes > data URI limit {limit} bytes: uploaded to fal storage"})
    return payload


def _retry_or_fail(generation: Generation, exc: FalUnavailable) -> None:
    if generation.submit_attempts >= settings.STUDIO_MAX_SUBMIT_ATTEMPTS:
        transition(generation.pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="upstream_unavailable",
                   error_message=f"fal was unavailable on {generation.submit_attempts} attempts: {exc}")
        return
    transition(generation.pk, from_=[Status.SUBMITTING], to=Status.PENDING,
               next_poll_at=timezone.now() + retry_backoff(generation.submit_attempts, exc.retry_after))


def _accept(generation: Generation, submission: FalSubmission) -> None:
    """Record fal's request id; if the job was canceled meanwhile, cancel it upstream too."""
    upstream = dict(
        fal_request_id=submission.request_id,
        fal_status_url=submission.status_url,
        fal_response_url=submission.response_url,
        fal_cancel_url=submission.cancel_url,
    )
    now = timezone.now()
    if transition(generation.pk, from_=[Status.SUBMITTING], to=Status.QUEUED, fal_status="IN_QUEUE",
                  queue_position=submission.queue_position, submitted_at=now,
                  next_poll_at=now + timedelta(seconds=1), **upstream):
        tracker_ensure()
        return
    # Canceled while the POST was in flight: keep the request id so the upstream job is canceled too.
    Generation.objects.filter(pk=generation.pk, fal_request_id__isnull=True).update(**upstream)
    enqueue_on_commit("generations.tasks.generation_cancel_upstream_task", str(generation.pk))


def generation_attach_request(generation: Generation, request_id: str) -> None:
    """Record fal's `request_id` for a SUBMITTING job whose submit answer we never read, and queue it
    for tracking as that answer would have (canceled meanwhile: fal's request is canceled too).

    The caller must have verified that fal itself named this request for this job (a signed webhook
    to the job's own URL). Idempotent: a job no longer SUBMITTING is left as it is.
    """
    if generation.status != Status.SUBMITTING:
        return
    upstream_id = ltx.MODELS[generation.model_id].upstream_id
    _accept(generation, get_fal_client().submission_for(upstream_id, request_id))


def generation_resolve_submitting(pk: uuid.UUID | str) -> None:
    """Settle a SUBMITTING row whose submit lease ran out (the submitting process died or timed out).

    Judged from the attempt row of the current claim: never sent → PENDING (safe to send); accepted
    (request id recorded) → QUEUED; rejected → FAILED; unknown → wait for the grace period
    (STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS), then FAILED `submit_unknown`. Idempotent.
    """
    generation = Generation.objects.filter(pk=pk, status=Status.SUBMITTING).first()
    if generation is None:
        return
    attempt = (GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                                number=generation.submit_attempts).order_by("-id").first())
    now = timezone.now()
    Outcome = GenerationAttempt.Outcome
    if attempt is None or attempt.outcome == Outcome.UNAVAILABLE:
        transition(pk, from_=[Status.SUBMITTING], to=Status.PENDING, next_poll_at=now)
    elif attempt.outcome == Outcome.OK and attempt.response:
        _accept(generation, FalSubmission(**attempt.response))
    elif attempt.outcome == Outcome.REJECTED:
        transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                   error_message=f"fal rejected the request: {attempt.error}")
    elif now - attempt.started_at > timedelta(seconds=settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS):
        transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="submit_unknown",
                   error_message="fal did not confirm the submission; it was not sent again to avoid paying twice")
    else:
        update_while(pk, [Status.SUBMITTING], next_poll_at=now + AMBIGUOUS_RECHECK)
