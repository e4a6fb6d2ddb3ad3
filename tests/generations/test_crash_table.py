"""The crash table (README, "When things fail"), rows not covered in test_pipeline.py: the enqueue lost after
create's commit, and the tracking chain dying while it polls. Each ends with exactly one upstream
submit and one stored video. (The other rows: test_pipeline.py `test_crash_*` and
`test_ambiguous_submit_*`; real SIGKILLs of workers: `make chaos`, tests/e2e/test_chaos_smoke.py.)"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generations.models import Generation, TrackerLease
from generations.services.lease import LEASE_NAME, lease_claim, tracker_ensure
from generations.services.tracking import tracker_run
from generations.tasks import sweep_task
from storage.models import StoredObject
from tests.generations.test_pipeline import create

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def run_chain_until_done(task_queue, generation, token, rounds=40):
    """Run tracking links (shortened) and the tasks they enqueue until the job is terminal."""
    for _ in range(rounds):
        tracker_run(token, run_seconds=0.3)
        task_queue.run_all()
        row = Generation.objects.get(pk=generation.pk)
        if row.status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED):
            return row
    raise AssertionError(f"still {row.status} after {rounds} links")


def test_enqueue_lost_after_create_commit_is_submitted_once_by_the_sweepers_chain(studio, user, task_queue):
    generation = create(user)
    task_queue.calls.clear()  # the process died between the commit and the on_commit enqueue
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.PENDING and row.next_poll_at <= timezone.now()  # due at once
    assert studio.stats()["submits"] == 0

    assert sweep_task() is True
    assert task_queue.names() == ["tracker_run_task"]
    token = task_queue.calls.pop()[1][0]
    assert tracker_run(token, run_seconds=0.2) == "renewed"
    # The chain handed the job to its submit lane (recorded here), once, and enqueued its next link.
    assert sorted(task_queue.names()) == ["generation_submit_dispatched", "tracker_run_task"]

    row = run_chain_until_done(task_queue, generation, token=token)
    assert row.status == Status.SUCCEEDED
    assert studio.stats()["submits"] == 1
    assert StoredObject.objects.count() == 2


def test_tracking_chain_killed_mid_poll_is_replaced_after_its_lease_expires(studio, user, task_queue):
    generation = create(user)
    task_queue.run_all()  # submitted
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    task_queue.calls.clear()
    assert lease_claim("killed-chain")  # a chain took the lease, then its worker was SIGKILLed

    # While the dead chain's lease runs, nobody starts a second chain (no double polling).
    assert tracker_ensure() is False and sweep_task() is False
    assert task_queue.calls == []
    assert tracker_run("intruder", run_seconds=0.2) == "not-owner"
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED

    TrackerLease.objects.filter(name=LEASE_NAME).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_task() is True
    (func, (token,)), = task_queue.calls
    task_queue.calls.clear()
    row = run_chain_until_done(task_queue, generation, token=token)
    assert row.status == Status.SUCCEEDED
    assert studio.stats()["submits"] == 1
    assert StoredObject.objects.count() == 2
    assert TrackerLease.objects.get(name=LEASE_NAME).token == token
