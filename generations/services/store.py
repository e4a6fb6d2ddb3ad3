"""Storing a finished generation: fetch fal's result, copy the video into our storage, settle."""
from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fal_protocol.client import (
    FalAccountBlocked,
    FalAmbiguous,
    FalNotFound,
    FalRejected,
    FalUnavailable,
    describe_detail,
)
from generations.models import Generation, GenerationAttempt
from generations.services.attempts import attempt_finish, attempt_record, attempt_start
from generations.services.provider import provider_outage
from generations.services.row_lease import row_lease_claim, row_lease_held
from generations.services.submit import retry_backoff
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client
from storage.keys import generation_key
from storage.media import MediaError
from storage.services import VideoKeys, video_delete, video_store_from_url
from storage.transfer import STORAGE_ERRORS, TransferError

log = logging.getLogger(__name__)
Status = Generation.Status
Kind = GenerationAttempt.Kind
Outcome = GenerationAttempt.Outcome
MAX_DOWNLOAD_ATTEMPTS = 5
ACCOUNT_BLOCKED_RETRY = timedelta(seconds=30)
TRANSIENT_TRANSFER_ERRORS = {"network", "http_status", "size_mismatch"}


def generation_store(pk: uuid.UUID | str) -> None:
    """Bring a STORING generation to SUCCEEDED: result → video copied, probed, postered → row settled.

    Safe to run twice or concurrently and to die at any line: a run claims the row (row_lease.py: a
    second run meanwhile does nothing, and a dead run's claim lapses within seconds so the tracker
    re-drives it), the result is kept on the row once fetched, object keys are deterministic, rows
    are upserted, and only the caller that moves STORING → SUCCEEDED links the video. A failed result
    (fal's 4xx behind COMPLETED) → FAILED. Transient failures leave the row STORING with a retry time
    for the tracker; an outage of our own storage, or fal refusing the account, never fails the job
    (it is retried with backoff for as long as it lasts, and is not counted against the download
    attempts). Call outside `atomic`.
    """
    until = row_lease_claim(pk, [Status.STORING])
    if until is None:
        return
    with row_lease_held(pk, [Status.STORING], until):
        _store_claimed(pk)


def _store_claimed(pk: uuid.UUID | str) -> None:
    generation = Generation.objects.filter(pk=pk, status=Status.STORING).select_related("owner").first()
    if generation is None:
        return
    result = generation.result or _fetch_result(generation)
    if result is None:
        return
    url = (result.get("video") or {}).get("url") if isinstance(result.get("video"), dict) else None
    if not isinstance(url, str) or not url:
        _fail(pk, "bad_output", "fal's result has no video URL")
        return
    attempt = attempt_start(generation, Kind.DOWNLOAD)
    try:
        video = video_store_from_url(
            owner=generation.owner, url=url, file_name=_file_name(generation),
            max_bytes=settings.STUDIO_MAX_VIDEO_BYTES,
            keys=VideoKeys(video=generation_key(generation.owner_id, pk, "video.mp4"),
                           poster=generation_key(generation.owner_id, pk, "poster.jpg")),
        )
    except TransferError as exc:
        attempt_finish(attempt, error=exc)
        downloads = generation.attempts.filter(kind=Kind.DOWNLOAD).exclude(outcome=Outcome.UNAVAILABLE).count()
        if exc.code in TRANSIENT_TRANSFER_ERRORS and downloads < MAX_DOWNLOAD_ATTEMPTS:
            update_while(pk, [Status.STORING], next_poll_at=timezone.now() + retry_backoff(downloads))
        else:
            _fail(pk, "download_failed", f"could not copy the video from fal: {exc}")
        return
    except MediaError as exc:
        attempt_finish(attempt, error=exc)
        _fail(pk, "bad_output", f"fal's file is not a playable video: {exc}")
        return
    except STORAGE_ERRORS as exc:
        attempt_finish(attempt, error=exc, outcome=Outcome.UNAVAILABLE)
        outages = generation.attempts.filter(kind=Kind.DOWNLOAD, outcome=Outcome.UNAVAILABLE).count()
        log.warning("storage unavailable while storing %s (attempt %d): %s", pk, outages, exc)
        update_while(pk, [Status.STORING], next_poll_at=timezone.now() + retry_backoff(outages))
        return
    with transaction.atomic():  # one write for the attempt's end and the row's
        attempt_finish(attempt, http_status=200)
        stored = transition(pk, from_=[Status.STORING], to=Status.SUCCEEDED, video=video, fal_status="COMPLETED",
                            lease_expires_at=None)
    if not stored:
        # Canceled (or finished by a twin run) while we copied. Only a row that does not own the
        # video may delete it.
        if not Generation.objects.filter(pk=pk, video=video).exists():
            video_delete(video)


def _fetch_result(generation: Generation) -> dict | None:
    # Recorded once the GET ends, in one write: a fetch cut short by a crash is simply made again.
    try:
        result = get_fal_client().result(generation.fal_response_url)
    except FalNotFound as exc:
        attempt_record(generation, Kind.RESULT, error=exc)
        _fail(generation.pk, "lost_upstream", "fal no longer has this request's result (404)")
        return None
    except FalAccountBlocked as exc:
        # fal refuses the account, not this result: it is fetched again once fal works.
        attempt_record(generation, Kind.RESULT, error=exc, outcome=Outcome.UNAVAILABLE)
        provider_outage(exc)
        update_while(generation.pk, [Status.STORING], next_poll_at=timezone.now() + ACCOUNT_BLOCKED_RETRY)
        return None
    except FalRejected as exc:
        attempt_record(generation, Kind.RESULT, error=exc)
        _fail(generation.pk, exc.error_type or "upstream_error",
              f"fal could not make this video: {describe_detail(exc.detail)}")
        return None
    except (FalUnavailable, FalAmbiguous) as exc:
        attempt_record(generation, Kind.RESULT, error=exc)
        results = generation.attempts.filter(kind=Kind.RESULT).count()
        update_while(generation.pk, [Status.STORING],
                     next_poll_at=timezone.now() + retry_backoff(min(results, 5), exc.retry_after))
        return None
    with transaction.atomic():  # one write, not two: SQLite has one writer at a time
        attempt_record(generation, Kind.RESULT, http_status=200)
        update_while(generation.pk, [Status.STORING], result=result)
    return result


def _fail(pk: uuid.UUID | str, code: str, message: str) -> None:
    transition(pk, from_=[Status.STORING], to=Status.FAILED, error_code=code[:64], error_message=message)


def _file_name(generation: Generation) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", generation.prompt.lower()).strip("-")[:40].strip("-") or "video"
    return f"ltx-{words}-{str(generation.pk)[:8]}.mp4"
