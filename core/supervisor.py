"""Keep a django-q2 cluster alive: restart it when it dies, and when it stops taking tasks.

django-q2's own guard reincarnates a worker that dies, but a worker SIGKILLed (the OOM killer, a
chaos run) while it held the lock of the queue between the pusher and the workers leaves that lock
held for ever: every other worker and the pusher block on it, the scheduler keeps enqueueing, and
nothing runs again. Seen in `make chaos`. From outside, that is a cluster whose broker has tasks
waiting while no task has finished for longer than any task may run (finished: a result django-q2
saved, or a beat the cluster gave, core/task_beat.py — the studio's tasks save no result).
`Supervisor` runs `manage.py qcluster` as its own process group, checks every few seconds, and on
death or such a stall kills the whole group and starts a fresh cluster; the work itself is recovered
by leases and the sweeper, as after any crash. At every check it also calls `on_check` (the workers command
passes the tracker's `tracker_ensure`), so work whose task died is taken up again within seconds
rather than at django-q2's scheduler's next pass (every 30 s, and the sweeper once a minute).

Waiting for a stall costs a task timeout and more (minutes in production), and the common way into
that wedge is plain: an idle worker waits for its next task inside the queue's `get()`, holding the
lock, so killing an idle worker is enough. The supervisor therefore also watches, every second, which
of the cluster's processes are blocked reading a queue's pipe (Linux /proc); when one of them dies
in that state, the lock died with it and the cluster is restarted at once (`queue_readers`). A worker
that took the lock after the last look and died before the next is still left to the stall check.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.models import Max
from django.utils import timezone

from core.stopping import stop_on_signals
from core.task_beat import ENV as TASK_BEAT_ENV
from core.task_beat import last_task_ended

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_GRACE = 3.0  # seconds: inside honcho's 5 s between SIGTERM and SIGKILL
ROOT = Path(__file__).resolve().parent.parent
# Named in each helper's environment: the token it holds its lease by (generations/services/lease.py).
HELPER_TOKEN_ENV = "STUDIO_HELPER_TOKEN"
SAMPLE_EVERY = 1.0  # seconds between looks at the cluster's processes (cheap: a walk of /proc)
READ_SYSCALL = {"x86_64": 0, "aarch64": 63}.get(os.uname().machine)  # read(2), as /proc/<pid>/syscall numbers it


def _proc_states() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) for every process, read from /proc (Linux; {} elsewhere)."""
    found: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry)] = (int(fields[1]), fields[0])
    return found


def children_of(pid: int, states: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Direct children of `pid` (zombies included), read from /proc (Linux)."""
    states = _proc_states() if states is None else states
    return sorted(child for child, (parent, _) in states.items() if parent == pid)


def child_running(pid: int, command: str) -> int | None:
    """The live child of `pid` that runs `manage.py command` (the supervisor's cluster, `qcluster`, or
    one of its helpers), or None (Linux /proc)."""
    states = _proc_states()
    for child in children_of(pid, states):
        if states[child][1] in ("Z", "X"):
            continue
        try:
            arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command.encode() in arguments:
            return child
    return None


def descendants(pid: int, states: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """Every process below `pid` (children, their children, …), zombies included."""
    states = _proc_states() if states is None else states
    found = []
    for child in children_of(pid, states):
        found += [child, *descendants(child, states)]
    return found


def reading_a_pipe(pid: int) -> bool:
    """Whether the main thread of `pid` is blocked in read(2) on a pipe (False when it cannot be told)."""
    try:
        call = Path(f"/proc/{pid}/syscall").read_text().split()
        if READ_SYSCALL is None or not call or call[0] != str(READ_SYSCALL):
            return False
        return os.readlink(f"/proc/{pid}/fd/{int(call[1], 16)}").startswith("pipe:")
    except (OSError, ValueError, IndexError):
        return False


def queue_readers(root: int) -> tuple[set[int], set[int]]:
    """(live processes under `root`, those among them blocked reading a pipe). In a django-q2 cluster the
    readers are the idle worker that holds the task queue's lock while it waits for a task, and the
    monitor likewise on the result queue: if one dies in that state, nobody can read that queue again."""
    states = _proc_states()
    alive = {pid for pid in descendants(root, states) if states[pid][1] not in ("Z", "X")}
    return alive, {pid for pid in alive if reading_a_pipe(pid)}


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


def queue_stalled(*, since: datetime, stall_after: timedelta, beat_file: Path | None = None) -> str | None:
    """Why the task queue looks stuck, or None: tasks wait in the broker, yet none has finished in
    the last `stall_after` (and none since `since`, the cluster's start, if that is later). A task
    finished when django-q2 saved its result, or when the cluster beat into `beat_file`
    (core/task_beat.py: the studio's tasks save no result)."""
    from django_q.brokers import get_broker
    from django_q.models import Task

    waiting = get_broker().queue_size()
    if not waiting:
        return None
    quiet_since = max(since, timezone.now() - stall_after)
    ended = [Task.objects.aggregate(last=Max("stopped"))["last"],
             last_task_ended(beat_file) if beat_file is not None else None]
    if any(last is not None and last >= quiet_since for last in ended):
        return None
    return f"{waiting} task(s) waiting and none finished since {quiet_since:%H:%M:%S}"


class Supervisor:
    """Runs the cluster, and beside it each of `helpers` (a `manage.py` command's arguments: a process
    that works on its own, such as the status stream follower), restarting a helper that exits."""

    def __init__(self, *, stall_after: timedelta, check_every: float = 5.0,
                 on_check: Callable[[], object] | None = None, helpers: Sequence[Sequence[str]] = ()) -> None:
        self.stall_after = stall_after
        self.check_every = check_every
        self.on_check = on_check
        self.helper_commands = [list(command) for command in helpers]
        self.helper_tokens = [uuid.uuid4().hex for _ in self.helper_commands]
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.cluster: subprocess.Popen[bytes] | None = None
        self.started_at = timezone.now()
        self.restarts = 0
        self._readers: set[int] = set()
        handle, name = tempfile.mkstemp(prefix="studio-task-beat-")
        os.close(handle)
        self.beat_file = Path(name)
        os.utime(self.beat_file, (0, 0))  # no task has ended yet

    def run(self) -> None:
        stopping = stop_on_signals()
        self._start()
        self.helpers = [self._start_helper(index) for index in range(len(self.helper_commands))]
        next_check = time.monotonic() + self.check_every
        try:
            while not stopping.wait(min(self.check_every, SAMPLE_EVERY)):
                due = time.monotonic() >= next_check
                reason = self._why_restart_now() or (self._stalled() if due else None)
                if reason:
                    log.critical("restarting the worker cluster: %s", reason)
                    self._kill()
                    self.restarts += 1
                    self._start()
                self._restart_dead_helpers()
                if due:
                    self._call_on_check()
                    next_check = time.monotonic() + self.check_every
        finally:
            self._terminate()

    def _why_restart_now(self) -> str | None:
        """The cluster died, or one of its processes died holding a queue's lock (see `queue_readers`)."""
        assert self.cluster is not None, "the cluster has not started"
        if self.cluster.poll() is not None:
            return f"it exited with {self.cluster.returncode}"
        alive, readers = queue_readers(self.cluster.pid)
        lost = sorted(self._readers - alive)
        self._readers = readers
        if lost:
            return (f"process {', '.join(map(str, lost))} died waiting on one of its queues, holding the queue's lock: "
                    "no other process can read that queue again")
        return None

    def _stalled(self) -> str | None:
        if timezone.now() - self.started_at < self.stall_after:
            return None
        try:
            close_old_connections()
            return queue_stalled(since=self.started_at, stall_after=self.stall_after, beat_file=self.beat_file)
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
                                        env={**os.environ, TASK_BEAT_ENV: str(self.beat_file)},
                                        preexec_fn=die_with_parent(signal.SIGKILL))
        self.started_at = timezone.now()
        self._readers = set()

    def _start_helper(self, index: int) -> subprocess.Popen[bytes]:
        # The same token for every process of one helper: a restarted one takes over its dead
        # predecessor's lease at once. It is restarted only once it has exited, so no two share it.
        return subprocess.Popen([sys.executable, "manage.py", *self.helper_commands[index]], cwd=ROOT,
                                env={**os.environ, HELPER_TOKEN_ENV: self.helper_tokens[index]},
                                preexec_fn=die_with_parent(signal.SIGTERM))

    def _restart_dead_helpers(self) -> None:
        for index, helper in enumerate(self.helpers):
            if helper.poll() is not None:
                log.error("restarting `manage.py %s`: it exited with %s", " ".join(self.helper_commands[index]),
                          helper.returncode)
                self.helpers[index] = self._start_helper(index)

    def _kill(self) -> None:
        assert self.cluster is not None, "the cluster has not started"
        try:
            os.killpg(self.cluster.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.cluster.wait()

    def _terminate(self) -> None:
        """Stop the cluster the way qcluster expects (SIGTERM), but within STOP_GRACE: process
        managers (honcho, systemd) SIGKILL us soon after their SIGTERM, and every task is safe to
        cut short. Then kill whatever is left of its group. The helpers likewise."""
        for helper in self.helpers:
            helper.terminate()
        for helper in self.helpers:
            try:
                helper.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                helper.kill()
        self.beat_file.unlink(missing_ok=True)
        if self.cluster is None:
            return
        try:
            os.killpg(self.cluster.pid, signal.SIGTERM)
            self.cluster.wait(STOP_GRACE)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self._kill()
