"""Submitting a generation to fal: the one step that cannot be undone."""
from __future__ import annotations

import base64
import dataclasses
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from core.db_blips import through_a_database_blip
from fal_protocol.client import (
    FalAccountBlocked,
    FalError,
    FalRejected,
    FalSubmission,
    FalUnavailable,
    describe_detail,
)
from fal_protocol.queue import payload_fingerprint
from generations import ltx
from generations.fair_share import in_flight_cap
from generations.media_inputs import MediaInput, stored_media
from generations.media_links import absolute_url
from generations.models import Generation, GenerationAttempt
from generations.queue import CANCEL_UPSTREAM_TASK, enqueue_on_commit
from generations.selectors import provider_is_paused, provider_is_paused_for_hold
from generations.services.attempts import attempt_finish, attempt_start
from generations.services.catalog import (
    GONE_STATUSES,
    endpoint_gone,
    endpoint_mark_unavailable,
    schema_mismatches_record,
)
from generations.services.lease import tracker_ensure
from generations.services.provider import provider_outage
from generations.services.row_lease import LEASE, row_lease_held
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client
from storage.models import StoredObject

log = logging.getLogger(__name__)
Status = Generation.Status
# When a submit whose outcome is unknown is first looked up in fal's request listing (ambiguous.py).
AMBIGUOUS_FIRST_LOOK = timedelta(seconds=2)


def retry_backoff(attempt: int, retry_after: float | None = None) -> timedelta:
    """How long to wait before submit attempt `attempt` + 1: doubling, at most a minute, never
    sooner than fal's Retry-After."""
    seconds = min(2.0 ** attempt, 60.0)
    return timedelta(seconds=max(seconds, retry_after or 0.0))


def fal_webhook_url(generation: Generation) -> str:
    """The job's own webhook URL handed to fal at submit ("" when STUDIO_FAL_WEBHOOKS is off);
    deliveries are handled by `fal_webhooks.fal_webhook_receive`."""
    if not settings.STUDIO_FAL_WEBHOOKS:
        return ""
    return absolute_url(reverse("fal-webhook", args=[generation.webhook_token]))


def generation_submit(pk: uuid.UUID | str, *, dispatched: bool = False) -> None:
    """Send a PENDING generation to fal once.

    While STUDIO_FAL_MAX_IN_FLIGHT is set, only the tracking chain's dispatch (`dispatched=True`,
    which keeps the cap and the fair-share order, fair_share.py) sends: any other caller (the task
    enqueued at create) leaves the job due for it.

    Idempotent: only the caller that claims PENDING → SUBMITTING sends anything, and holds the row's
    claim (row_lease.py) while it works, so a dead submit is resolved within seconds. The attempt row,
    with the payload's fingerprint, is committed before the POST, so a crash mid-call is visible to
    `generation_resolve_submitting`. Rejected → FAILED; unavailable → back to PENDING with backoff
    (FAILED after STUDIO_MAX_SUBMIT_ATTEMPTS); ambiguous → stays SUBMITTING, never resent blindly,
    and is looked up in fal's request listing shortly (ambiguous.py). fal refusing the account
    (locked, out of balance, unknown key) pauses the studio and HOLDS the job: the attempt does not
    count. Runs without an open transaction (network I/O); call outside `atomic`. While the provider
    is paused (provider_switch.py) the job is moved to HELD instead, to be submitted on resume.
    """
    now = timezone.now()
    if not dispatched:  # the lane's caller has just taken the row, still PENDING, by compare-and-set
        if not Generation.objects.filter(pk=pk, status=Status.PENDING).exists():
            # Sent, or being sent, already (by the chain's lane, or this task's twin): a read, where
            # the claim's compare-and-set would take the one writer SQLite allows to change nothing.
            return
        if in_flight_cap() is not None:
            update_while(pk, [Status.PENDING], next_poll_at=now)
            tracker_ensure()
            return
    if provider_is_paused():
        with transaction.atomic():  # held only if no resume releases held jobs meanwhile (switch.py)
            if provider_is_paused_for_hold():
                transition(pk, from_=[Status.PENDING], to=Status.HELD, next_poll_at=None)
                return
    until = now + LEASE
    with transaction.atomic():
        if not transition(pk, from_=[Status.PENDING], to=Status.SUBMITTING,
                          submit_attempts=F("submit_attempts") + 1, lease_expires_at=until, next_poll_at=until):
            return
        generation = Generation.objects.get(pk=pk)
        ready = _ready_without_uploads(generation)
    with row_lease_held(pk, [Status.SUBMITTING], until):
        _submit_claimed(generation, ready)


def generation_submit_dispatched(pk: uuid.UUID | str) -> None:
    """`generation_submit` as the tracking chain's submit lane runs it (within the in-flight cap)."""
    generation_submit(pk, dispatched=True)


@dataclasses.dataclass(frozen=True)
class _Ready:
    """A claimed job's payload, and its submit attempt row, written in the claim's own transaction."""
    payload: dict
    attempt: GenerationAttempt


def _ready_without_uploads(generation: Generation) -> _Ready | None:
    """For a job just claimed, in the claim's transaction: when its payload needs no upload to fal
    (no stored media input) and its endpoint is not known to be gone, write its submit attempt now —
    one write to the database instead of two, which SQLite's single writer feels under a burst.
    None otherwise: `_submit_claimed` prepares it (uploads are network I/O, never inside a transaction)."""
    endpoint = ltx.resolve_model(generation.model_id)
    if next(stored_media(generation), None) is not None or _endpoint_gone(endpoint):
        return None
    payload = dict(generation.input)
    return _Ready(payload, _attempt_for(generation, endpoint, payload))


def _endpoint_gone(endpoint: ltx.Endpoint) -> bool:
    override = ltx.endpoint_override(endpoint)
    return override is not None and override.unavailable_since is not None


def _attempt_for(generation: Generation, endpoint: ltx.Endpoint, payload: dict) -> GenerationAttempt:
    """The submit attempt row, with the payload's fingerprint: committed before the POST."""
    return attempt_start(generation, GenerationAttempt.Kind.SUBMIT, number=generation.submit_attempts,
                         endpoint=ltx.upstream_id(endpoint), payload_sha256=payload_fingerprint(payload))


def _submit_claimed(generation: Generation, ready: _Ready | None) -> None:
    endpoint = ltx.resolve_model(generation.model_id)
    upstream_id = ltx.upstream_id(endpoint)
    if ready is None:
        ready = _prepare(generation, endpoint)
        if ready is None:
            return
    payload, attempt = ready.payload, ready.attempt
    answer: FalSubmission | FalError
    try:
        answer = get_fal_client().submit(upstream_id, payload, webhook_url=fal_webhook_url(generation) or None)
    except FalError as exc:
        answer = exc
    # fal's answer lives only in this process until it is written: a database that blinks now (a
    # restart, a failover) must not turn a request fal accepted into one whose outcome is unknown.
    through_a_database_blip(lambda: _record_answer(generation, endpoint, payload, attempt, answer))


def _prepare(generation: Generation, endpoint: ltx.Endpoint) -> _Ready | None:
    """The payload (its media uploaded to fal) and the attempt row of a claimed job; None when the
    job ended or went back to wait instead (endpoint gone, upload refused or failing)."""
    pk = generation.pk
    if _endpoint_gone(endpoint):
        # fal already answered this endpoint as gone: fail without another call (an operator who
        # clears the mark in the admin offers the endpoint again).
        _fail_unavailable(pk, endpoint.id)
        return None
    try:
        payload = _payload_for_fal(generation)
    except FalAccountBlocked as exc:
        _hold_for_outage(generation, exc)
        return None
    except (FalRejected, FalUnavailable) as exc:
        # Nothing was submitted: a failed upload is retried like an unavailable submit, or ends the job.
        if isinstance(exc, FalRejected):
            transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                       error_message=f"fal refused the media upload: {describe_detail(exc.detail)}")
        else:
            _retry_or_fail(generation, exc)
        return None
    except OSError as exc:  # a stored media input could not be read; storage errors are worth retrying
        log.warning("media input of %s unreadable: %s", pk, exc)
        _retry_or_fail(generation, FalUnavailable(f"a stored media input could not be read: {exc}"))
        return None
    return _Ready(payload, _attempt_for(generation, endpoint, payload))


def _record_answer(generation: Generation, endpoint: ltx.Endpoint, payload: dict, attempt: GenerationAttempt,
                   answer: FalSubmission | FalError) -> None:
    """Record what fal answered a submit. Idempotent (every write a compare-and-set), so it may be retried."""
    pk = generation.pk
    if isinstance(answer, FalSubmission):
        with transaction.atomic():  # one write for the attempt's end and the row's
            attempt_finish(attempt, http_status=200, response=dataclasses.asdict(answer))
            _accept(generation, answer)
    elif isinstance(answer, FalAccountBlocked):
        attempt_finish(attempt, error=answer, outcome=GenerationAttempt.Outcome.UNAVAILABLE)
        _hold_for_outage(generation, answer)
    elif isinstance(answer, FalRejected):
        attempt_finish(attempt, error=answer)
        if endpoint_gone(answer):
            endpoint_mark_unavailable(endpoint, answer)
            _fail_unavailable(pk, endpoint.id,
                              f" (fal answered {answer.status_code}: {describe_detail(answer.detail)})")
            return
        schema_mismatches_record(endpoint, answer, payload)
        transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                   error_message=f"fal rejected the request: {describe_detail(answer.detail)}")
    elif isinstance(answer, FalUnavailable):
        attempt_finish(attempt, error=answer)
        _retry_or_fail(generation, answer)
    else:  # FalAmbiguous: the request may have reached fal
        attempt_finish(attempt, error=answer)
        log.warning("submit of %s is ambiguous: %s", pk, answer)
        update_while(pk, [Status.SUBMITTING], next_poll_at=timezone.now() + AMBIGUOUS_FIRST_LOOK)


def _fail_unavailable(pk: uuid.UUID | str, endpoint_id: str, why: str = "") -> None:
    """End a SUBMITTING job whose endpoint fal answered as gone (uncharged: fal ran nothing)."""
    transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="model_unavailable",
               error_message=f"{endpoint_id} is no longer available at fal{why}; nothing was charged")


def data_uri_max_bytes() -> int:
    """The largest media input handed to fal inline as a data URI (STUDIO_FAL_DATA_URI_MAX_BYTES)."""
    return settings.STUDIO_FAL_DATA_URI_MAX_BYTES


def _payload_for_fal(generation: Generation) -> dict:
    """The input to send: each stored media input (start image, end image) handed over as a data
    URI (small) or a fal storage URL.

    fal never reaches the studio's storage. The choice, and why, is recorded as an `upload` attempt
    per medium. Raises FalUnavailable / FalRejected when an upload to fal's storage fails (nothing
    submitted yet).
    """
    payload = dict(generation.input)
    for medium, stored in stored_media(generation):
        payload[medium.field] = _media_for_fal(generation, medium, stored)
    return payload


def _media_for_fal(generation: Generation, medium: MediaInput, stored: StoredObject) -> str:
    with default_storage.open(stored.key, "rb") as handle:
        data = handle.read()
    limit = data_uri_max_bytes()
    attempt = attempt_start(generation, GenerationAttempt.Kind.UPLOAD, number=generation.submit_attempts)
    facts = {"field": medium.field, "bytes": len(data), "content_type": stored.content_type}
    if len(data) <= limit:
        attempt_finish(attempt, response={"method": "data_uri", **facts,
                                          "reason": f"{len(data)} bytes <= data URI limit {limit} bytes"})
        return f"data:{stored.content_type};base64,{base64.b64encode(data).decode('ascii')}"
    file_name = stored.key.rsplit("/", 1)[-1]
    try:
        file_url = get_fal_client().upload(data, stored.content_type, file_name)
    except (FalRejected, FalUnavailable, FalAccountBlocked) as exc:
        attempt_finish(attempt, error=exc, response={"method": "fal_storage", **facts})
        raise
    attempt_finish(attempt, http_status=200, response={
        "method": "fal_storage", **facts, "file_url": file_url,
        "reason": f"{len(data)} bytes > data URI limit {limit} bytes: uploaded to fal storage"})
    return file_url


def _hold_for_outage(generation: Generation, exc: FalAccountBlocked) -> None:
    """fal refused the account, not this job: pause the studio and hold the job (its attempt is
    given back, nothing is charged); it is submitted again when the provider resumes."""
    provider_outage(exc)
    transition(generation.pk, from_=[Status.SUBMITTING], to=Status.HELD, next_poll_at=None,
               submit_attempts=F("submit_attempts") - 1)


def _retry_or_fail(generation: Generation, exc: FalUnavailable) -> None:
    if generation.submit_attempts >= settings.STUDIO_MAX_SUBMIT_ATTEMPTS:
        transition(generation.pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="upstream_unavailable",
                   error_message=f"fal was unavailable on {generation.submit_attempts} attempts: {exc}")
        return
    transition(generation.pk, from_=[Status.SUBMITTING], to=Status.PENDING, lease_expires_at=None,
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
                  next_poll_at=now + timedelta(seconds=1), lease_expires_at=None, **upstream):
        transaction.on_commit(tracker_ensure)
        return
    # Canceled while the POST was in flight: keep the request id so the upstream job is canceled too.
    Generation.objects.filter(pk=generation.pk, fal_request_id__isnull=True).update(**upstream)
    enqueue_on_commit(CANCEL_UPSTREAM_TASK, str(generation.pk))


def generation_attach_request(generation: Generation, request_id: str) -> None:
    """Record fal's `request_id` for a SUBMITTING job whose submit answer we never read, and queue it
    for tracking as that answer would have (canceled meanwhile: fal's request is canceled too).

    The caller must have verified that fal itself named this request for this job (a signed webhook
    to the job's own URL). Idempotent: a job no longer SUBMITTING is left as it is.
    """
    if generation.status != Status.SUBMITTING:
        return
    upstream_id = ltx.upstream_id(ltx.resolve_model(generation.model_id))
    _accept(generation, get_fal_client().submission_for(upstream_id, request_id))


SUBMISSION_FIELDS = tuple(field.name for field in dataclasses.fields(FalSubmission))


def generation_resolve_submitting(pk: uuid.UUID | str) -> bool:
    """Settle a SUBMITTING row whose submit lease ran out (the submitting process died or timed out).

    Judged from the attempt row of the current claim: never sent → PENDING (safe to send); accepted
    (request id recorded) → QUEUED; rejected → FAILED. Returns True when the outcome is unknown (the
    POST may have reached fal): the caller looks it up in fal's request listing
    (`ambiguous.ambiguous_submits_resolve`). Idempotent.
    """
    generation = Generation.objects.filter(pk=pk, status=Status.SUBMITTING).first()
    if generation is None:
        return False
    attempt = (GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                                number=generation.submit_attempts).order_by("-id").first())
    Outcome = GenerationAttempt.Outcome
    if attempt is None or attempt.outcome == Outcome.UNAVAILABLE:
        transition(pk, from_=[Status.SUBMITTING], to=Status.PENDING, next_poll_at=timezone.now())
    elif attempt.outcome == Outcome.OK and attempt.response and "request_id" in attempt.response:
        _accept(generation, FalSubmission(**{name: attempt.response[name] for name in SUBMISSION_FIELDS
                                             if name in attempt.response}))
    elif attempt.outcome == Outcome.REJECTED and attempt.http_status in GONE_STATUSES:
        _fail_unavailable(pk, generation.model_id, f" (fal answered {attempt.http_status}: {attempt.error})")
    elif attempt.outcome == Outcome.REJECTED:
        transition(pk, from_=[Status.SUBMITTING], to=Status.FAILED, error_code="rejected",
                   error_message=f"fal rejected the request: {attempt.error}")
    else:
        return True
    return False
