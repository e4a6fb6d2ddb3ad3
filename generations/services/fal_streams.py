"""The tracking chain's view of fal's status streams (fal_protocol/status_streams.py).

With STUDIO_FAL_STATUS_STREAMS set and without fal's webhooks, a job at fal is followed on its
status stream rather than polled once a second: each change then arrives within the network's delay,
and a followed job costs one open connection instead of a call per second. Polling stays, as the
backstop: a followed job is still polled every STREAM_BACKSTOP, and a job whose stream ended early
(refused, reset, quiet too long) is polled as before and followed again only after REFOLLOW_AFTER.

The streams belong to the process that runs a tracking link, which alone calls these functions (the
chain's lease means one link at a time); `stop` ends them when the link ends, and makes the jobs
they followed due at once, so the next link follows them without a gap.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from fal_protocol.client import FalStatus
from fal_protocol.status_streams import StatusStreams
from generations.models import Generation

log = logging.getLogger(__name__)
Status = Generation.Status
STREAM_BACKSTOP = timedelta(seconds=10)
REFOLLOW_AFTER = 30.0
NEWS_EVERY = 5.0  # news within a stage (log lines) is handed on at most this often per job
_FAL_STAGE: dict[str, str] = {Status.QUEUED: "IN_QUEUE", Status.RUNNING: "IN_PROGRESS"}
KEEP_LOGS = 100

Row = tuple[uuid.UUID, str, str]  # (pk, status, fal status URL), as the chain polls them

_streams: StatusStreams[uuid.UUID] | None = None
_followed: dict[uuid.UUID, tuple[str, str]] = {}  # pk → (our status as last recorded, status URL)
_logs: dict[uuid.UUID, tuple[list[dict[str, Any]], set[str]]] = {}  # the logs a stream brought, in order
_not_before: dict[uuid.UUID, float] = {}  # streams that ended early: not followed again before then
_held_news: dict[uuid.UUID, list[FalStatus]] = {}  # news not handed on yet: the last of each stage, in order
_news_sent_at: dict[uuid.UUID, float] = {}


def streams_enabled() -> bool:
    """Whether the chain follows status streams: when STUDIO_FAL_STATUS_STREAMS allows some, and
    fal's webhooks do not report completions anyway."""
    return settings.STUDIO_FAL_STATUS_STREAMS > 0 and not settings.STUDIO_FAL_WEBHOOKS


def following(pk: uuid.UUID | str) -> bool:
    """Whether this process follows the status stream of job `pk`."""
    return pk in _followed


def follow_or_poll(rows: list[Row]) -> list[Row]:
    """Follow the streams of due jobs while there is room; the rows left to poll. A job already
    followed is due only for its backstop poll, and is polled."""
    streams = _streams_started()
    now = time.monotonic()
    room = streams.limit - streams.count()
    to_follow: list[Row] = []
    to_poll: list[Row] = []
    for row in rows:
        pk = row[0]
        if pk in _followed or now < _not_before.get(pk, 0.0) or len(to_follow) >= room:
            to_poll.append(row)
        else:
            to_follow.append(row)
    if to_follow:
        Generation.objects.filter(pk__in=[pk for pk, _, _ in to_follow], status__in=[Status.QUEUED, Status.RUNNING]
                                  ).update(next_poll_at=timezone.now() + STREAM_BACKSTOP)
        for pk, status, status_url in to_follow:
            if streams.follow(pk, status_url):
                _followed[pk] = (status, status_url)
    return to_poll


def news() -> tuple[list[Row], list[FalStatus]]:
    """What the streams brought, as rows and statuses the chain records like poll answers.

    A change of stage (queued → running → completed) is handed on at once, and a start is never
    skipped (billing needs it); news within a stage (a log line, a new place in the queue) at most
    once per NEWS_EVERY per job, so a thousand chatty streams do not cost a write each per line.
    Each status carries every log line its stream has brought, however fal splits them across
    events. Jobs whose stream ended early are made due at once, to be polled."""
    if _streams is None:
        return [], []
    taken = _streams.take()
    for pk, fal in taken.events:
        fal = replace(fal, logs=_logs_so_far(pk, fal.logs))
        waiting = _held_news.get(pk, [])
        if waiting and waiting[-1].status == fal.status:
            waiting[-1] = fal
        else:
            _held_news[pk] = [*waiting, fal]
    now = time.monotonic()
    rows, statuses = [], []
    for pk in [pk for pk, held in _held_news.items() if _due(pk, held, now)]:
        for fal in _held_news.pop(pk):
            status, status_url = _followed.get(pk, (Status.RUNNING, ""))
            rows.append((pk, status, status_url))
            statuses.append(fal)
            _news_sent_at[pk] = now
            if fal.is_completed:
                _forget(pk)
            elif fal.status == "IN_PROGRESS" and pk in _followed:
                _followed[pk] = (Status.RUNNING, status_url)
    if taken.ended:
        for pk in taken.ended:
            _forget(pk)
            _not_before[pk] = time.monotonic() + REFOLLOW_AFTER
        _due_now(taken.ended)
    return rows, statuses


def _due(pk: uuid.UUID, held: list[FalStatus], now: float) -> bool:
    stage = _FAL_STAGE.get(_followed.get(pk, ("", ""))[0])
    return len(held) > 1 or held[0].status != stage or now - _news_sent_at.get(pk, 0.0) >= NEWS_EVERY


def stop() -> None:
    """End every stream (the link is ending): the jobs they followed are due at once."""
    global _streams
    if _streams is None:
        return
    _streams.close()
    _streams = None
    try:
        _due_now(list(_followed))
    except DatabaseError:  # the link ends on a database error: its backstop polls come within STREAM_BACKSTOP
        log.warning("could not make %d followed jobs due at once", len(_followed), exc_info=True)
    _followed.clear()
    _logs.clear()
    _not_before.clear()
    _held_news.clear()
    _news_sent_at.clear()


def _streams_started() -> StatusStreams[uuid.UUID]:
    global _streams
    if _streams is None:
        _streams = StatusStreams(key=settings.FAL_KEY, limit=settings.STUDIO_FAL_STATUS_STREAMS,
                                 connect_timeout=settings.FAL_CONNECT_TIMEOUT)
    return _streams


def _logs_so_far(pk: uuid.UUID, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept, seen = _logs.setdefault(pk, ([], set()))
    for entry in new:
        key = json.dumps(entry, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    del kept[:-KEEP_LOGS]
    return list(kept)


def _forget(pk: uuid.UUID) -> None:
    _followed.pop(pk, None)
    _logs.pop(pk, None)
    _news_sent_at.pop(pk, None)


def _due_now(pks: list[Any]) -> None:
    if pks:
        Generation.objects.filter(pk__in=pks, status__in=[Status.QUEUED, Status.RUNNING]).update(
            next_poll_at=timezone.now())
