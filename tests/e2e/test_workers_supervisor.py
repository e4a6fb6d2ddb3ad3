"""`manage.py workers` restarts the cluster when it dies and when it stops taking tasks (a wedge: here
its processes are frozen with SIGSTOP, as a worker SIGKILLed while holding the queue lock leaves them)."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest
from django_q.models import Success
from django_q.tasks import async_task

from chaos.workers import children_of, descendants
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
    return wait_until(lambda: (children_of(supervisor.pid) or [None])[0], timeout=20)


def test_a_dead_or_wedged_cluster_is_restarted_and_its_tasks_run(tmp_path):
    log = tmp_path / "workers.log"
    with open(log, "w") as out, running("workers", "--stall-seconds", "6", "--check-every", "0.5",
                                        env=child_env(), stdout=out, stderr=subprocess.STDOUT) as supervisor:
        first = cluster_pid(supervisor)
        task = async_task("math.sqrt", 9)
        wait_until(lambda: finished(task), timeout=30)

        # Wedged: every process of the cluster frozen; a task waits and nothing finishes.
        frozen = [first, *descendants(first)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        waiting = async_task("math.sqrt", 16)
        wait_until(lambda: finished(waiting), timeout=60, interval=0.5)
        second = cluster_pid(supervisor)
        assert second != first
        assert not [pid for pid in frozen if alive(pid)]  # the wedged processes were killed, not left behind
        assert Success.objects.get(id=waiting).result == 4.0

        # Dead: the cluster's main process is killed outright.
        os.kill(second, signal.SIGKILL)
        after_death = async_task("math.sqrt", 25)
        wait_until(lambda: finished(after_death), timeout=60, interval=0.5)
        assert cluster_pid(supervisor) not in (first, second)
    text = log.read_text()
    assert "restarting the worker cluster: 1 task(s) waiting and none finished" in text
    assert "restarting the worker cluster: it exited with -9" in text
