"""The tracking chain's lanes (generations/lanes.py): bounded, concurrent, and the same services as the tasks.

The first tests drive a Lane directly. The last runs real tracking links with real lanes (no recorded
queue) against the simulator: a burst is submitted and stored with several calls in flight at once, and
every job still ends with exactly one submit and one stored video.
"""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from generations import lanes
from generations.lanes import Lane
from generations.models import Generation
from generations.services import store, submit, tracking
from generations.services.lease import STORE_DRIVER_LEASE, named_lease_claim, named_lease_release
from generations.services.store_driver import StoreDriver
from generations.services.tracking import tracker_run
from storage.models import StoredObject, UserQuota
from tests.conftest import studio_simulator, wait_until
from tests.generations.test_pipeline import create

Status = Generation.Status


def test_a_lane_runs_at_most_its_width_and_never_one_row_twice():
    release = threading.Event()
    started: list[str] = []
    lane = Lane("test", lambda: 2)

    def service(pk: str) -> None:
        started.append(pk)
        release.wait(10)

    try:
        assert lane.start(service, "a") and lane.start(service, "b")
        assert lane.free() == 0
        assert lane.start(service, "c") is False  # full: refused, not queued
        wait_until(lambda: sorted(started) == ["a", "b"])
        assert lane.busy() == {"a", "b"}
    finally:
        release.set()
    wait_until(lambda: lane.free() == 2)
    assert lane.start(service, "a")
    assert lane.start(service, "a") is False  # the row is already in the lane
    wait_until(lambda: lane.free() == 2)
    assert started == ["a", "b", "a"] or sorted(started) == ["a", "a", "b"]


def test_a_failing_service_is_logged_and_frees_its_slot(caplog):
    lane = Lane("test", lambda: 1)

    def service(pk: str) -> None:
        raise RuntimeError("database went away")

    assert lane.start(service, "x")
    wait_until(lambda: lane.free() == 1)
    assert "test lane: x failed" in caplog.text and "database went away" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_chain_submits_and_stores_a_burst_in_parallel_once_each(settings, media_root, user, monkeypatch):
    jobs, width = 8, 4
    settings.STUDIO_DRIVER_SUBMITS = settings.STUDIO_DRIVER_STORES = width
    # Fresh lanes for this test's settings (the module's lanes live as long as the process).
    monkeypatch.setattr(lanes, "SUBMITS", Lane("submit", lambda: settings.STUDIO_DRIVER_SUBMITS))
    monkeypatch.setattr(lanes, "STORES", Lane("store", lambda: settings.STUDIO_DRIVER_STORES))
    monkeypatch.setattr("generations.queue.async_task", lambda *args, **kwargs: "dropped")  # lanes only
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100})

    # Each kind of service waits at a barrier until `width` of its kind are running at once: the burst
    # gets through only if the lanes really run side by side (one at a time, it would break the barrier).
    barriers = {"submit": threading.Barrier(width, timeout=20), "store": threading.Barrier(width, timeout=20)}
    calls: Counter[str] = Counter()

    def side_by_side(kind, service):
        def run(pk: str) -> None:
            calls[kind] += 1
            if calls[kind] <= width:
                barriers[kind].wait()
            service(pk)
        return run

    monkeypatch.setattr(tracking, "generation_submit_dispatched",
                        side_by_side("submit", submit.generation_submit_dispatched))
    monkeypatch.setattr(tracking, "generation_store", side_by_side("store", store.generation_store))

    with studio_simulator(settings, runners=jobs, run_seconds=0.3) as sim:
        ids = [create(user, prompt=f"burst {i}").pk for i in range(jobs)]
        started = timezone.now()

        def link() -> bool:
            tracker_run(f"burst:{started.timestamp()}", run_seconds=0.5)
            return Generation.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == jobs

        wait_until(link, timeout=60, interval=0)
        assert not barriers["submit"].broken and not barriers["store"].broken
        assert sim.stats()["submits"] == jobs
        assert Counter(r["input"]["prompt"] for r in sim.requests()) == {f"burst {i}": 1 for i in range(jobs)}
    assert StoredObject.objects.filter(key__endswith=".mp4").count() == jobs
    assert calls == {"submit": jobs, "store": jobs}


@pytest.mark.django_db(transaction=True)
def test_while_the_store_driver_holds_its_lease_the_chain_leaves_the_stores_to_it(settings, user, monkeypatch):
    # given: two finished jobs due for storing, and a store lane that records what it stores
    monkeypatch.setattr(lanes, "STORES", Lane("store", lambda: 4))
    stored: list[str] = []
    monkeypatch.setattr(tracking, "generation_store", stored.append)
    first, second = create(user, prompt="first"), create(user, prompt="second")
    due = timezone.now() - timedelta(seconds=1)
    Generation.objects.filter(pk__in=[first.pk, second.pk]).update(status=Status.STORING, next_poll_at=due)
    Generation.objects.filter(pk=second.pk).update(next_poll_at=due + timedelta(milliseconds=1))  # first is older

    # when: the store driver holds its lease
    assert named_lease_claim(STORE_DRIVER_LEASE, "driver-process")

    # then: the chain hands nothing to its lane and leaves the rows as they were
    assert tracking._dispatch_stores(timezone.now()) == 0
    assert stored == [] and Generation.objects.get(pk=first.pk).next_poll_at == due

    # and the driver takes them, each once, oldest due first
    assert StoreDriver().work() == tracking.MIN_SLEEP
    wait_until(lambda: not lanes.STORES.busy())
    assert stored == [str(first.pk), str(second.pk)]
    assert StoreDriver().work() == tracking.MAX_SLEEP  # nothing due any more (taken until its claim would lapse)

    # when: the driver is gone (its lease released, or lapsed), the chain stores again
    named_lease_release(STORE_DRIVER_LEASE, "driver-process")
    Generation.objects.filter(pk=second.pk).update(next_poll_at=due)
    assert tracking._dispatch_stores(timezone.now()) == 1
    wait_until(lambda: not lanes.STORES.busy())
    assert stored == [str(first.pk), str(second.pk), str(second.pk)]
