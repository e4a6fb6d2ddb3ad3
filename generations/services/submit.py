"""Submitting a generation to fal: the one step that cannot be undone (shared style.md §3.4)."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from generations import ltx
from generations.fal import FalAmbiguous, FalRejected, FalSubmission, FalUnavailable, describe_detail
from generations.models import Generation, GenerationAttempt
from generations.queue import enqueue_on_commit
from generations.services.attempts import attempt_finish, attempt_start
from generations.services.lease import tracker_ensure
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client

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


def generation_submit(pk: uuid.UUID | str) -> None:
    """Send a PENDING generation to fal once.

    Idempotent: only the caller that claims PENDING → SUBMITTING sends anything. The attempt row is
    committed before the POST, so a crash mid-call is visible to `generation_resolve_submitting`.
    Rejected → FAILED; unavailable → back to PENDING with backoff (FAILED after
    STUDIO_MAX_SUBMIT_ATTEMPTS); ambiguous → stays SUBMITTING, never resent blindly.
    Runs without an open transaction (network I/O); call outside `atomic`.
    """
    now = timezone.now()
    if not transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING,
                      submit_attempts=F("submit_attempts") + 1, next_poll_at=now + submit_lease()):
        return
    generation = Generation.objects.get(pk=pk)
    spec = ltx.MODELS[generation.model_id]
    attempt = attempt_start(generation, GenerationAttempt.Kind.SUBMIT, number=generation.submit_attempts)
    try:
        submission = get_fal_client().submit(spec.upstream_id, generation.input)
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
