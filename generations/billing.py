"""What a finished generation costs its owner (README, "How a job travels": quotas)."""
from __future__ import annotations

from generations.media_inputs import stored_media
from generations.models import Generation
from storage.quotas import quota_settle

Status = Generation.Status


def fal_billed(generation: Generation) -> bool:
    """Whether fal charges us for this job: it produced output, or it had started running when canceled.

    fal bills only successful output; once a request runs, canceling it does not promise a refund.
    """
    if generation.status == Status.SUCCEEDED:
        return True
    if generation.status == Status.CANCELED:
        return generation.was_running or generation.completed_at is not None
    produced = isinstance(generation.result, dict) and isinstance(generation.result.get("video"), dict)
    return produced  # FAILED: charged only when fal produced a video we then could not keep


def stored_bytes(generation: Generation) -> int:
    """Bytes the generation keeps in storage: video + poster, and its media inputs (start and end image)."""
    total = sum(stored.size for _media, stored in stored_media(generation))
    video = generation.video
    if video is None:
        return total
    return total + video.file.size + (video.poster.size if video.poster is not None else 0)


def generation_settle(generation: Generation) -> None:
    """Settle the quota of a generation that just became terminal (idempotent; call in its transaction)."""
    charge = fal_billed(generation)
    note = f"{generation.status}" + (f" ({generation.error_code})" if generation.error_code else "")
    note += ", charged" if charge else ", spend released"
    quota_settle(job=generation.pk, stored_bytes=stored_bytes(generation), charge=charge, note=note)
