"""Tracking: one self-renewing chain watches every job in flight without holding a worker per job.

`tracker_run(token)` owns the lease (lease.py) and, for up to RUN_SECONDS, repeatedly claims every row
whose `next_poll_at` has come: PENDING → enqueue submit; SUBMITTING → resolve an abandoned submit;
QUEUED/RUNNING → poll fal's status (concurrently, one shared httpx client); STORING → enqueue store.
Then it re-enqueues itself, well inside django-q2's task timeout. Per-job poll intervals adapt (1 s
while running, longer deep in the queue), so a completion is seen within about a second.
"""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from generations.fal import FalError, FalNotFound, FalRejected, FalStatus
from generations.models import Generation, GenerationAttempt
from generations.queue import enqueue, enqueue_on_commit
from generations.services.attempts import attempt_record_failure
from generations.services.lease import TRACKED, lease_claim, lease_release
from generations.services.submit import generation_resolve_submitting, retry_backoff
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client

log = logging.getLogger(__name__)
Status = Generation.Status

RUN_SECONDS = 20.0
MAX_SLEEP = 0.2
BATCH = 500
POLL_THREADS = 16
RUNNING_INTERVAL = 1.0
MAX_QUEUED_INTERVAL = 5.0
KEEP_LOGS = 100
# A re-driven task (submit or store) is given this long before the tracker enqueues it again.
REDRIVE_AFTER = timedelta(seconds=60)

_pool: ThreadPoolExecutor | None = None


def store_lease() -> timedelta:
    """A store task gets a full django-q2 timeout before anyone assumes it died."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"] + 30)


def tracker_run(token: str, *, run_seconds: float = RUN_SECONDS) -> str:
    """One link of the tracking chain. Returns why it stopped: "not-owner", "idle" or "renewed"."""
    if not lease_claim(token):
        return "not-owner"
    deadline = time.monotonic() + run_seconds
    while True:
        tracker_tick()
        if not lease_claim(token):
            return "not-owner"
        if time.monotonic() >= deadline:
            enqueue("generations.tasks.tracker_run_task", token)
            return "renewed"
        if not Generation.objects.filter(status__in=TRACKED).exists():
            lease_release(token)
            # A submit that committed just before the release saw a live lease and did not start a
            # chain; look once more so its job is not left waiting for the sweeper.
            if not Generation.objects.filter(status__in=TRACKED).exists() or not lease_claim(token):
                return "idle"
        time.sleep(_seconds_until_next_due())


def _seconds_until_next_due() -> float:
    next_due = Generation.objects.filter(status__in=TRACKED).aggregate(at=Min("next_poll_at"))["at"]
    if next_due is None:
        return MAX_SLEEP
    return min(MAX_SLEEP, max(0.0, (next_due - timezone.now()).total_seconds()))


def tracker_tick() -> int:
    """Handle every row that is due now; returns how many were handled."""
    now = timezone.now()
    due = list(
        Generation.objects.filter(status__in=TRACKED, next_poll_at__lte=now)
        .order_by("next_poll_at")
        .values_list("pk", "status", "next_poll_at", "fal_status_url")[:BATCH]
    )
    to_poll = []
    for pk, status, due_at, status_url in due:
        if status == Status.PENDING:
            _redrive(pk, status, due_at, "generations.tasks.generation_submit_task")
        elif status == Status.STORING:
            _redrive(pk, status, due_at, "generations.tasks.generation_store_task")
        elif status == Status.SUBMITTING:
            generation_resolve_submitting(pk)
        else:
            to_poll.append((pk, status_url))
    if to_poll:
        _poll_all(to_poll)
    return len(due)


def _redrive(pk: uuid.UUID, status: str, due_at, task: str) -> None:
    # Compare-and-set on next_poll_at, so a row is enqueued once per due time however often we look.
    if Generation.objects.filter(pk=pk, status=status, next_poll_at=due_at).update(
        next_poll_at=timezone.now() + (store_lease() if status == Status.STORING else REDRIVE_AFTER)
    ):
        enqueue(task, str(pk))


def _poll_all(rows: list[tuple[uuid.UUID, str]]) -> None:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=POLL_THREADS, thread_name_prefix="fal-poll")
    client = get_fal_client()

    def poll(row: tuple[uuid.UUID, str]) -> FalStatus | FalError:
        try:
            return client.status(row[1], logs=True)
        except FalError as exc:
            return exc

    # HTTP runs in the pool; every database write stays on this thread, in one transaction.
    results = list(_pool.map(poll, rows))
    with transaction.atomic():
        for (pk, _), outcome in zip(rows, results):
            if isinstance(outcome, FalStatus):
                generation_apply_status(pk, outcome)
            else:
                _poll_failed(pk, outcome)


def generation_apply_status(pk: uuid.UUID | str, fal: FalStatus) -> bool:
    """Record fal's status for a QUEUED/RUNNING job; on COMPLETED move it to STORING and enqueue storing.

    Compare-and-set on our status, so a repeated or stale report changes nothing (returns False).
    """
    now = timezone.now()
    common = dict(fal_status=fal.status, logs=fal.logs[-KEEP_LOGS:])
    if fal.is_completed:
        moved = transition(pk, from_=[Status.QUEUED, Status.RUNNING], to=Status.STORING, completed_at=now,
                           queue_position=None, next_poll_at=now + store_lease(),
                           inference_seconds=fal.inference_time, **common)
        if moved:
            enqueue_on_commit("generations.tasks.generation_store_task", str(pk))
        return moved
    if fal.status == "IN_PROGRESS":
        running = dict(was_running=True, queue_position=None, next_poll_at=now + timedelta(seconds=RUNNING_INTERVAL),
                       **common)
        return (transition(pk, from_=[Status.QUEUED], to=Status.RUNNING, started_at=now, **running)
                or update_while(pk, [Status.RUNNING], **running))
    position = fal.queue_position or 0
    interval = min(RUNNING_INTERVAL + 0.25 * position, MAX_QUEUED_INTERVAL)
    return update_while(pk, [Status.QUEUED, Status.RUNNING], queue_position=position,
                        next_poll_at=now + timedelta(seconds=interval), **common)


def _poll_failed(pk: uuid.UUID, error: FalError) -> None:
    generation = Generation.objects.get(pk=pk)
    attempt_record_failure(generation, GenerationAttempt.Kind.STATUS, error)
    if isinstance(error, FalNotFound):
        transition(pk, from_=[Status.QUEUED, Status.RUNNING], to=Status.FAILED, error_code="lost_upstream",
                   error_message="fal no longer knows this request (404)")
        return
    # Other refusals (e.g. a revoked key) are our problem, not the job's: keep trying, slowly.
    failures = generation.attempts.filter(kind=GenerationAttempt.Kind.STATUS).count()
    delay = timedelta(seconds=30) if isinstance(error, FalRejected) else retry_backoff(min(failures, 5), error.retry_after)
    update_while(pk, [Status.QUEUED, Status.RUNNING], next_poll_at=timezone.now() + delay)
