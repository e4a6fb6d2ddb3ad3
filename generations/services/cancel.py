"""Canceling a generation, in any active state."""
from __future__ import annotations

import uuid

from fal_protocol.client import FalError
from generations.models import Generation, GenerationAttempt
from generations.queue import CANCEL_UPSTREAM_TASK, enqueue_on_commit
from generations.services.attempts import attempt_finish, attempt_start
from generations.transitions import transition
from generations.upstream import get_fal_client
from storage.services import video_delete

Status = Generation.Status


class NotCancelable(Exception):
    """The generation already finished; the message says how."""


def generation_cancel(generation: Generation, *, message: str = "canceled by the user") -> Generation:
    """Cancel an active generation and return it refreshed.

    The row moves to CANCELED at once (compare-and-set, retried if the status moved under us); a job
    fal knows about is canceled upstream by a task after commit. A submit still in flight notices
    the cancel when it returns and cancels upstream itself; a store in flight discards its copy.
    Raises NotCancelable for a finished generation. `message` becomes the job's error message.
    """
    while True:
        current = Generation.objects.get(pk=generation.pk)
        if current.status in Generation.TERMINAL:
            raise NotCancelable(f"the generation already {current.status}")
        if transition(current.pk, from_=[current.status], to=Status.CANCELED,
                      error_code="canceled", error_message=message):
            break
    if current.fal_request_id and current.status in (Status.QUEUED, Status.RUNNING):
        enqueue_on_commit(CANCEL_UPSTREAM_TASK, str(current.pk))
    return Generation.objects.get(pk=current.pk)


def generation_cancel_upstream(pk: uuid.UUID | str) -> None:
    """Ask fal to cancel a CANCELED generation's request. Raises FalError so django-q2 retries it.

    Idempotent: fal answers ALREADY_COMPLETED or NOT_FOUND to repeats, which are fine. A video that
    was stored meanwhile is discarded.
    """
    generation = Generation.objects.filter(pk=pk, status=Status.CANCELED).first()
    if generation is None or not generation.fal_cancel_url:
        return
    attempt = attempt_start(generation, GenerationAttempt.Kind.CANCEL)
    try:
        answer = get_fal_client().cancel(generation.fal_cancel_url)
    except FalError as exc:
        attempt_finish(attempt, error=exc)
        raise
    attempt_finish(attempt, http_status=200, response={"status": answer})
    video = generation.video  # None, without a query, when video_id is NULL
    if video is not None:
        Generation.objects.filter(pk=pk).update(video=None)
        video_delete(video)
