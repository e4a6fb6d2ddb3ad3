"""Keep a django-q2 cluster alive: restart it when it dies, and when it stops taking tasks.

django-q2's own guard reincarnates a worker that dies, but a worker SIGKILLed (the OOM killer, a
chaos run) while it held the lock of the queue between the pusher and the workers leaves that lock
held for ever: every other worker and the pusher block on it, the scheduler keeps enqueueing, and
nothing runs again. Seen in `make chaos`. From outside, that is a cluster whose broker has tasks
waiting while no task has finished for longer than any task may run. `Supervisor` runs
`manage.py qcluster` as its own process group, checks every few seconds, and on death or such a
stall kills the whole group and starts a fresh cluster; the work itself is recovered by leases and
the sweeper, as after any crash. At every check it also calls `on_check` (the workers command
passes the tracker's `tracker_ensure`), so work whose task died is taken up again within seconds
rather than at django-q2's scheduler's next pass (every 30 s, and the sweeper once a minute).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import Max
from django.utils import timezone

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_GRACE = 3.0  # seconds: inside honcho's 5 s between SIGTERM and SIGKILL
ROOT = Path(__file__).resolve().parent.parent


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `sig` when the process that started it dies, even by SIGKILL,
    so a killed parent leaves nothing running (Linux; elsewhere nothing happens)."""
    def arrange() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig)
        except (OSError, AttributeError):
            pass

    return arrange


def default_stall_after() -> timedelta:
    """Longer than any task may run (django-q2 kills it at `timeout`), plus slack."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"] + 30)


def queue_stalled(*, since: datetime, stall_after: timedelta) -> str | None:
    """Why the task queue looks stuck, or None: tasks wait in the broker, yet none has finished in
    the last `stall_after` (and none since `since`, the cluster's start, if that is later)."""
    from django_q.brokers import get_broker
    from django_q.models import Task

    waiting = get_broker().queue_size()
    if not waiting:
        return None
    quiet_since = max(since, timezone.now() - stall_after)
    last = Task.objects.aggregate(last=Max("stopped"))["last"]
    if last is not None and last >= quiet_since:
        return None
    return f"{waiting} task(s) waiting and none finished since {quiet_since:%H:%M:%S}"


class Supervisor:
    def __init__(self, *, stall_after: timedelta, check_every: float = 5.0,
                 on_check: Callable[[], object] | None = None):
        self.stall_after = stall_after
        self.check_every = check_every
        self.on_check = on_check
        self.cluster: subprocess.Popen | None = None
        self.started_at = timezone.now()
        self.restarts = 0
        self._stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self._start()
        try:
            while not self._stopping:
                time.sleep(self.check_every)
                if self._stopping:
                    break
                reason = self._why_restart()
                if reason:
                    log.critical("restarting the worker cluster: %s", reason)
                    self._kill()
                    self.restarts += 1
                    self._start()
                self._call_on_check()
        finally:
            self._terminate()

    def _why_restart(self) -> str | None:
        if self.cluster.poll() is not None:
            return f"it exited with {self.cluster.returncode}"
        if timezone.now() - self.started_at < self.stall_after:
            return None
        try:
            close_old_connections()
            return queue_stalled(since=self.started_at, stall_after=self.stall_after)
        except DatabaseError as exc:  # the database is away (a restart): judge again later
            log.warning("could not check the task queue: %s", exc)
            return None

    def _call_on_check(self) -> None:
        if self.on_check is None:
            return
        try:
            close_old_connections()
            self.on_check()
        except DatabaseError as exc:  # the database is away (a restart): try again at the next check
            log.warning("the periodic check could not run: %s", exc)

    def _start(self) -> None:
        # Its own session, so a restart can kill its whole process group; SIGKILL if we die first.
        self.cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, start_new_session=True,
                                        preexec_fn=die_with_parent(signal.SIGKILL))
        self.started_at = timezone.now()

    def _kill(self) -> None:
        try:
            os.killpg(self.cluster.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.cluster.wait()

    def _terminate(self) -> None:
        """Stop the cluster the way qcluster expects (SIGTERM), but within STOP_GRACE: process
        managers (honcho, systemd) SIGKILL us soon after their SIGTERM, and every task is safe to
        cut short. Then kill whatever is left of its group."""
        if self.cluster is None:
            return
        try:
            os.killpg(self.cluster.pid, signal.SIGTERM)
            self.cluster.wait(STOP_GRACE)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self._kill()

    def _stop(self, signum, frame) -> None:
        self._stopping = True
