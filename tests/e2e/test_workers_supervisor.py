"""`manage.py workers` restarts the cluster when it dies and when it stops taking tasks (a wedge: here
its processes are frozen with SIGSTOP, as a worker SIGKILLed while holding the queue lock leaves them),
and at once when an idle worker is killed holding the task queue's lock; and it runs the store driver
and the status stream follower beside the cluster, restarting either when it dies."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ, Success
from django_q.tasks import async_task

from chaos.workers import children_of, descendants
from core.supervisor import child_running, reading_a_pipe
from tests.conftest import wait_until
from tests.processes import child_env, running

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def finished(task_id: str) -> bool:
    return Success.objects.filter(id=task_id).exists()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cluster_pid(supervisor: subprocess.Popen) -> int:
    return wait_until(lambda: child_running(supervisor.pid, "qcluster"), timeout=20)


def database_writable() -> bool:
    """Whether a write could start now. Only SQLite has one writer for the whole file: a process
    frozen inside a write transaction there wedges the database, not just the cluster."""
    if connection.vendor != "sqlite":
        return True
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.5)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


def freeze(pids: list[int]) -> None:
    """SIGSTOP every pid, at a moment none of them holds the database's writer (the cluster's pusher
    takes it for each look at the task table)."""
    def frozen_without_the_writer() -> bool:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if database_writable():
            return True
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        return False

    wait_until(frozen_without_the_writer, timeout=20, interval=0.05)


def test_a_dead_or_wedged_cluster_is_restarted_and_its_tasks_run(tmp_path):
    log = tmp_path / "workers.log"
    with open(log, "w") as out, running("workers", "--stall-seconds", "6", "--check-every", "0.5",
                                        env=child_env(), stdout=out, stderr=subprocess.STDOUT) as supervisor:
        first = cluster_pid(supervisor)
        task = async_task("math.sqrt", 9)
        wait_until(lambda: finished(task), timeout=30)

        # Wedged: every process of the cluster frozen; a task waits and nothing finishes.
        frozen = [first, *descendants(first)]
        freeze(frozen)
        waiting = async_task("math.sqrt", 16)
        wait_until(lambda: finished(waiting), timeout=60, interval=0.5)
        second = cluster_pid(supervisor)
        assert second != first
        assert not [pid for pid in frozen if alive(pid)]  # the wedged processes were killed, not left behind
        assert Success.objects.get(id=waiting).result == 4.0

        # Dead: the cluster's main process is killed outright. A task enqueued before the new cluster
        # runs may be taken by the dying one's pusher, and comes back only after Q_RETRY: enqueue after.
        os.kill(second, signal.SIGKILL)
        wait_until(lambda: child_running(supervisor.pid, "qcluster") not in (None, first, second), timeout=30,
                   interval=0.2)
        after_death = async_task("math.sqrt", 25)
        wait_until(lambda: finished(after_death), timeout=60, interval=0.5)
    text = log.read_text()
    assert "restarting the worker cluster: 1 task(s) waiting and none finished" in text
    assert "restarting the worker cluster: it exited with -9" in text


def sentinel_children(supervisor: subprocess.Popen) -> list[int]:
    """The sentinel's workers, then its monitor and pusher (spawned in that order, so in pid order
    until something is reincarnated)."""
    main = cluster_pid(supervisor)
    sentinel = wait_until(lambda: (children_of(main) or [None])[0], timeout=20)
    return wait_until(lambda: len(children_of(sentinel)) >= 4 and children_of(sentinel), timeout=20)


def steady_reader(workers: list[int], steady_for: float = 1.2) -> int:
    """The worker that has been waiting for a task (reading the task queue's pipe) for `steady_for`
    seconds without a break, so the supervisor, which looks twice a second, has seen it doing so.
    (A worker that took the lock after the supervisor's last look and dies before its next one is
    left to the stall check.)"""
    since: dict[int, float] = {}

    def steady() -> int | None:
        now = time.monotonic()
        readers = {pid for pid in workers if reading_a_pipe(pid)}
        for pid in set(since) - readers:
            del since[pid]
        for pid in readers:
            since.setdefault(pid, now)
        return next((pid for pid, start in since.items() if now - start >= steady_for), None)

    return wait_until(steady, timeout=30, interval=0.1)


def test_an_idle_worker_killed_while_holding_the_queue_lock_gets_the_cluster_restarted_at_once(tmp_path):
    # An idle worker waits for its next task inside the task queue's get(), holding the queue's lock:
    # SIGKILLed there, it wedges every other worker for good. The supervisor must not wait for a stall
    # (600 s here) to notice.
    log = tmp_path / "workers.log"
    env = child_env(Q_WORKERS="2")
    with open(log, "w") as out, running("workers", "--stall-seconds", "600", "--check-every", "0.5",
                                        env=env, stdout=out, stderr=subprocess.STDOUT) as supervisor:
        warm_up = async_task("math.sqrt", 9)
        wait_until(lambda: finished(warm_up), timeout=30)
        first = cluster_pid(supervisor)
        holder = steady_reader(sentinel_children(supervisor)[:2])

        os.kill(holder, signal.SIGKILL)
        wait_until(lambda: child_running(supervisor.pid, "qcluster") not in (None, first), timeout=30, interval=0.2)
        # A task enqueued before the restart may have gone into the dead queue: it comes back only
        # after Q_RETRY (the studio's tracker re-drives its own work sooner). One enqueued now runs.
        after = async_task("math.sqrt", 16)
        wait_until(lambda: finished(after), timeout=45, interval=0.5)
        assert Success.objects.get(id=after).result == 4.0
    text = log.read_text()
    assert f"restarting the worker cluster: process {holder} died waiting on one of its queues" in text
    assert "none finished" not in text  # not found by the stall check


def test_workers_are_never_recycled_so_a_long_run_of_tasks_does_not_restart_the_cluster(tmp_path):
    # django-q2 recycles a worker after 500 tasks by default: one that exits right after waiting on the
    # task queue looks to the supervisor just like one killed holding the queue's lock.
    log = tmp_path / "workers.log"
    with open(log, "w") as out, running("workers", "--stall-seconds", "600", "--check-every", "0.5",
                                        env=child_env(Q_WORKERS="2"), stdout=out,
                                        stderr=subprocess.STDOUT) as supervisor:
        first = cluster_pid(supervisor)
        workers = sentinel_children(supervisor)[:2]
        tasks = [async_task("math.sqrt", n) for n in range(1001)]  # one of the two workers runs 501 or more
        wait_until(lambda: finished(tasks[-1]) and not OrmQ.objects.exists(), timeout=120, interval=0.5)
        last = async_task("math.sqrt", 4)
        wait_until(lambda: finished(last), timeout=30)
        assert cluster_pid(supervisor) == first
        assert sentinel_children(supervisor)[:2] == workers  # the same two workers ran every task
    assert "restarting the worker cluster" not in log.read_text()


def test_a_backlog_of_tasks_that_save_no_result_is_not_taken_for_a_stall(tmp_path):
    # The studio enqueues its tasks with save=False: django-q2 keeps no result of them, so only the
    # cluster's beat (core/task_beat.py) shows they are ending. Here the queue stays longer than the
    # stall window: 2 workers, 40 tasks of 0.4 s each, 8 s of work against a 4 s window.
    log = tmp_path / "workers.log"
    with open(log, "w") as out, running("workers", "--stall-seconds", "4", "--check-every", "0.5",
                                        env=child_env(Q_WORKERS="2"), stdout=out,
                                        stderr=subprocess.STDOUT) as supervisor:
        first = cluster_pid(supervisor)
        for _ in range(40):
            async_task("time.sleep", 0.4, save=False)
        wait_until(lambda: not OrmQ.objects.exists(), timeout=60, interval=0.5)
        assert not Success.objects.exists()  # nothing was saved: the beat alone said tasks ended
        assert cluster_pid(supervisor) == first
    assert "restarting the worker cluster" not in log.read_text()


def test_a_killed_process_that_held_no_queue_lock_is_left_to_django_q2(tmp_path):
    log = tmp_path / "workers.log"
    with open(log, "w") as out, running("workers", "--stall-seconds", "600", "--check-every", "0.5",
                                        env=child_env(Q_WORKERS="2"), stdout=out,
                                        stderr=subprocess.STDOUT) as supervisor:
        warm_up = async_task("math.sqrt", 9)
        wait_until(lambda: finished(warm_up), timeout=30)
        first = cluster_pid(supervisor)
        pusher = sentinel_children(supervisor)[-1]
        assert not reading_a_pipe(pusher)

        os.kill(pusher, signal.SIGKILL)  # django-q2's guard reincarnates it; the cluster carries on
        after = async_task("math.sqrt", 25)
        wait_until(lambda: finished(after), timeout=45, interval=0.5)
        assert cluster_pid(supervisor) == first
    assert "restarting the worker cluster" not in log.read_text()


def test_the_helpers_run_beside_the_cluster_and_a_dead_one_is_restarted(tmp_path):
    # given: the workers command with status streams on (no fal webhooks)
    from generations.models import TrackerLease
    from generations.services.lease import LEASE_DURATION, LEASE_NAME, STORE_DRIVER_LEASE, named_lease_live

    log = tmp_path / "workers.log"
    env = child_env(STUDIO_FAL_STATUS_STREAMS="100", STUDIO_FAL_WEBHOOKS="false")
    with open(log, "w") as out, running("workers", "--check-every", "0.5", env=env, stdout=out,
                                        stderr=subprocess.STDOUT) as supervisor:
        # then: the tracking driver, the store driver and the stream follower each run, and the
        # drivers hold their leases (the tracker's by a driver's token, not a chain link's)
        assert wait_until(lambda: child_running(supervisor.pid, "drive_tracking"), timeout=20)
        driver = wait_until(lambda: child_running(supervisor.pid, "drive_stores"), timeout=20)
        assert wait_until(lambda: child_running(supervisor.pid, "follow_fal_streams"), timeout=20)
        wait_until(lambda: named_lease_live(STORE_DRIVER_LEASE) and named_lease_live(LEASE_NAME), timeout=30)
        assert ":" not in TrackerLease.objects.get(name=LEASE_NAME).token

        # when: the store driver is killed outright
        token = TrackerLease.objects.get(name=STORE_DRIVER_LEASE).token
        os.kill(driver, signal.SIGKILL)
        killed_at = timezone.now()  # after: the dead driver's last renewal came before it

        # then: a new one runs within seconds and renews the dead one's lease by the same token, not
        # waiting for it to lapse; the cluster was left alone
        cluster = cluster_pid(supervisor)
        wait_until(lambda: child_running(supervisor.pid, "drive_stores") not in (None, driver), timeout=20)
        wait_until(lambda: TrackerLease.objects.get(name=STORE_DRIVER_LEASE).expires_at
                   > killed_at + LEASE_DURATION, timeout=20)
        assert TrackerLease.objects.get(name=STORE_DRIVER_LEASE).token == token
        assert cluster_pid(supervisor) == cluster
    assert "restarting `manage.py drive_stores`: it exited with -9" in log.read_text()
