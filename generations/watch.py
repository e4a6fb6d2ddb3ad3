"""Waiting for a generation to change, for many waiters at the price of one query.

Status streams, the REST API's event stream, the live pages and `Prefer: wait` all wait for "this
job changed" (a gallery page's stream: any of its jobs). Each web process runs one watcher thread:
while anyone waits, it reads the change marker of every watched row in one query per WATCH_SECONDS
and wakes the waiters whose row moved (or vanished). It works the same on SQLite and PostgreSQL and
across any number of web and worker processes, since the database is the only thing they share. The
thread ends when nobody has waited for a while, closing its connection.

A marker is what every change of a row touches: `updated_at` (each status transition and every
poll that brings news sets it) and the moderation flag (hiding sets no timestamp).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from django.db import DatabaseError, connection

from core.streaming import blocking_allowed, in_db_thread
from generations.models import Generation

WATCH_SECONDS = 0.25
SOON_SECONDS = 1.0  # how often an answer that changes by itself (Reading.soon) is read again
IDLE_SECONDS = 5.0  # the thread stops after this long without waiters
BATCH = 500  # rows per query (SQLite allows 999 parameters in older builds)
GONE: Hashable = ("gone",)


def marker_of(generation: Generation) -> Hashable:
    """The change marker of a row just read (compare with what the watcher reads later)."""
    return (generation.updated_at, generation.is_hidden)


@dataclass(eq=False)
class _Waiter:
    marker: Hashable
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future | None = None
    event: threading.Event = field(default_factory=threading.Event)

    def wake(self) -> None:
        self.event.set()
        if self.loop is not None and self.future is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed: the waiter has gone
                self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class ChangeWatch:
    """Waiters by generation id, and the thread that wakes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[uuid.UUID, set[_Waiter]] = {}
        self._thread: threading.Thread | None = None

    async def changed(self, markers: Mapping[uuid.UUID, Hashable], within: float) -> bool:
        """Wait until any row of `markers` no longer has its marker (True) or `within` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiters = {pk: _Waiter(marker, loop, future) for pk, marker in markers.items()}
        for pk, waiter in waiters.items():
            self._add(pk, waiter)
        try:
            await asyncio.wait_for(future, within)
            return True
        except TimeoutError:
            return False
        finally:
            for pk, waiter in waiters.items():
                self._remove(pk, waiter)

    def changed_sync(self, pk: uuid.UUID, marker: Hashable, within: float) -> bool:
        """The blocking form of `changed`, for sync views."""
        waiter = _Waiter(marker)
        self._add(pk, waiter)
        try:
            return waiter.event.wait(within)
        finally:
            self._remove(pk, waiter)

    def _add(self, pk: uuid.UUID, waiter: _Waiter) -> None:
        with self._lock:
            self._waiters.setdefault(pk, set()).add(waiter)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="studio-change-watch", daemon=True)
                self._thread.start()

    def _remove(self, pk: uuid.UUID, waiter: _Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(pk)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[pk]

    def _run(self) -> None:
        idle_since = time.monotonic()
        try:
            while True:
                time.sleep(WATCH_SECONDS)
                with self._lock:
                    watched = {pk: list(waiters) for pk, waiters in self._waiters.items()}
                    if not watched and time.monotonic() - idle_since >= IDLE_SECONDS:
                        self._thread = None
                        return
                if not watched:
                    continue
                idle_since = time.monotonic()
                try:
                    markers = _read_markers(list(watched))
                except DatabaseError:  # a blip or a restart: reconnect on the next round
                    connection.close()
                    continue
                for pk, waiters in watched.items():
                    now = markers.get(pk, GONE)
                    for waiter in waiters:
                        if waiter.marker != now:
                            waiter.wake()
        finally:
            with self._lock:
                if self._thread is threading.current_thread():  # ended by an error, not idleness
                    self._thread = None
            connection.close()


def _read_markers(pks: list[uuid.UUID]) -> dict[uuid.UUID, Hashable]:
    markers: dict[uuid.UUID, Hashable] = {}
    for start in range(0, len(pks), BATCH):
        rows = Generation.objects.filter(pk__in=pks[start:start + BATCH]).values_list("pk", "updated_at", "is_hidden")
        markers.update((pk, (updated_at, hidden)) for pk, updated_at, hidden in rows)
    return markers


watch = ChangeWatch()


class Reading(NamedTuple):
    """What a watched read found: the row's marker, the value made from it, and whether that value
    may change while the row does not (a job waiting for a slot moves up as others are sent)."""

    marker: Hashable
    value: object
    soon: bool = False


async def watched(read: Callable[[], Mapping[uuid.UUID, Reading]], *,
                  every: float) -> AsyncIterator[dict[uuid.UUID, object]]:
    """`read()`'s values by row now, then again each time one of its rows changes (at least every
    SOON_SECONDS while a reading says `soon`), and the last values once more whenever `every` seconds
    pass without a change (for the caller's keep-alives); the end once `read` finds no row. A row
    missing from a reading is gone; which rows `read` reads is up to it, and may shrink between turns.

    `read` runs on the database pool (core.streaming), so waiting costs a coroutine, not a thread,
    and quiet rows are not read again."""
    readings = await in_db_thread(read)
    while readings:
        yield {pk: reading.value for pk, reading in readings.items()}
        soon = any(reading.soon for reading in readings.values())
        if blocking_allowed():  # stepped in a thread of its own under WSGI, with no loop to wait on
            time.sleep(WATCH_SECONDS)  # noqa: ASYNC251
            changed = True
        else:
            markers = {pk: reading.marker for pk, reading in readings.items()}
            changed = await watch.changed(markers, min(every, SOON_SECONDS) if soon else every)
        if changed or soon:
            readings = await in_db_thread(read)


def wait_for_end(read: Callable[[], Generation | None], seconds: float) -> Generation | None:
    """`read()` again each time its generation changes, until it is terminal, gone, or `seconds`
    have passed; the last reading. Blocks its thread (sync views: `Prefer: wait`), but outside a
    transaction gives its database connection back while it waits."""
    deadline = time.monotonic() + seconds
    while True:
        generation = read()
        left = deadline - time.monotonic()
        if generation is None or generation.status in Generation.TERMINAL or left <= 0:
            return generation
        if not connection.in_atomic_block:
            connection.close()
        watch.changed_sync(generation.pk, marker_of(generation), left)
