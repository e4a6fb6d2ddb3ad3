"""Each fault the simulator can inject, met by a real job over HTTP: the exact state it leaves, the
exact end state once the fault stops, and the upstream submits counted by the simulator itself.
(Storage-side faults: test_storage_faults.py; crashes: test_pipeline.py and test_crash_table.py.)"""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from generations.models import Generation, GenerationAttempt
from generations.services.tracking import tracker_tick
from generations.upstream import reset_fal_client
from storage.models import StoredObject, UsageEntry
from tests.generations.test_pipeline import create, make_due, track_until

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status
Outcome = GenerationAttempt.Outcome


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def step(generation, task_queue):
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    return Generation.objects.get(pk=generation.pk)


def finish(generation, task_queue):
    """Run the job's tasks and tick the tracker until it has a final status."""
    task_queue.run_all()
    track_until(generation, Status.STORING, Status.SUCCEEDED, Status.FAILED)
    task_queue.run_all()
    return Generation.objects.get(pk=generation.pk)


def ledger(generation) -> list[str]:
    return sorted(UsageEntry.objects.filter(job=generation.pk).values_list("event", flat=True))


@pytest.mark.parametrize("fault", ["5xx", "429", "submit_5xx"])
def test_submit_refused_by_fal_backs_off_and_is_sent_once_when_fal_recovers(studio, user, task_queue, fault):
    studio.set_faults({fault: 1.0})
    generation = create(user)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.submit_attempts) == (Status.PENDING, 1)
    minimum = 1 if fault == "429" else 0  # Retry-After: 1 is honoured
    assert row.next_poll_at >= timezone.now() + timedelta(seconds=minimum) - timedelta(milliseconds=200)
    assert studio.submits_for(row.input) == 0

    studio.set_faults({})
    row = finish(step(generation, task_queue), task_queue)
    assert row.status == Status.SUCCEEDED
    assert list(row.attempts.filter(kind="submit").values_list("outcome", flat=True)) == [
        Outcome.UNAVAILABLE, Outcome.OK]
    assert studio.submits_for(row.input) == 1
    assert ledger(generation) == ["reserve", "settle"]


@pytest.mark.parametrize("fault, reached_fal", [("reset", 0), ("submit_reset_after_accept", 1), ("submit_timeout", 1)])
def test_ambiguous_submit_is_never_resent_and_ends_as_submit_unknown_while_the_listing_cannot_tell(
        studio, user, task_queue, settings, fault, reached_fal):
    """A reset or a read timeout after the body left, and fal's request listing unavailable: the
    studio cannot know whether fal has the request, so it never resends and ends the job once the
    listing has stayed unreadable for twice the grace period, at least a minute more (ambiguous.py's
    `expiry_after`). (With the listing: tests/generations/test_ambiguous_submits.py.)"""
    settings.FAL_READ_TIMEOUT = 0.5
    reset_fal_client()
    studio.set_faults({fault: 1.0, "listing_5xx": 1.0}, fault_delay=1.5)
    generation = create(user)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.SUBMITTING
    assert row.attempts.get(kind="submit").outcome == Outcome.AMBIGUOUS

    studio.set_faults({"listing_5xx": 1.0})
    assert step(generation, task_queue).status == Status.SUBMITTING  # within the grace period: wait, never resend
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 0
    assert step(generation, task_queue).status == Status.SUBMITTING  # past the grace, but never read: wait
    GenerationAttempt.objects.filter(generation=generation, kind="submit").update(
        started_at=timezone.now() - timedelta(seconds=61), finished_at=timezone.now() - timedelta(seconds=61))
    row = step(generation, task_queue)
    assert (row.status, row.error_code) == (Status.FAILED, "submit_unknown")
    assert row.attempts.filter(kind="submit").count() == 1
    assert studio.submits_for(row.input) == reached_fal
    assert ledger(generation) == ["release", "reserve"]


@pytest.mark.parametrize("fault", ["5xx", "429", "reset", "status_5xx"])
def test_failed_status_polls_are_recorded_and_retried_until_the_job_completes(studio, user, task_queue, fault):
    generation = create(user)
    task_queue.run_all()
    studio.set_faults({fault: 1.0})
    row = step(generation, task_queue)
    assert row.status == Status.QUEUED
    assert row.attempts.filter(kind="status", outcome=Outcome.UNAVAILABLE).count() == 1
    if fault == "429":
        assert row.next_poll_at >= timezone.now() + timedelta(milliseconds=800)

    studio.set_faults({})
    row = finish(generation, task_queue)
    assert row.status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1


@pytest.mark.parametrize("fault", ["result_5xx", "reset"])
def test_failed_result_fetches_keep_the_job_storing_until_fal_answers(studio, user, task_queue, fault):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    studio.set_faults({fault: 1.0})
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.result) == (Status.STORING, None)
    assert row.attempts.filter(kind="result", outcome=Outcome.UNAVAILABLE).count() == 1

    studio.set_faults({})
    row = step(generation, task_queue)
    assert row.status == Status.SUCCEEDED
    assert StoredObject.objects.count() == 2


def test_added_latency_slows_calls_but_changes_nothing(studio, user, task_queue):
    studio.set_faults({"latency": 1.0}, latency_seconds=0.2)
    row = finish(create(user), task_queue)
    assert row.status == Status.SUCCEEDED
    assert studio.stats()["faults"]["latency"] >= 3  # submit, status and result all waited
    assert studio.submits_for(row.input) == 1


def test_truncated_download_is_retried_and_never_stored(studio, user, task_queue):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    studio.set_faults({"download_truncated": 1.0})
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.STORING
    assert row.attempts.get(kind="download").outcome == Outcome.ERROR
    assert StoredObject.objects.count() == 0

    studio.set_faults({})
    row = step(generation, task_queue)
    assert row.status == Status.SUCCEEDED
    assert row.video.file.size == len(studio_file(studio, row))
    assert StoredObject.objects.count() == 2


def test_slow_download_completes_with_the_whole_file(studio, user, task_queue):
    studio.set_faults({"download_slow": 1.0}, download_rate_bytes=64 * 1024)
    row = finish(create(user), task_queue)
    assert row.status == Status.SUCCEEDED
    download = row.attempts.get(kind="download")
    assert (download.finished_at - download.started_at).total_seconds() >= row.video.file.size / (64 * 1024) * 0.9
    assert row.video.file.size == len(studio_file(studio, row))


@pytest.mark.parametrize("fault, code", [("result_422", "upstream_error"), ("lost", "lost_upstream")])
def test_jobs_fal_cannot_finish_fail_with_a_reason_and_release_everything(studio, user, task_queue, fault, code):
    studio.set_faults({fault: 1.0})
    row = finish(create(user), task_queue)
    assert (row.status, row.error_code) == (Status.FAILED, code)
    assert row.error_message
    assert StoredObject.objects.count() == 0
    assert ledger(row) == ["release", "reserve"]
    assert sum(UsageEntry.objects.filter(job=row.pk).values_list("usd", flat=True)) == 0
    assert studio.submits_for(row.input) == 1


def studio_file(studio, row) -> bytes:
    """The bytes fal (the simulator) serves for the job's video."""
    return httpx.get(row.result["video"]["url"]).content
