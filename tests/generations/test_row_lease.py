"""A running task's claim on its row (generations/services/row_lease.py): renewed by a heartbeat while
the task works, so a dead task's work is taken up again within seconds, and a second copy of the task
leaves a claimed row alone."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from generations.models import Generation
from generations.services import row_lease
from generations.services.row_lease import row_lease_claim, row_lease_held
from generations.services.store import generation_store
from generations.services.tracking import tracker_tick
from tests.conftest import wait_until
from tests.generations.test_pipeline import create, make_due, track_until

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def lease_of(generation):
    return Generation.objects.get(pk=generation.pk).lease_expires_at


def test_the_heartbeat_renews_the_claim_while_the_task_works_and_releases_it_after(studio, user, monkeypatch):
    monkeypatch.setattr(row_lease, "RENEW_EVERY", 0.05)
    generation = create(user)
    until = row_lease_claim(generation.pk, [Status.PENDING])
    assert until is not None and lease_of(generation) == until
    assert row_lease_claim(generation.pk, [Status.PENDING]) is None  # claimed: a second task stays out
    with row_lease_held(generation.pk, [Status.PENDING], until):
        wait_until(lambda: lease_of(generation) > until, timeout=5)
    assert lease_of(generation) is None
    assert row_lease_claim(generation.pk, [Status.PENDING]) is not None


def test_a_claim_the_task_released_itself_is_only_read_on_leaving_the_block(studio, user,
                                                                             django_assert_num_queries):
    generation = create(user)
    until = row_lease_claim(generation.pk, [Status.PENDING])
    with django_assert_num_queries(2) as queries:
        with row_lease_held(generation.pk, [Status.PENDING], until):
            Generation.objects.filter(pk=generation.pk).update(lease_expires_at=None)  # as an ending transition does
    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["UPDATE", "SELECT"]
    assert lease_of(generation) is None


def test_a_submit_releases_its_claim_as_fal_accepts_the_job(studio, user, task_queue):
    from generations.services.submit import generation_submit

    generation = create(user)
    generation_submit(generation.pk)
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.lease_expires_at) == (Status.QUEUED, None)
    assert row.next_poll_at <= timezone.now() + timedelta(seconds=1)  # polled within a second, not after a claim


class CountingClock:
    """timezone.now, counting the calls (each beat reads the clock once)."""

    def __init__(self):
        self.calls = 0

    def now(self):
        self.calls += 1
        return timezone.now()


def test_the_heartbeat_never_extends_a_claim_someone_else_took_over(studio, user, monkeypatch):
    monkeypatch.setattr(row_lease, "RENEW_EVERY", 0.05)
    generation = create(user)
    until = row_lease_claim(generation.pk, [Status.PENDING])
    clock = CountingClock()
    monkeypatch.setattr(row_lease, "timezone", clock)
    with row_lease_held(generation.pk, [Status.PENDING], until):
        # Our beats stalled (say, a long GC pause); the claim lapsed and another task claimed the row.
        theirs = timezone.now() + timedelta(minutes=5)
        Generation.objects.filter(pk=generation.pk).update(lease_expires_at=theirs)
        beats = clock.calls
        wait_until(lambda: clock.calls >= beats + 1, timeout=5)  # a beat found the claim taken, and stopped
        assert lease_of(generation) == theirs
    assert lease_of(generation) == theirs  # and leaving does not release their claim


def test_a_dead_store_is_redriven_once_its_claim_lapses_and_not_before(studio, user, task_queue):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    task_queue.calls.clear()
    until = row_lease_claim(generation.pk, [Status.STORING])  # a store task started, then its worker died
    make_due(generation)
    tracker_tick()
    assert task_queue.calls == []  # the claim is live: nobody else stores it
    assert Generation.objects.get(pk=generation.pk).next_poll_at == until  # looked at again when it lapses

    generation_store(generation.pk)  # a duplicate delivery of the store task does nothing
    assert Generation.objects.get(pk=generation.pk).status == Status.STORING

    Generation.objects.filter(pk=generation.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    make_due(generation)
    tracker_tick()
    assert task_queue.names() == ["generation_store"]  # handed to the store lane
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED


def test_a_dead_submit_is_resolved_once_its_claim_lapses(studio, user, task_queue):
    generation = create(user)
    task_queue.calls.clear()
    # Claimed (PENDING → SUBMITTING) by a task that died before writing its attempt row.
    until = timezone.now() + row_lease.LEASE
    Generation.objects.filter(pk=generation.pk).update(status=Status.SUBMITTING, submit_attempts=1,
                                                       lease_expires_at=until, next_poll_at=until)
    make_due(generation)
    tracker_tick()
    assert Generation.objects.get(pk=generation.pk).status == Status.SUBMITTING  # still claimed
    Generation.objects.filter(pk=generation.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    make_due(generation)
    tracker_tick()
    assert Generation.objects.get(pk=generation.pk).status == Status.PENDING  # never sent: safe to send
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    assert studio.stats()["submits"] == 1
