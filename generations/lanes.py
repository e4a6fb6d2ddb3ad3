"""The tracking chain's lanes: bounded thread pools that run submits and stores beside the polls.

A job's upstream steps are network-bound (an 80 ms round trip to fal or more, a video copy), so
running them one django-q2 task at a time serialises a burst behind one worker. The tracking chain
(services/tracking.py) instead hands each due row to a lane, which runs the very service a task
would run (`generation_submit`, `generation_store`) in one of its threads, at most `width` at once.
The services keep every guarantee on their own: the compare-and-set on the row, the row claim
(row_lease.py), the attempt committed before a submit's POST. A lane that dies with its process
loses nothing but time: the rows it held are re-driven when their claims lapse.

A lane lives as long as its process (a django-q2 worker). Its threads treat each job as Django treats
a request: the database connection is checked (or closed, past DB_CONN_MAX_AGE) before and after.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


@contextmanager
def as_a_request() -> Iterator[None]:
    """One job in a pool's thread, treated as Django treats a request: the thread's database
    connection is replaced if the database dropped it since the last job, and closed after this one
    once past CONN_MAX_AGE, so none lingers."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


class Lane:
    """A pool of `width` threads running one service on a row each; `free()` says how many more fit."""

    def __init__(self, name: str, width: Callable[[], int]) -> None:
        self.name = name
        self._width = width
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._executor: ThreadPoolExecutor | None = None

    def width(self) -> int:
        return max(1, self._width())

    def free(self) -> int:
        with self._lock:
            return max(0, self.width() - len(self._busy))

    def busy(self) -> set[str]:
        """The rows this process's lane is working on right now."""
        with self._lock:
            return set(self._busy)

    def start(self, service: Callable[[str], object], pk: str) -> bool:
        """Run `service(pk)` in a lane thread; False (and nothing run) if the lane is full or has the row."""
        with self._lock:
            if pk in self._busy or len(self._busy) >= self.width():
                return False
            self._busy.add(pk)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.width(), thread_name_prefix=self.name)
        self._executor.submit(self._run, service, pk)
        return True

    def _run(self, service: Callable[[str], object], pk: str) -> None:
        try:
            with as_a_request():
                service(pk)
        except Exception:
            # The row keeps its due time or claim: the tracker drives it again, as after a crash.
            log.exception("%s lane: %s failed", self.name, pk)
        finally:
            with self._lock:
                self._busy.discard(pk)


SUBMITS = Lane("submit", lambda: settings.STUDIO_DRIVER_SUBMITS)
STORES = Lane("store", lambda: settings.STUDIO_DRIVER_STORES)
