"""Tracking at scale: polite adaptive poll intervals, batched writes for polls that bring nothing new,
`Retry-After`, and tracking links that hand the lease over without a pause."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fal_protocol.client import FalStatus, FalUnavailable
from generations.models import Generation, GenerationAttempt, TrackerLease
from generations.services import tracking
from generations.services.lease import (
    LEASE_NAME,
    STORE_DRIVER_LEASE,
    lease_claim,
    named_lease_claim,
    next_token,
    tracker_ensure,
)
from generations.services.tracking import generation_apply_status, tracker_run, tracker_tick
from tests.conftest import studio_simulator, wait_until
from tests.generations.test_pipeline import create, make_due

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def long_sim(settings, media_root):
    """A simulator whose jobs run for a minute, so they stay IN_PROGRESS through a test."""
    with studio_simulator(settings, runners=4, run_seconds=60, cache_renders=True) as sim:
        yield sim


def queued(user, **fields):
    """A job fal has accepted (its status URL never reached: these tests apply statuses directly)."""
    generation = create(user)
    Generation.objects.filter(pk=generation.pk).update(status=Status.QUEUED, fal_status="IN_QUEUE", **fields)
    return generation


def assert_next_poll_after(generation, seconds: float, since) -> None:
    """The job is due `seconds` after the moment the code under test read the clock, which lies
    between `since` (taken before the call) and now; bounds, not a slack, so a slow machine passes."""
    due = Generation.objects.get(pk=generation.pk).next_poll_at
    delay = timedelta(seconds=seconds)
    assert since + delay <= due <= timezone.now() + delay, (since, due, seconds)


def test_a_running_job_is_polled_again_in_one_second(user, task_queue, settings):
    settings.STUDIO_FAL_WEBHOOKS = False
    generation = queued(user)
    since = timezone.now()
    assert generation_apply_status(generation.pk, FalStatus("IN_PROGRESS", logs=[{"message": "go"}])) is True
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.was_running, row.logs) == (Status.RUNNING, True, [{"message": "go"}])
    assert_next_poll_after(generation, 1.0, since)


def test_with_fal_webhooks_a_running_job_is_polled_only_as_a_backstop(user, task_queue, settings):
    settings.STUDIO_FAL_WEBHOOKS = True
    generation = queued(user)
    since = timezone.now()
    assert generation_apply_status(generation.pk, FalStatus("IN_PROGRESS")) is True
    assert Generation.objects.get(pk=generation.pk).status == Status.RUNNING
    assert_next_poll_after(generation, 10.0, since)


@pytest.mark.parametrize("position, seconds", [(0, 1.0), (4, 3.0), (18, 10.0), (500, 10.0)])
def test_a_queued_job_is_polled_less_often_the_deeper_it_waits(user, task_queue, position, seconds):
    generation = queued(user)
    since = timezone.now()
    assert generation_apply_status(generation.pk, FalStatus("IN_QUEUE", queue_position=position)) is True
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.queue_position) == (Status.QUEUED, position)
    assert_next_poll_after(generation, seconds, since)


@pytest.mark.parametrize("driver", [False, True])
def test_a_completion_is_stored_by_a_task_unless_the_store_driver_runs(user, task_queue, driver):
    # given: a running job, and (or not) a store driver holding its lease
    generation = queued(user)
    Generation.objects.filter(pk=generation.pk).update(status=Status.RUNNING, fal_status="IN_PROGRESS")
    if driver:
        assert named_lease_claim(STORE_DRIVER_LEASE, "driver-process")
    task_queue.calls.clear()  # the create's own submit and chain
    since = timezone.now()

    # when: fal reports it completed
    assert generation_apply_status(generation.pk, FalStatus("COMPLETED")) is True

    # then: it is STORING and due at once either way; a store task is queued only without the driver
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.STORING and since <= row.next_poll_at <= timezone.now()
    assert task_queue.names() == ([] if driver else ["generation_store_task"])


class RefusingClient:
    def __init__(self):
        self.calls = 0

    def status(self, status_url, *, logs=True):
        self.calls += 1
        raise FalUnavailable("429 Too many requests", status_code=429, retry_after=7.0)


def test_retry_after_is_honoured_when_fal_refuses_a_poll(user, task_queue, monkeypatch):
    generation = queued(user, fal_status_url="http://fal.invalid/status", next_poll_at=timezone.now())
    client = RefusingClient()
    monkeypatch.setattr(tracking, "get_fal_client", lambda: client)
    since = timezone.now()
    assert tracker_tick() == 1
    assert client.calls == 1
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.QUEUED
    # the first failure's own backoff would be 2 s; fal asked for 7
    assert_next_poll_after(generation, 7.0, since)
    assert GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.STATUS).count() == 1
    assert tracker_tick() == 0  # not due again before then
    assert client.calls == 1


def test_polls_that_bring_nothing_new_are_one_update_for_all_running_jobs(long_sim, user, task_queue, settings):
    settings.STUDIO_FAL_WEBHOOKS = False
    jobs = [create(user) for _ in range(3)]
    task_queue.run_all()
    wait_until(lambda: long_sim.stats()["in_progress"] == 3)
    for job in jobs:
        make_due(job)
    assert tracker_tick() == 3  # each job's first IN_PROGRESS is recorded in full
    before = {row.pk: row for row in Generation.objects.filter(pk__in=[job.pk for job in jobs])}
    assert {row.status for row in before.values()} == {Status.RUNNING}
    status_calls = long_sim.stats()["status_calls"]

    for job in jobs:
        make_due(job)
    since = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        assert tracker_tick() == 3
    assert long_sim.stats()["status_calls"] == status_calls + 3
    updates = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and '"generations_generation"' in updates[0]
    for row in Generation.objects.filter(pk__in=[job.pk for job in jobs]):
        assert (row.status, row.logs, row.updated_at) == (
            Status.RUNNING, before[row.pk].logs, before[row.pk].updated_at)
        assert_next_poll_after(row, 1.0, since)


def test_a_batched_poll_leaves_a_job_that_left_running_meanwhile_alone(long_sim, user, task_queue, settings,
                                                                      monkeypatch):
    settings.STUDIO_FAL_WEBHOOKS = False
    job = create(user)
    task_queue.run_all()
    wait_until(lambda: long_sim.stats()["in_progress"] == 1)
    make_due(job)
    tracker_tick()
    make_due(job)
    real_send_polls = tracking._send_polls

    def send_polls_while_a_webhook_completes_the_job(rows):
        Generation.objects.filter(pk=job.pk).update(status=Status.STORING, next_poll_at=None)
        real_send_polls(rows)

    monkeypatch.setattr(tracking, "_send_polls", send_polls_while_a_webhook_completes_the_job)
    assert tracker_tick() == 1
    row = Generation.objects.get(pk=job.pk)
    assert (row.status, row.next_poll_at) == (Status.STORING, None)


def test_lease_passes_from_a_link_to_its_own_successor_only(db):
    assert lease_claim("chain:0")
    assert not lease_claim("stranger:0")
    assert not lease_claim("chain:2")  # not the next link
    assert lease_claim("chain:1")
    assert not lease_claim("chain:0")  # the old link has lost it for good
    assert lease_claim("chain:1")
    assert TrackerLease.objects.get(name=LEASE_NAME).token == "chain:1"
    assert next_token("chain:1") == "chain:2"
    assert next_token("legacy") == "legacy:1" and lease_claim("chain:2")


def test_tracker_ensure_starts_a_numbered_chain(user, task_queue):
    create(user)
    task_queue.calls.clear()
    assert tracker_ensure() is True
    (func, (token,)), = task_queue.calls
    assert func == "generations.tasks.tracker_run_task" and token.endswith(":0")


def test_a_link_keeps_tracking_until_its_successor_takes_the_lease(user, task_queue, monkeypatch):
    create(user)  # something to track
    task_queue.calls.clear()
    monkeypatch.setattr(tracking, "HANDOFF_AFTER", 0.0)
    ticks = []

    def tick(*, streaming: bool = False):
        ticks.append(1)
        if len(ticks) == 3:
            assert lease_claim("chain:1")  # the successor came through the queue
        return 0

    monkeypatch.setattr(tracking, "_tick", tick)
    assert tracker_run("chain:0", run_seconds=60) == "renewed"
    assert len(ticks) == 3
    assert task_queue.calls == [("generations.tasks.tracker_run_task", ("chain:1",))]  # enqueued once
    assert TrackerLease.objects.get(name=LEASE_NAME).token == "chain:1"


def test_a_link_whose_successor_is_late_tracks_until_its_time_is_up(user, task_queue, monkeypatch):
    create(user)
    task_queue.calls.clear()
    monkeypatch.setattr(tracking, "HANDOFF_AFTER", 0.0)
    ticks = []
    monkeypatch.setattr(tracking, "_tick", lambda: ticks.append(1) or 0)
    assert tracker_run("chain:0", run_seconds=0.5) == "renewed"
    assert len(ticks) >= 3
    assert task_queue.calls == [("generations.tasks.tracker_run_task", ("chain:1",))]
    assert lease_claim("chain:1")  # the late successor still takes over from a live lease
