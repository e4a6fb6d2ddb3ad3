"""Tracking: one self-renewing chain drives every job in flight without holding a worker per job.

`tracker_run(token)` owns the lease (lease.py) and repeatedly claims every row whose `next_poll_at`
has come: PENDING → a submit in the submit lane (in fair-share order, fair_share.py, and never more
at fal than STUDIO_FAL_MAX_IN_FLIGHT); STORING → a store in the store lane (lanes.py: bounded thread
pools, so a burst is sent and stored concurrently, not one task at a time), unless the store driver
(store_driver.py, a process of its own) stores them; SUBMITTING → resolve an
abandoned or ambiguous submit (a task that may ask fal's request listing, ambiguous.py);
QUEUED/RUNNING → poll fal's status (concurrently, one shared httpx client) — unless the status
stream follower (fal_streams.py, a process of its own) keeps the job's due time away because it
follows the job's status stream. A row that a running submit or
store still claims (row_lease.py) is only looked at again when that claim would lapse.
While the studio is paused because fal refuses its account, the chain also probes fal now and then
(provider.py). After HANDOFF_AFTER it enqueues its successor link and keeps going until that link
takes over, well inside django-q2's task timeout. Under `manage.py workers` the tracking driver
(tracking_driver.py) holds the same lease and runs the same passes (`tracker_pass`) in a process of
its own, so tracking never waits for a link to make it through the task queue; the chain is then
the fallback, should the driver die.

Polling is adaptive and polite: a running job is polled once a second (never more
often), a queued one less often the deeper it waits, a job whose completion fal will also announce
by webhook only as a slow backstop, and a refusal waits at least fal's `Retry-After`. Polls that
bring nothing new (still running, same logs) are recorded with one batched UPDATE per tick.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from fal_protocol.client import FalAccountBlocked, FalError, FalNotFound, FalRejected, FalStatus
from generations import lanes
from generations.fair_share import at_fal_count, in_flight_cap, next_to_submit
from generations.models import Generation, GenerationAttempt
from generations.queue import AMBIGUOUS_SUBMITS_TASK, STORE_TASK, TRACKER_TASK, enqueue, enqueue_on_commit
from generations.selectors import provider_is_paused_automatically
from generations.services.attempts import attempt_record_failure
from generations.services.lease import (
    STORE_DRIVER_LEASE,
    TRACKED,
    lease_claim,
    lease_release,
    named_lease_live,
    next_token,
    tracking_has_work,
)
from generations.services.provider import provider_outage, provider_probe_if_due
from generations.services.row_lease import LEASE, row_lease_live
from generations.services.store import generation_store
from generations.services.submit import generation_resolve_submitting, generation_submit_dispatched, retry_backoff
from generations.transitions import transition, update_while
from generations.upstream import get_fal_client

log = logging.getLogger(__name__)
Status = Generation.Status

HANDOFF_AFTER = 20.0  # a tracking link enqueues its successor after this long
MAX_SLEEP = 0.2
# Between ticks at least this long, even with rows due: rows a full lane cannot take yet stay due, and
# a lane frees a slot no sooner than a round trip to fal.
MIN_SLEEP = 0.05
BATCH = 500
WRITE_CHUNK = 100
RUNNING_INTERVAL = 1.0  # the fastest any job is polled
QUEUE_STEP_SECONDS = 0.5  # each place in fal's queue adds this much to the next poll...
MAX_QUEUED_INTERVAL = 10.0  # ...up to this
# With fal's webhooks on, a webhook reports each completion at once; polls only back it up.
WEBHOOK_BACKSTOP_INTERVAL = 10.0
# A job the status stream follower follows is polled only if the follower stops pushing its due time.
STREAM_BACKSTOP = timedelta(seconds=10)
KEEP_LOGS = 100
# An enqueued task (resolving a submit) is given this long to start before the tracker enqueues it
# again (a worker killed with the task in hand loses it). A row handed to a lane is looked at again
# after LEASE; once running, the service's own claim (row_lease.py) says when it is due again.
REDRIVE_AFTER = timedelta(seconds=30)
PROBE_CHECK_EVERY = 1.0  # seconds between looks at whether a provider probe is due


def link_max_seconds() -> float:
    """How long one link runs at most: well inside django-q2's task timeout."""
    return max(HANDOFF_AFTER, settings.Q_CLUSTER["timeout"] - 60.0)


def tracker_run(token: str, *, run_seconds: float | None = None) -> str:
    """One link of the tracking chain. Returns why it stopped: "not-owner", "idle" or "renewed".

    After HANDOFF_AFTER seconds the link enqueues its successor, then keeps tracking until the
    successor has made it through the task queue and taken the lease over (or `run_seconds`,
    default `link_max_seconds()`, have passed): behind a backlog of a thousand submit and store
    tasks the successor may take a while, and tracking must not pause meanwhile.
    """
    if not lease_claim(token):
        return "not-owner"
    started = time.monotonic()
    run_seconds = link_max_seconds() if run_seconds is None else run_seconds
    try:
        return _track(token, started, run_seconds)
    finally:
        polls_settle()


def _track(token: str, started: float, run_seconds: float) -> str:
    handoff_after = min(HANDOFF_AFTER, run_seconds)
    handed_off = False
    while True:
        tracker_pass()
        if not lease_claim(token):
            return "renewed" if handed_off else "not-owner"
        elapsed = time.monotonic() - started
        if not handed_off and elapsed >= handoff_after:
            enqueue(TRACKER_TASK, next_token(token))
            handed_off = True
        if elapsed >= run_seconds:
            return "renewed"  # the successor takes the lease over from this link's token
        if not tracking_has_work():
            lease_release(token)
            # A submit that committed just before the release saw a live lease and did not start a
            # chain; look once more so its job is not left waiting for the sweeper.
            if not tracking_has_work() or not lease_claim(token):
                return "idle"
        time.sleep(seconds_until_next_due())


def tracker_pass() -> None:
    """One pass of tracking, for whoever holds the tracker lease (a chain link, or the tracking driver,
    tracking_driver.py): every due row handled (`_tick`), and during an automatic pause a probe of fal
    when one is due (provider.py)."""
    global _probe_checked_at
    _tick()
    if time.monotonic() - _probe_checked_at >= PROBE_CHECK_EVERY:
        if provider_is_paused_automatically():
            provider_probe_if_due()
        _probe_checked_at = time.monotonic()


_probe_checked_at = 0.0


def seconds_until_next_due() -> float:
    """How long to sleep before the next pass: until the next row comes due, within [MIN_SLEEP, MAX_SLEEP]."""
    next_due = Generation.objects.filter(status__in=TRACKED).aggregate(at=Min("next_poll_at"))["at"]
    if next_due is None:
        return MAX_SLEEP
    return min(MAX_SLEEP, max(MIN_SLEEP, (next_due - timezone.now()).total_seconds()))


def tracker_tick() -> int:
    """Handle every row that is due now, its polls answered and recorded; returns how many were handled."""
    handled = _tick()
    _record_finished_polls(wait=True)
    return handled


def _tick() -> int:
    """One pass of the chain: record the polls fal has answered since the last pass, hand due
    submits and stores to the lanes, and send the due polls without waiting for their answers — so a
    slow round trip to fal holds up neither the lanes nor the next pass."""
    _record_finished_polls(wait=False)
    now = timezone.now()
    polled_or_claimed = (Q(status__in=[Status.SUBMITTING, Status.QUEUED, Status.RUNNING])
                         | Q(status__in=[Status.PENDING, Status.STORING], lease_expires_at__gt=now))
    due = list(
        Generation.objects.filter(polled_or_claimed, next_poll_at__lte=now)
        .order_by("next_poll_at")
        .values_list("pk", "status", "next_poll_at", "fal_status_url", "lease_expires_at")[:BATCH]
    )
    to_poll, to_resolve, claimed = [], [], []
    for pk, status, due_at, status_url, lease_expires_at in due:
        if pk in _polls:
            continue  # asked already; its answer is on the way
        if row_lease_live(lease_expires_at, now):
            claimed.append((pk, status, due_at, lease_expires_at))  # a task works on it: look when its claim lapses
        elif status == Status.SUBMITTING:
            to_resolve.append((pk, due_at))
        else:
            to_poll.append((pk, status, status_url))
    if claimed:
        for pk, status, due_at, lease_expires_at in claimed:
            Generation.objects.filter(pk=pk, status=status, next_poll_at=due_at).update(next_poll_at=lease_expires_at)
    handed = _dispatch_submits(now) + _dispatch_stores(now)
    if to_resolve:
        _resolve_all(to_resolve)
    if to_poll:
        _send_polls(to_poll)
    return len(due) + handed


def _dispatch_submits(now: datetime) -> int:
    """Hand due PENDING rows to the submit lane, in fair-share order, within the in-flight cap."""
    lane = lanes.SUBMITS
    slots = lane.free()
    cap = in_flight_cap()
    if cap is not None and slots:
        slots = min(slots, cap - at_fal_count(lane.busy()))
    return _hand_to_lane(lane, Status.PENDING, next_to_submit(now, slots), generation_submit_dispatched)


def _dispatch_stores(now: datetime) -> int:
    """Hand due STORING rows to the store lane — unless the store driver (store_driver.py, a process of
    its own beside the cluster) stores them."""
    if named_lease_live(STORE_DRIVER_LEASE):
        return 0
    return dispatch_stores(now)


def dispatch_stores(now: datetime) -> int:
    """Hand due STORING rows nobody works on to this process's store lane, oldest due first; how many."""
    lane = lanes.STORES
    slots = lane.free()
    if not slots:
        return 0
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    rows = list(Generation.objects.filter(free, status=Status.STORING, next_poll_at__lte=now)
                .order_by("next_poll_at").values_list("pk", "next_poll_at")[:slots])
    return _hand_to_lane(lane, Status.STORING, rows, generation_store)


def _hand_to_lane(lane: lanes.Lane, status: str, rows: list[tuple[uuid.UUID, datetime | None]],
                  service: Callable[[str], None]) -> int:
    # Compare-and-set on next_poll_at, so a row is handed over once per due time however often (and
    # by however many chains) it is looked at; should this process die before the service claims
    # the row, it is due again after LEASE.
    if not rows:
        return 0
    handed = [str(pk) for pk in _take_due(rows, status, until=timezone.now() + LEASE)]
    # Only this thread starts work in the lanes, so each has the room counted above; a row already in
    # its lane (its service still finishing) is simply looked at again after LEASE.
    return sum(lane.start(service, pk) for pk in handed)


def _take_due(rows: list[tuple[uuid.UUID, datetime | None]], status: str, *, until: datetime) -> list[uuid.UUID]:
    """The rows still in `status` and still due when they were read, now due again at `until`: a
    compare-and-set on `next_poll_at` per row, in one transaction, so each is taken once per due time."""
    with transaction.atomic():
        return [pk for pk, due_at in rows
                if Generation.objects.filter(pk=pk, status=status, next_poll_at=due_at).update(next_poll_at=until)]


def _resolve_all(rows: list[tuple[uuid.UUID, datetime | None]]) -> None:
    # A SUBMITTING row whose submit died is settled from its attempt row here; one whose outcome is
    # unknown goes, with the others, to one task that reads fal's request listing (ambiguous.py).
    # Compare-and-set on next_poll_at, so a row is looked at once per due time.
    submitting = _take_due(rows, Status.SUBMITTING, until=timezone.now() + REDRIVE_AFTER)
    unknown = [str(pk) for pk in submitting if generation_resolve_submitting(pk)]
    if unknown:
        enqueue(AMBIGUOUS_SUBMITS_TASK, *unknown)


# Polls sent and not yet recorded, by row (this process's; the chain's lease means one chain polls):
# POLL_THREADS on the wire at once, the rest queued in the pool.
_polls: dict[uuid.UUID, tuple[str, str, Future]] = {}
_pool: ThreadPoolExecutor | None = None
POLL_THREADS = 16
MAX_POLLS_IN_FLIGHT = 4 * POLL_THREADS
# A link's last wait for the answers to its polls: a link runs at most link_max_seconds(), a minute
# inside django-q2's timeout, and a poll that fal holds may take FAL_READ_TIMEOUT and more.
SETTLE_POLLS_WITHIN = 10.0


def _send_polls(rows: list[tuple[uuid.UUID, str, str]]) -> None:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=POLL_THREADS, thread_name_prefix="fal-poll")
    client = get_fal_client()

    def poll(status_url: str) -> FalStatus | FalError:
        try:
            return client.status(status_url, logs=True)
        except FalError as exc:
            return exc

    for pk, status, status_url in rows[:max(0, MAX_POLLS_IN_FLIGHT - len(_polls))]:
        _polls[pk] = (status, status_url, _pool.submit(poll, status_url))


def polls_settle() -> None:
    """Before the tracker lease is given up (a link ends, the driver stops): record the answers of the
    polls sent, waiting up to SETTLE_POLLS_WITHIN for them, and forget the rest. An unanswered poll's
    row stays due, so whoever tracks next asks again; waiting for every answer from a fal that does
    not answer would run a link past django-q2's timeout, and the worker would be killed with the
    lanes' submits in hand."""
    futures_wait([future for _, _, future in _polls.values()], timeout=SETTLE_POLLS_WITHIN)
    _record_finished_polls(wait=False)
    for _, _, future in _polls.values():
        future.cancel()  # not sent yet: never sent; on the wire: its answer is dropped
    _polls.clear()


def _record_finished_polls(*, wait: bool) -> None:
    """Record the answers of the polls sent (all of them with `wait`, else those that have come)."""
    if wait:
        futures_wait([future for _, _, future in _polls.values()])
    finished = [pk for pk, (_, _, future) in _polls.items() if future.done()]
    rows = [(pk, _polls[pk][0], _polls[pk][1]) for pk in finished]
    record_statuses(rows, [_polls.pop(pk)[2].result() for pk in finished])


def record_statuses(rows: list[tuple[uuid.UUID, str, str]], results: list[FalStatus] | list[FalStatus | FalError],
                    *, streamed: bool = False) -> None:
    """Record fal's answers for `rows` (pk, our status as read, status URL): poll answers, or with
    `streamed` the news of status streams the caller follows (the jobs are then due again only at
    the backstop). A transaction per chunk, so the one writer SQLite allows is not held for long."""
    for chunk in range(0, len(rows), WRITE_CHUNK):
        with transaction.atomic():
            _record_polls(rows[chunk:chunk + WRITE_CHUNK], results[chunk:chunk + WRITE_CHUNK], streamed=streamed)


def _record_polls(rows: list[tuple[uuid.UUID, str, str]], results: list[FalStatus] | list[FalStatus | FalError],
                  *, streamed: bool) -> None:
    quiet: list[uuid.UUID] = []
    for (pk, status, _), outcome in zip(rows, results, strict=True):
        if not isinstance(outcome, FalStatus):
            _poll_failed(pk, outcome)
        elif status == Status.RUNNING and _recorded.get(pk) == _fingerprint(outcome):
            quiet.append(pk)
        else:
            generation_apply_status(pk, outcome, current=status, streamed=streamed)
    if quiet:
        # Still running with the logs we recorded last time: only the next poll time changes.
        # Compare-and-set on the status still, so a row a webhook just completed is left alone.
        Generation.objects.filter(pk__in=quiet, status=Status.RUNNING).update(
            next_poll_at=timezone.now() + running_interval(streamed=streamed))


# What this process last recorded for each running job, to tell a poll that brings nothing new.
# A stale or missing entry only costs a full write, never a lost one.
_recorded: dict[uuid.UUID | str, tuple] = {}
MAX_RECORDED = 20_000


def _fingerprint(fal: FalStatus) -> tuple:
    logs = fal.logs[-KEEP_LOGS:]
    return fal.status, len(fal.logs), logs[-1] if logs else None


def running_interval(*, streamed: bool = False) -> timedelta:
    """How soon a running job is polled again: once a second, or rarely when fal's webhook or its
    status stream will report."""
    if streamed:
        return STREAM_BACKSTOP
    return timedelta(seconds=WEBHOOK_BACKSTOP_INTERVAL if settings.STUDIO_FAL_WEBHOOKS else RUNNING_INTERVAL)


def queued_interval(position: int, *, streamed: bool = False) -> timedelta:
    """How soon a queued job is polled again: the deeper in fal's queue, the later (rarely while its
    status stream reports)."""
    if streamed:
        return STREAM_BACKSTOP
    return timedelta(seconds=min(RUNNING_INTERVAL + QUEUE_STEP_SECONDS * position, MAX_QUEUED_INTERVAL))


def generation_apply_status(pk: uuid.UUID | str, fal: FalStatus, *, current: str | None = None,
                            streamed: bool = False) -> bool:
    """Record fal's status for a QUEUED/RUNNING job; on COMPLETED move it to STORING, due at once (and
    enqueue its store task when no store driver runs).

    Compare-and-set on our status, so a repeated or stale report changes nothing (returns False).
    `current` is the status the caller last read (a hint that saves a query; any value is safe);
    `streamed`: its status stream is followed, so it is polled again only as a backstop.
    """
    now = timezone.now()
    common = dict(fal_status=fal.status, logs=fal.logs[-KEEP_LOGS:])
    if fal.is_completed:
        _recorded.pop(pk, None)
        moved = transition(pk, from_=[Status.QUEUED, Status.RUNNING], to=Status.STORING, completed_at=now,
                           queue_position=None, next_poll_at=now,
                           inference_seconds=fal.inference_time, **common)
        if moved and not named_lease_live(STORE_DRIVER_LEASE):
            # Without a store driver (store_driver.py), a task stores it at once. With one, the
            # driver takes the row, due now, within its next look: a task as well would only add a
            # broker write per completion, contending for the one writer SQLite allows.
            enqueue_on_commit(STORE_TASK, str(pk))
        return moved
    if fal.status == "IN_PROGRESS":
        running = dict(was_running=True, queue_position=None, next_poll_at=now + running_interval(streamed=streamed),
                       **common)
        written = ((current != Status.RUNNING
                    and transition(pk, from_=[Status.QUEUED], to=Status.RUNNING, started_at=now, **running))
                   or update_while(pk, [Status.RUNNING], **running))
        if written:
            if len(_recorded) >= MAX_RECORDED:
                _recorded.clear()
            _recorded[pk] = _fingerprint(fal)
        return written
    position = fal.queue_position or 0
    return update_while(pk, [Status.QUEUED, Status.RUNNING], queue_position=position,
                        next_poll_at=now + queued_interval(position, streamed=streamed), **common)


def _poll_failed(pk: uuid.UUID, error: FalError) -> None:
    generation = Generation.objects.get(pk=pk)
    attempt_record_failure(generation, GenerationAttempt.Kind.STATUS, error)
    if isinstance(error, FalNotFound):
        transition(pk, from_=[Status.QUEUED, Status.RUNNING], to=Status.FAILED, error_code="lost_upstream",
                   error_message="fal no longer knows this request (404)")
        return
    if isinstance(error, FalAccountBlocked):
        provider_outage(error)  # fal refuses the account: pause new submits; this job keeps its place
    # Other refusals (a lock, an unknown key, ...) are our problem, not the job's: keep trying, slowly.
    failures = generation.attempts.filter(kind=GenerationAttempt.Kind.STATUS).count()
    refused = isinstance(error, (FalRejected, FalAccountBlocked))
    delay = timedelta(seconds=30) if refused else retry_backoff(min(failures, 5), error.retry_after)
    update_while(pk, [Status.QUEUED, Status.RUNNING], next_poll_at=timezone.now() + delay)
