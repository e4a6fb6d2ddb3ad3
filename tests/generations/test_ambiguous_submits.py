"""Ambiguous submits resolved through fal's request listing (generations/services/ambiguous.py), met
by real jobs against the simulator over HTTP: found → adopted, never resent; demonstrably absent →
resent once; anything unclear → waiting, never guessing. Submits are counted by the simulator."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from generations.models import Generation, GenerationAttempt
from generations.services import ambiguous
from generations.services.tracking import tracker_tick
from generations.upstream import reset_fal_client
from tests.conftest import wait_until
from tests.generations.test_pipeline import Crash, create, make_due
from tests.generations.test_upstream_faults import finish, ledger, step

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status
Outcome = GenerationAttempt.Outcome
# Seconds to move an attempt into the past so that its window, late arrivals included, is over.
PAST_THE_WINDOW = ambiguous.LATE_ARRIVAL.total_seconds() + 10


@pytest.fixture
def studio(fal_sim, media_root, task_queue, settings):
    settings.FAL_READ_TIMEOUT = 0.5  # a stalled submit (submit_timeout) is ambiguous after half a second
    reset_fal_client()
    return fal_sim


def submit_attempt(generation) -> GenerationAttempt:
    return GenerationAttempt.objects.filter(generation=generation, kind="submit").order_by("id").last()


def ambiguous_job(studio, task_queue, user, fault: str, **input) -> Generation:
    studio.set_faults({fault: 1.0}, fault_delay=1.0)
    generation = create(user, **input)
    task_queue.run_all()
    studio.set_faults({})
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, submit_attempt(row).outcome) == (Status.SUBMITTING, Outcome.AMBIGUOUS)
    return row


def step_together(jobs, task_queue) -> None:
    """One tracker tick with all `jobs` due (their lookups judged together), and the tasks it enqueues."""
    for job in jobs:
        make_due(job)
    tracker_tick()
    task_queue.run_all()


def backdate(generation, seconds: float) -> None:
    """Move the job's submit attempt into the past (as if the POST had happened `seconds` ago)."""
    GenerationAttempt.objects.filter(generation=generation, kind="submit").update(
        started_at=timezone.now() - timedelta(seconds=seconds), finished_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.parametrize("fault", ["submit_reset_after_accept", "submit_timeout"])
def test_an_ambiguous_submit_that_reached_fal_is_adopted_and_never_resent(studio, user, task_queue, fault):
    row = ambiguous_job(studio, task_queue, user, fault)
    request_id = studio.requests()[0]["request_id"]
    assert row.next_poll_at <= timezone.now() + timedelta(seconds=2)  # looked up within seconds

    row = step(row, task_queue)
    assert (row.status, row.fal_request_id) == (Status.QUEUED, request_id)
    assert submit_attempt(row).response == {"lookup": "found", "request_id": request_id}
    row = finish(row, task_queue)
    assert row.status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1 and len(studio.requests()) == 1
    assert ledger(row) == ["reserve", "settle"]
    # Without payloads (the default) fal was asked not to keep them, and the match was by send time.
    assert studio.requests()[0]["store_io"] is False


def test_a_worker_killed_mid_post_is_found_in_the_listing_once_its_claim_lapses(studio, user, task_queue,
                                                                                 monkeypatch):
    from fal_protocol.client import FalQueueClient

    real_submit = FalQueueClient.submit

    def sent_then_killed(self, *args, **kwargs):
        real_submit(self, *args, **kwargs)
        raise Crash()  # the process dies after fal accepted, before the answer is written down

    generation = create(user)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr(FalQueueClient, "submit", sent_then_killed)
        task_queue.run_all()
    assert submit_attempt(generation).outcome == Outcome.SENT
    row = step(generation, task_queue)
    assert (row.status, row.fal_request_id) == (Status.QUEUED, studio.requests()[0]["request_id"])
    assert finish(row, task_queue).status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1


def test_a_request_fal_registered_after_the_post_gave_up_is_adopted_not_sent_again(studio, user, task_queue):
    """Seen in the 10,000-job bench: fal (the simulator, saturated) took requests in 35–70 s after
    their POSTs had timed out. Listed after the attempt's end, such a request is still the attempt's;
    taking the listing for current and the attempt for absent would send the job twice."""
    studio.set_faults({"submit_late": 1.0}, fault_delay=3.0)  # registered 2.5 s after the 0.5 s timeout
    generation = create(user)
    task_queue.run_all()
    studio.set_faults({})
    assert submit_attempt(generation).outcome == Outcome.AMBIGUOUS
    late = wait_until(lambda: studio.requests() and studio.requests()[0], timeout=10)
    later = create(user, prompt="a later job [sim:slow]")  # sent after the attempt, still at fal
    task_queue.run_all()
    assert Generation.objects.get(pk=later.pk).status in (Status.QUEUED, Status.RUNNING)
    row = step(generation, task_queue)
    assert (row.status, row.fal_request_id) == (Status.QUEUED, late["request_id"])
    assert submit_attempt(row).response == {"lookup": "found", "request_id": late["request_id"]}
    assert studio.submits_for(row.input) == 1


def test_a_lagging_listing_is_waited_for_then_the_request_is_adopted(studio, user, task_queue):
    studio.set_faults({}, listing_lag_seconds=600)
    row = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept")
    studio.set_faults({}, listing_lag_seconds=600)
    row = step(row, task_queue)
    assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)  # not listed yet: wait, do not resend
    assert row.next_poll_at > timezone.now()
    studio.set_faults({}, listing_lag_seconds=0)
    row = step(row, task_queue)
    assert row.fal_request_id == studio.requests()[0]["request_id"]
    assert studio.submits_for(row.input) == 1


def test_two_close_ambiguous_submits_are_matched_by_payload_when_fal_keeps_payloads(studio, user, task_queue,
                                                                                    settings):
    settings.STUDIO_FAL_STORE_IO = True
    reset_fal_client()
    first = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="a red kite")
    second = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="a blue whale")
    by_prompt = {request["input"]["prompt"]: request["request_id"] for request in studio.requests()}
    assert all(request["store_io"] for request in studio.requests())

    step_together([first, second], task_queue)
    assert Generation.objects.get(pk=first.pk).fal_request_id == by_prompt["a red kite"]
    assert Generation.objects.get(pk=second.pk).fal_request_id == by_prompt["a blue whale"]


def test_two_close_ambiguous_submits_without_payloads_are_never_guessed(studio, user, task_queue):
    first = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="a red kite")
    second = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="a blue whale")
    step_together([first, second], task_queue)
    for job in (first, second):
        row = Generation.objects.get(pk=job.pk)
        # Both requests fit both send windows: adopting either could give one job the other's video.
        assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)
    assert len(studio.requests()) == 2


def test_a_stranger_request_in_the_window_stops_a_match_by_send_time(studio, user, task_queue):
    """Another program on the same fal account submitted at the same moment: two candidates, so the
    studio waits rather than adopt a request that may not be its own."""
    row = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept")
    httpx.post(f"{studio.url}/{row.model_id}", json={"prompt": "someone else's job"},  # the same endpoint
               headers={"Authorization": "Key test-fal-key", "X-Fal-Store-IO": "0"}).raise_for_status()
    row = step(row, task_queue)
    assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)


def test_a_submit_fal_never_received_is_resent_once_the_listing_is_current(studio, user, task_queue):
    row = ambiguous_job(studio, task_queue, user, "reset")  # the connection dropped before fal read it
    assert studio.requests() == []
    row = step(row, task_queue)
    assert row.status == Status.SUBMITTING  # an empty listing proves nothing: it may lag

    backdate(row, PAST_THE_WINDOW)
    later = create(user, prompt="a later job [sim:slow]")  # sent after the ambiguous attempt, still running
    task_queue.run_all()
    assert Generation.objects.get(pk=later.pk).status == Status.QUEUED
    row = step(row, task_queue)
    assert submit_attempt(row).outcome == Outcome.OK
    assert list(row.attempts.filter(kind="submit").order_by("id").values_list("response__lookup", flat=True)) == [
        "absent", None]
    assert finish(row, task_queue).status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1


def test_a_busy_listing_is_read_only_around_the_attempt_and_proven_current_by_one_lookup(studio, user, task_queue,
                                                                                        monkeypatch):
    """An account that sends thousands of requests a minute lists more since the look-back than one
    read may take: only the attempt's own send window is read, and a later request of ours still at
    fal, looked up by its id, proves the listing current."""
    monkeypatch.setattr(ambiguous, "MAX_PAGES", 1)  # a page of 100: fewer than the requests below
    row = ambiguous_job(studio, task_queue, user, "reset")
    backdate(row, PAST_THE_WINDOW)
    for n in range(120):  # other programs on the same account, after the attempt
        httpx.post(f"{studio.url}/{row.model_id}", json={"prompt": f"someone else's job {n}"},
                   headers={"Authorization": "Key test-fal-key", "X-Fal-Store-IO": "0"}).raise_for_status()
    later = create(user, prompt="a later job [sim:slow]")
    task_queue.run_all()
    assert Generation.objects.get(pk=later.pk).status in (Status.QUEUED, Status.RUNNING)
    row = step(row, task_queue)
    assert list(row.attempts.filter(kind="submit").order_by("id").values_list("response__lookup", flat=True)) == [
        "absent", None]
    assert studio.submits_for(row.input) == 1


def test_a_job_is_resent_after_an_absent_verdict_only_once(studio, user, task_queue, settings):
    row = ambiguous_job(studio, task_queue, user, "reset")
    backdate(row, PAST_THE_WINDOW)
    create(user, prompt="a later job [sim:slow]")
    task_queue.run_all()
    studio.set_faults({"reset": 1.0})  # the resend is lost too
    row = step(row, task_queue)
    studio.set_faults({})
    assert (row.status, row.submit_attempts) == (Status.SUBMITTING, 2)
    backdate(row, PAST_THE_WINDOW)
    create(user, prompt="another later job [sim:slow]")
    task_queue.run_all()
    row = step(row, task_queue)
    assert (row.status, row.submit_attempts) == (Status.SUBMITTING, 2)  # absent again, but never a third send
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 0
    row = step(row, task_queue)
    assert (row.status, row.error_code) == (Status.FAILED, "submit_unknown")
    assert studio.submits_for(row.input) == 0
    assert ledger(row) == ["release", "reserve"]


def test_a_request_another_unresolved_submit_may_own_is_never_adopted(studio, user, task_queue):
    """A lost submit (never reached fal) next to an ambiguous one that did: judged alone, the lost one
    sees exactly one request in its window — but it may be the other job's, so nobody takes it."""
    lost = ambiguous_job(studio, task_queue, user, "reset", prompt="never arrived")
    arrived = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="arrived")
    row = step(lost, task_queue)  # only `lost` is due
    assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)
    step_together([lost, arrived], task_queue)
    assert set(Generation.objects.filter(pk__in=[lost.pk, arrived.pk])
               .values_list("fal_request_id", flat=True)) == {None}


def test_with_payloads_kept_the_same_pair_is_told_apart(studio, user, task_queue, settings):
    settings.STUDIO_FAL_STORE_IO = True
    reset_fal_client()
    lost = ambiguous_job(studio, task_queue, user, "reset", prompt="never arrived")
    arrived = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="arrived")
    step_together([lost, arrived], task_queue)
    assert Generation.objects.get(pk=arrived.pk).fal_request_id == studio.requests()[0]["request_id"]
    assert Generation.objects.get(pk=lost.pk).status == Status.SUBMITTING  # not listed, but is the listing current?
    backdate(lost, PAST_THE_WINDOW)
    create(user, prompt="a later job [sim:slow]")
    task_queue.run_all()
    row = finish(step(lost, task_queue), task_queue)
    assert row.status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1 and studio.submits_for(arrived.input) == 1


def test_a_listing_that_cannot_be_read_never_expires_a_submit_fal_received(studio, user, task_queue, settings):
    """Found by make chaos: the first look after the grace met fal's listing failing (a 503), and the job
    fal was running failed as submit_unknown without the listing ever having been read."""
    settings.STUDIO_FAL_STORE_IO = True
    reset_fal_client()
    row = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept")
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 0  # the grace is over at the first look
    studio.set_faults({"listing_5xx": 1.0})
    row = step(row, task_queue)
    assert (row.status, row.error_code) == (Status.SUBMITTING, "")  # unread: wait, do not expire
    assert studio.stats()["faults"]["listing_5xx"] >= 1
    studio.set_faults({})
    row = step(row, task_queue)
    assert row.fal_request_id == studio.requests()[0]["request_id"]
    assert finish(row, task_queue).status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1


def test_a_listing_that_stays_unreadable_fails_the_job_after_twice_the_grace(studio, user, task_queue, settings):
    row = ambiguous_job(studio, task_queue, user, "reset")
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 30
    studio.set_faults({"listing_5xx": 1.0})
    backdate(row, 45)  # past the grace, not past twice it
    row = step(row, task_queue)
    assert row.status == Status.SUBMITTING
    backdate(row, 95)
    row = step(row, task_queue)
    assert (row.status, row.error_code) == (Status.FAILED, "submit_unknown")
    assert ledger(row) == ["release", "reserve"]
    assert studio.requests() == []


def test_a_request_of_a_job_given_up_as_submit_unknown_is_never_adopted_by_another(studio, user, other_user,
                                                                                    task_queue, settings):
    """Found by make chaos without payloads: once the job whose request it was had failed as submit_unknown,
    the request was the only one left in another ambiguous job's window, and that job adopted it —
    another user's prompt and video."""
    arrived = ambiguous_job(studio, task_queue, user, "submit_reset_after_accept", prompt="alice's kite")
    lost = ambiguous_job(studio, task_queue, other_user, "reset", prompt="bob's whale")  # never reached fal
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 0
    row = step(arrived, task_queue)  # alone, its request also fits `lost`'s window: not adopted; expired
    assert (row.status, row.error_code) == (Status.FAILED, "submit_unknown")

    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 600
    row = step(lost, task_queue)
    assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)  # alice's request stays alice's
    assert len(studio.requests()) == 1
