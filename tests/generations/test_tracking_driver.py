"""The tracking driver (generations/services/tracking_driver.py): tracking in a process of its own,
holding the tracking chain's lease, so it never waits in the task queue; the chain as its fallback.
And a link's end never waits past django-q2's timeout for a fal that does not answer."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from fal_protocol.client import FalStatus
from generations.models import Generation, TrackerLease
from generations.queue import SUBMIT_TASK, TRACKER_TASK
from generations.services import tracking
from generations.services.lease import (
    LEASE_NAME,
    driver_lease_claim,
    lease_claim,
    named_lease_release,
    tracker_ensure,
)
from generations.services.tracking import tracker_run
from generations.services.tracking_driver import tracking_driver_run
from tests.conftest import RecordingQueue, wait_until
from tests.generations.test_pipeline import create

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def clogged(monkeypatch) -> RecordingQueue:
    """django-q2's broker with a backlog no worker gets through: enqueues are recorded, never run."""
    queue = RecordingQueue()
    monkeypatch.setattr("generations.queue.async_task", queue)
    return queue


def test_the_driver_takes_the_lease_from_a_chain_link_and_no_chain_runs_while_it_lives(user, clogged):
    # given: a job to track, and a chain link holding the lease
    create(user)
    assert lease_claim("chain:0")

    # when: the driver claims the lease
    assert driver_lease_claim("driver-a")

    # then: neither that link nor its successor takes it back, nor does another host's driver...
    assert not lease_claim("chain:0") and not lease_claim("chain:1")
    assert not driver_lease_claim("driver-b")
    assert TrackerLease.objects.get(name=LEASE_NAME).token == "driver-a"
    # ...and no chain is enqueued while the driver lives, however often tracking is ensured
    clogged.calls.clear()
    assert tracker_ensure() is False and tracker_ensure() is False
    assert clogged.calls == []

    # when: the driver is gone (its lease given up, or lapsed)
    named_lease_release(LEASE_NAME, "driver-a")

    # then: a chain takes tracking over again
    assert tracker_ensure() is True
    (func, (token,)), = clogged.calls
    assert func == TRACKER_TASK and lease_claim(token)


def test_a_chain_link_stops_at_its_next_tick_once_the_driver_holds_the_lease(user, clogged, monkeypatch):
    create(user)
    clogged.calls.clear()
    ticks: list[int] = []

    def tick() -> int:
        ticks.append(1)
        assert driver_lease_claim("driver-a")  # the driver starts while the link works
        return 0

    monkeypatch.setattr(tracking, "_tick", tick)
    assert tracker_run("chain:0", run_seconds=60) == "not-owner"
    assert ticks == [1]
    assert clogged.calls == []  # it enqueued no successor either
    assert TrackerLease.objects.get(name=LEASE_NAME).token == "driver-a"


def test_the_driver_carries_a_job_to_the_end_while_the_task_queue_runs_nothing(fal_sim, media_root, user, clogged):
    # given: a job whose create-time tasks (its submit, a chain) sit in a queue no worker gets through
    generation = create(user)
    assert [func for func, _ in clogged.calls] == [SUBMIT_TASK, TRACKER_TASK]

    # when: the tracking driver runs
    stop = threading.Event()
    driver = threading.Thread(target=tracking_driver_run, args=(stop,))
    driver.start()
    try:
        # then: the job is sent, followed and stored by the driver alone, and sent once
        wait_until(lambda: Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED, timeout=30)
        assert TrackerLease.objects.get(name=LEASE_NAME).token.count(":") == 0  # a driver's, not a link's
    finally:
        stop.set()
        driver.join(10)
    assert not driver.is_alive()
    assert fal_sim.stats()["submits"] == 1
    stored = Generation.objects.get(pk=generation.pk)
    assert stored.video is not None and stored.video.duration > 0
    assert [func for func, _ in clogged.calls].count(TRACKER_TASK) == 1  # none enqueued while it ran
    # it gave the lease up as it stopped, so a chain could take over at once
    assert not TrackerLease.objects.filter(name=LEASE_NAME, expires_at__isnull=False).exists()


def test_a_link_ending_while_fal_holds_its_polls_waits_a_bounded_time_and_forgets_them(user, clogged, monkeypatch):
    # given: a poll that fal never answers, and one it has answered
    monkeypatch.setattr(tracking, "SETTLE_POLLS_WITHIN", 0.3)
    held, answered = create(user), create(user)
    Generation.objects.filter(pk__in=[held.pk, answered.pk]).update(status=Status.RUNNING, fal_status="IN_PROGRESS")
    never: Future = Future()
    never.set_running_or_notify_cancel()  # on the wire...
    late = threading.Timer(8, never.set_result, [FalStatus(status="IN_PROGRESS")])  # ...for 8 s
    late.start()
    done: Future = Future()
    done.set_result(FalStatus(status="COMPLETED"))
    monkeypatch.setitem(tracking._polls, held.pk, (Status.RUNNING, "http://fal.invalid/held", never))
    monkeypatch.setitem(tracking._polls, answered.pk, (Status.RUNNING, "http://fal.invalid/answered", done))
    monkeypatch.setattr(tracking, "_tick", lambda: 0)

    # when: a link ends
    started = time.monotonic()
    assert tracker_run("chain:0", run_seconds=0) == "renewed"

    # then: it waited for the held poll only as long as allowed, recorded the answer that came, and
    # forgot the held poll, so whoever tracks next asks fal again
    late.cancel()
    assert time.monotonic() - started < 5
    assert Generation.objects.get(pk=answered.pk).status == Status.STORING
    assert Generation.objects.get(pk=held.pk).status == Status.RUNNING
    assert tracking._polls == {}
