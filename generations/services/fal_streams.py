"""Following fal's status streams in a process of their own (`manage.py follow_fal_streams`, which
`manage.py workers` starts beside the cluster).

With STUDIO_FAL_STATUS_STREAMS set and without fal's webhooks, a job at fal is followed on its status
stream (fal_protocol/status_streams.py) rather than polled once a second: each change arrives within
the network's delay, and a followed job costs one open connection instead of a call per second. The
streams run apart from the tracking chain because reading a thousand of them is steady CPU work, and
in the chain's process it would take its time from the submits and stores (one interpreter lock).

The follower and the chain share nothing but the rows. A job's `next_poll_at` says who reports on it:
the follower keeps every job it follows due at least half of STREAM_BACKSTOP from now (pushing it
STREAM_BACKSTOP away again whenever half has passed), so the chain leaves it alone; news from a
stream is recorded exactly as a poll's answer would be (`tracking.record_statuses`: a
compare-and-set per row; a completion moves the row to STORING, due at once for the chain's store
lane; a pass's completions are recorded by a few threads at once). A job whose stream ends early
(refused, reset, quiet too long) is made due at once, polled by the chain as without streams, and
followed again only after REFOLLOW_AFTER. Should the follower die, its jobs come due within
STREAM_BACKSTOP and are polled: nothing is lost, only news delayed. One follower runs at a time (a
lease row), however many worker hosts start one.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from fal_protocol.client import FalStatus
from fal_protocol.status_streams import StatusStreams
from generations.lanes import as_a_request
from generations.models import Generation
from generations.services.lease import LeasedWork, run_while_leased
from generations.services.tracking import STREAM_BACKSTOP, record_statuses

log = logging.getLogger(__name__)
Status = Generation.Status
AT_FAL = (Status.QUEUED, Status.RUNNING)
LEASE_NAME = "fal-streams"
TICK_SECONDS = 0.1
IDLE_SECONDS = 0.5  # between looks for jobs to follow while none is followed
RENEW_EVERY = 1.0  # seconds between pushes of the followed jobs' due times
REFOLLOW_AFTER = 30.0
NEWS_EVERY = 5.0  # news within a stage (log lines) is recorded at most this often per job
NEWS_BUDGET = 0.2  # seconds a pass may spend recording starts and news within a stage
NEWS_CHUNK = 10
WRITERS = 4  # threads recording a pass's completions at once (not on SQLite: see `_writers`)
KEEP_LOGS = 100
CHUNK = 500
_FAL_STAGE: dict[str, str] = {Status.QUEUED: "IN_QUEUE", Status.RUNNING: "IN_PROGRESS"}

Row = tuple[uuid.UUID, str, str]  # (pk, status, fal status URL), as the chain records polls


def streams_enabled() -> bool:
    """Whether jobs are followed on fal's status streams: when STUDIO_FAL_STATUS_STREAMS allows some,
    and fal's webhooks do not report completions anyway."""
    return settings.STUDIO_FAL_STATUS_STREAMS > 0 and not settings.STUDIO_FAL_WEBHOOKS


@dataclass
class _Followed:
    status: str  # ours, as last recorded
    status_url: str
    logs: list[dict[str, Any]] = field(default_factory=list)  # every line its stream brought, in order
    seen_logs: set[str] = field(default_factory=set)
    held: list[FalStatus] = field(default_factory=list)  # news not recorded yet: the last of each stage
    recorded_at: float = 0.0
    pushed_at: float = 0.0  # when its due time was last pushed STREAM_BACKSTOP away


class StreamFollower(LeasedWork):
    """The jobs this process follows, and one pass of following them (`work`)."""

    def __init__(self, *, limit: int, streams: StatusStreams[uuid.UUID] | None = None) -> None:
        self.streams = streams or StatusStreams(key=settings.FAL_KEY, limit=limit,
                                                connect_timeout=settings.FAL_CONNECT_TIMEOUT)
        self.followed: dict[uuid.UUID, _Followed] = {}
        self.not_before: dict[uuid.UUID, float] = {}
        self._renewed_at = 0.0
        self._pool: ThreadPoolExecutor | None = None

    def work(self) -> float:
        """Record what the streams brought, keep the followed jobs off the chain's polls, and follow
        jobs at fal that nobody reports on, while there is room; seconds until the next pass. While
        it follows jobs, a pass waits up to TICK_SECONDS for a stream to complete or end, and the
        next pass starts at once when one does."""
        self.record_news()
        now = time.monotonic()
        if now - self._renewed_at >= RENEW_EVERY:
            self._renew()
            self._renewed_at = now
        picked_up = self.follow_new()
        if not self.followed and not picked_up:
            return IDLE_SECONDS
        self.streams.wait(TICK_SECONDS)  # a completion starts the next pass at once
        return 0.0

    def follow_new(self) -> int:
        """Follow jobs at fal whose due time nobody pushes (the chain would poll them soon); how many."""
        room = self.streams.limit - self.streams.count()
        if room <= 0:
            return 0
        soon = timezone.now() + STREAM_BACKSTOP / 2
        rows = (Generation.objects.filter(status__in=AT_FAL, next_poll_at__lte=soon).exclude(fal_status_url="")
                .order_by("next_poll_at").values_list("pk", "status", "fal_status_url")[:room + len(self.followed)])
        now = time.monotonic()
        to_follow = [(pk, status, url) for pk, status, url in rows
                     if pk not in self.followed and now >= self.not_before.get(pk, 0.0)][:room]
        if not to_follow:
            return 0
        self._push_due([pk for pk, _, _ in to_follow])
        for pk, status, status_url in to_follow:
            if self.streams.follow(pk, status_url):
                self.followed[pk] = _Followed(status, status_url, pushed_at=now)
        return len(to_follow)

    def record_news(self) -> None:
        """Record what the streams brought, as the chain records poll answers.

        A completion is recorded at once, ahead of anything else (the store waits for it). Then
        starts (queued → running), then news within a stage (a log line, a new place in the queue;
        at most once per NEWS_EVERY per job), each the longest-waiting jobs first, for at most
        NEWS_BUDGET seconds a pass: the rest waits for the next pass, so a thousand chatty streams
        neither cost a write each per line nor hold a completion up behind them. A start is
        deferred, never skipped (billing needs it): a job that completes meanwhile records both.
        Each status carries every log line its stream has brought, however fal splits them across
        events. Jobs whose stream ended early are made due at once, to be polled."""
        taken = self.streams.take()
        for pk, fal in taken.events:
            job = self.followed.get(pk)
            if job is None:
                continue
            fal = replace(fal, logs=_logs_so_far(job, fal.logs))
            if job.held and job.held[-1].status == fal.status:
                job.held[-1] = fal
            else:
                job.held.append(fal)
        now = time.monotonic()
        completed: list[uuid.UUID] = []
        waiting: list[tuple[bool, float, uuid.UUID]] = []  # (news within a stage?, recorded at, pk)
        for pk, job in self.followed.items():
            if not job.held:
                continue
            if job.held[-1].is_completed:
                completed.append(pk)
            elif (new_stage := _new_stage(job)) or now - job.recorded_at >= NEWS_EVERY:
                waiting.append((not new_stage, job.recorded_at, pk))
        waiting.sort()
        self._record(completed, now, writers=self._writers())
        deadline = time.monotonic() + NEWS_BUDGET
        for start in range(0, len(waiting), NEWS_CHUNK):
            if time.monotonic() >= deadline:
                break
            self._record([pk for _, _, pk in waiting[start:start + NEWS_CHUNK]], now)
        if taken.ended:
            for pk in taken.ended:
                self.followed.pop(pk, None)
                self.not_before[pk] = now + REFOLLOW_AFTER
            _due_now(taken.ended)
        for pk in [pk for pk, at in self.not_before.items() if at <= now]:
            del self.not_before[pk]

    def _record(self, pks: list[uuid.UUID], now: float, *, writers: int = 1) -> None:
        """Record the news held for jobs `pks`, in up to `writers` threads at once (each job's news in
        one thread, in order); forget the jobs that completed."""
        news: list[tuple[list[Row], list[FalStatus]]] = []
        for pk in pks:
            job = self.followed[pk]
            rows: list[Row] = []
            for fal in job.held:
                rows.append((pk, job.status, job.status_url))
                if fal.status == "IN_PROGRESS":
                    job.status = Status.RUNNING
            news.append((rows, job.held))
            completed = job.held[-1].is_completed
            job.held, job.recorded_at = [], now
            if completed:
                del self.followed[pk]
        shares = [news[start::writers] for start in range(min(writers, len(news)))]
        if len(shares) == 1:
            _record_share(shares[0])
        elif shares:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="fal-streams-record")
            for future in [self._pool.submit(_record_in_thread, share) for share in shares]:
                future.result()

    @staticmethod
    def _writers() -> int:
        """How many threads record completions at once: WRITERS where the database takes writes side by
        side; one on SQLite, whose single writer would only make them wait on each other."""
        return 1 if connection.vendor == "sqlite" else WRITERS

    def stop(self) -> None:
        """End every stream: the jobs they followed are due at once, for the chain to poll."""
        self.streams.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        try:
            _due_now(list(self.followed))
        except DatabaseError:  # their backstop polls come within STREAM_BACKSTOP
            log.warning("could not make %d followed jobs due at once", len(self.followed), exc_info=True)
        self.followed.clear()

    def _renew(self) -> None:
        """Keep each followed job's due time STREAM_BACKSTOP away, pushing it again once half of that
        has passed (a fifth of the jobs each second, not all); forget jobs no longer at fal
        (canceled, or finished through a poll)."""
        now = time.monotonic()
        renew_after = STREAM_BACKSTOP.total_seconds() / 2
        pks = [pk for pk, job in self.followed.items() if now - job.pushed_at >= renew_after]
        still_at_fal: set[uuid.UUID] = set()
        for start in range(0, len(pks), CHUNK):
            chunk = pks[start:start + CHUNK]
            still_at_fal.update(Generation.objects.filter(pk__in=chunk, status__in=AT_FAL).values_list("pk", flat=True))
            self._push_due(chunk)
        for pk in pks:
            if pk in still_at_fal:
                self.followed[pk].pushed_at = now
            else:
                self.followed.pop(pk, None)

    @staticmethod
    def _push_due(pks: list[uuid.UUID]) -> None:
        Generation.objects.filter(pk__in=pks, status__in=AT_FAL).update(next_poll_at=timezone.now() + STREAM_BACKSTOP)


def follower_run(stop: threading.Event) -> None:
    """Follow streams while this process holds the follower lease, until `stop` is set."""
    run_while_leased(LEASE_NAME, stop, lambda: StreamFollower(limit=settings.STUDIO_FAL_STATUS_STREAMS))


def _new_stage(job: _Followed) -> bool:
    """Whether the news held for `job` moves it on (queued → running → completed)."""
    return len(job.held) > 1 or job.held[0].status != _FAL_STAGE.get(job.status)


def _logs_so_far(job: _Followed, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for entry in new:
        key = json.dumps(entry, sort_keys=True)
        if key not in job.seen_logs:
            job.seen_logs.add(key)
            job.logs.append(entry)
    del job.logs[:-KEEP_LOGS]
    return list(job.logs)


def _record_share(news: list[tuple[list[Row], list[FalStatus]]]) -> None:
    """Record some jobs' news in one go."""
    record_statuses([row for job_rows, _ in news for row in job_rows],
                    [fal for _, job_statuses in news for fal in job_statuses], streamed=True)


def _record_in_thread(news: list[tuple[list[Row], list[FalStatus]]]) -> None:
    with as_a_request():
        _record_share(news)


def _due_now(pks: list[Any]) -> None:
    for start in range(0, len(pks), CHUNK):
        chunk = pks[start:start + CHUNK]
        Generation.objects.filter(pk__in=chunk, status__in=AT_FAL).update(next_poll_at=timezone.now())

