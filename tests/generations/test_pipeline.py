"""The job pipeline against the fal simulator over HTTP, tasks run inline: idempotency, crashes, cancel."""
from __future__ import annotations

import base64
import io
from datetime import timedelta

import av
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from generations import ltx
from generations.models import Generation, GenerationAttempt
from generations.services import store as store_module
from generations.services.cancel import NotCancelable, generation_cancel
from generations.services.create import generation_create
from generations.services.store import generation_store
from generations.services.submit import generation_submit
from generations.services.tracking import tracker_tick
from storage.models import StoredObject, StoredVideo
from tests.conftest import wait_until
from tests.images import quadrants

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def create(user, **input):
    generation, created = generation_create(owner=user, model=input.pop("model", "t2v"),
                                            input={"prompt": "a cowboy", **input})
    assert created
    return generation


def png_data_uri() -> str:
    image = io.BytesIO()
    quadrants().save(image, "PNG")
    return "data:image/png;base64," + base64.b64encode(image.getvalue()).decode()


def make_due(generation):
    Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))


def track_until(generation, *statuses, timeout=30):
    """Tick the tracker (and run what it enqueues) until the row reaches one of `statuses`."""
    def step():
        make_due(generation)
        tracker_tick()

    return wait_until(lambda: Generation.objects.get(pk=generation.pk).status in statuses
                      and Generation.objects.get(pk=generation.pk),
                      step=step, timeout=timeout, interval=0.1)


def probe(key):
    with default_storage.open(key) as stored, av.open(stored) as container:
        video = container.streams.video[0]
        return (video.codec_context.width, video.codec_context.height, float(video.average_rate),
                video.frames, len(container.streams.audio))


def test_create_enqueues_one_submit_and_writes_nothing_upstream(studio, user, task_queue):
    generation = create(user)
    assert generation.status == Status.PENDING
    assert generation.model_id == "fal-ai/ltx-2.3/text-to-video"  # "t2v" under the default STUDIO_LTX_VERSION
    assert generation.cost_usd == ltx.price_usd(ltx.resolve_model(generation.model_id), generation.input)
    assert task_queue.names() == ["generation_submit_task", "tracker_run_task"]
    assert studio.stats()["submits"] == 0


def test_invalid_input_is_rejected_before_anything_is_written_or_sent(studio, user, task_queue):
    with pytest.raises(ltx.InputError) as info:
        generation_create(owner=user, model="t2v", input={"prompt": "x", "duration": 7})
    assert "duration" in info.value.errors
    assert Generation.objects.count() == 0
    assert task_queue.calls == []
    assert studio.stats()["submits"] == 0


@pytest.mark.parametrize("extra, expected", [
    # the simulator renders at 1/16 scale, each side rounded down to an even number
    ({}, (120, 66, 25.0, 150, 1)),
    ({"generate_audio": False, "fps": 50}, (120, 66, 50.0, 300, 0)),
    ({"duration": 8, "resolution": "1440p"}, (160, 90, 25.0, 200, 1)),
])
def test_job_runs_from_submit_to_a_stored_probed_video(studio, user, task_queue, extra, expected):
    generation = create(user, **extra)
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    track_until(generation, Status.STORING)
    task_queue.run_all()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error_message
    video = generation.video
    width, height, fps, frames, audio_streams = expected
    assert (video.width, video.height, video.fps, video.num_frames, video.has_audio) == (
        width, height, fps, frames, audio_streams == 1)
    assert video.duration == pytest.approx(frames / fps, abs=0.05)
    assert probe(video.file.key) == expected
    assert video.file.size == default_storage.size(video.file.key)
    assert video.file.key == f"users/{user.pk}/generations/{generation.pk}/video.mp4"
    assert video.poster.content_type == "image/jpeg" and default_storage.exists(video.poster.key)
    assert studio.stats()["submits"] == 1


def test_each_task_run_twice_means_one_submit_and_one_stored_object(studio, user, task_queue):
    generation = create(user)
    generation_submit(generation.pk)
    generation_submit(generation.pk)
    task_queue.run_all()  # the submit enqueued by create: a third run
    assert studio.stats()["submits"] == 1
    track_until(generation, Status.STORING)
    generation_store(generation.pk)
    generation_store(generation.pk)
    task_queue.run_all()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert StoredVideo.objects.count() == 1
    assert StoredObject.objects.count() == 2  # video + poster
    assert sorted(default_storage.listdir(f"users/{user.pk}/generations/{generation.pk}")[1]) == [
        "poster.jpg", "video.mp4"]
    assert GenerationAttempt.objects.filter(generation=generation, kind="submit").count() == 1
    assert GenerationAttempt.objects.filter(generation=generation, kind="result").count() == 1


def test_a_submit_of_a_job_already_sent_only_reads(studio, user, django_assert_num_queries):
    generation = create(user)
    generation_submit(generation.pk)
    with django_assert_num_queries(1) as queries:  # no claim attempted: no write, no fal call
        generation_submit(generation.pk)
    assert queries.captured_queries[0]["sql"].startswith("SELECT")
    assert studio.stats()["submits"] == 1
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED


class Crash(Exception):
    pass


def crash(*args, **kwargs):
    raise Crash()


def test_crash_while_claiming_a_job_leaves_it_pending_and_it_is_sent_exactly_once(studio, user, task_queue,
                                                                                  monkeypatch):
    """A job without media is claimed with its submit attempt in one transaction: a crash inside it
    claims nothing."""
    generation = create(user)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.submit.attempt_start", crash)
        generation_submit(generation.pk)
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.submit_attempts) == (Status.PENDING, 0)
    assert not GenerationAttempt.objects.filter(generation=row).exists()
    assert studio.stats()["submits"] == 0
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    assert studio.stats()["submits"] == 1


def test_crash_after_claiming_an_image_job_before_sending_resubmits_exactly_once(studio, user, task_queue,
                                                                                monkeypatch):
    """A job with media is claimed first, its media handed to fal after (network I/O, outside any
    transaction): a crash between leaves it SUBMITTING without an attempt row, which is safe to send."""
    generation = create(user, model="i2v", image_url=png_data_uri())
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.submit._payload_for_fal", crash)
        generation_submit(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == Status.SUBMITTING
    assert not GenerationAttempt.objects.filter(generation=generation, kind="submit").exists()
    # when the submit's claim has lapsed, the tracker sends it back to PENDING and re-drives the submit
    make_due(generation)
    tracker_tick()
    assert Generation.objects.get(pk=generation.pk).status == Status.PENDING
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    assert studio.stats()["submits"] == 1


def test_crash_while_recording_fals_acceptance_writes_none_of_it_and_the_listing_recovers_it(
        studio, user, task_queue, monkeypatch):
    """fal's answer and the row's move to QUEUED are one transaction: a crash inside it leaves the
    submit as if its answer had never arrived, and fal's request listing finds the request."""
    generation = create(user)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.submit._accept", crash)
        generation_submit(generation.pk)
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.fal_request_id) == (Status.SUBMITTING, None)
    (attempt,) = GenerationAttempt.objects.filter(generation=row, kind="submit")
    assert (attempt.outcome, attempt.http_status, attempt.response) == (GenerationAttempt.Outcome.SENT, None, None)
    task_queue.run_all()  # the create-time submit task: the row is not PENDING, so it sends nothing
    for _ in range(5):  # the claim lapses, the outcome is unknown, the listing is read
        make_due(generation)
        tracker_tick()
        task_queue.run_all()
        row.refresh_from_db()
        if row.status != Status.SUBMITTING:
            break
    assert (row.status, row.fal_request_id) == (Status.QUEUED, studio.requests()[0]["request_id"])
    track_until(generation, Status.STORING)
    task_queue.run_all()
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert studio.stats()["submits"] == 1


def test_ambiguous_submit_is_never_resent_and_fails_as_unknown_after_the_grace_period(studio, user, task_queue,
                                                                                       monkeypatch, settings):
    """fal's listing shows no request and nothing proves it current (no later request of ours in
    flight): wait, then fail as `submit_unknown` — never resend."""
    generation = create(user)
    from fal_protocol.client import FalAmbiguous

    def timeout(*args, **kwargs):
        raise FalAmbiguous("read timeout after sending")

    monkeypatch.setattr("fal_protocol.client.FalQueueClient.submit", timeout)
    generation_submit(generation.pk)
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.SUBMITTING
    assert GenerationAttempt.objects.get(generation=row, kind="submit").outcome == "ambiguous"
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.SUBMITTING  # within grace: wait
    settings.STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS = 0
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "submit_unknown")
    assert GenerationAttempt.objects.filter(generation=row, kind="submit").count() == 1
    assert studio.stats()["listing_calls"] == 2


def test_unavailable_submit_goes_back_to_pending_with_backoff_then_succeeds(studio, user, task_queue):
    studio.faults["submit_5xx"] = 1.0
    generation = create(user)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.submit_attempts) == (Status.PENDING, 1)
    assert row.next_poll_at > timezone.now()
    studio.faults["submit_5xx"] = 0.0
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    row.refresh_from_db()
    assert (row.status, row.submit_attempts) == (Status.QUEUED, 2)
    assert list(GenerationAttempt.objects.filter(generation=row, kind="submit")
                .values_list("outcome", flat=True)) == ["unavailable", "ok"]


def test_submit_gives_up_after_the_attempt_cap(studio, user, task_queue, settings):
    settings.STUDIO_MAX_SUBMIT_ATTEMPTS = 2
    studio.faults["submit_5xx"] = 1.0
    generation = create(user)
    task_queue.run_all()
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.error_code, row.submit_attempts) == (Status.FAILED, "upstream_unavailable", 2)


def test_crash_after_result_fetched_before_storing_recovers_to_one_success(studio, user, task_queue, monkeypatch):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.store.video_store_from_url", crash)
        task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.STORING and row.result is not None
    make_due(generation)
    tracker_tick()
    assert task_queue.names() == ["generation_store"]  # handed to the store lane
    task_queue.run_all()
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED
    assert GenerationAttempt.objects.filter(generation=row, kind="result").count() == 1
    assert StoredObject.objects.count() == 2


def test_crash_after_objects_stored_before_the_row_settled_recovers_to_one_success(studio, user, task_queue,
                                                                                     monkeypatch):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    real_transition = store_module.transition

    def crash_on_success(pk, *, from_, to, **fields):
        if to == Status.SUCCEEDED:
            raise Crash()
        return real_transition(pk, from_=from_, to=to, **fields)

    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.store.transition", crash_on_success)
        task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.STORING
    assert StoredObject.objects.count() == 2
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.SUCCEEDED
    assert (StoredVideo.objects.count(), StoredObject.objects.count()) == (1, 2)
    assert studio.stats()["submits"] == 1


def test_failure_behind_completed_fails_the_job_with_fals_reason(studio, user, task_queue):
    generation = create(user, prompt="a cowboy [sim:422]")
    task_queue.run_all()
    track_until(generation, Status.STORING)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.FAILED
    assert "prompt" in row.error_message
    assert row.video is None and StoredObject.objects.count() == 0


def test_lost_upstream_request_fails_as_lost(studio, user, task_queue):
    generation = create(user, prompt="a cowboy [sim:lost]")
    task_queue.run_all()
    row = track_until(generation, Status.FAILED, Status.STORING)
    task_queue.run_all()
    row.refresh_from_db()
    assert (row.status, row.error_code) == (Status.FAILED, "lost_upstream")


def test_queue_position_and_logs_are_recorded_while_tracking(studio, user, task_queue):
    jobs = [create(user, prompt=f"busy {i} [sim:slow]") for i in range(4)]
    task_queue.run_all()
    last = jobs[-1]
    make_due(last)
    tracker_tick()
    row = Generation.objects.get(pk=last.pk)
    assert (row.status, row.fal_status, row.queue_position) == (Status.QUEUED, "IN_QUEUE", 1)  # two running, one ahead
    first = track_until(jobs[0], Status.RUNNING)
    assert first.was_running and first.started_at is not None and first.fal_status == "IN_PROGRESS"
    wait_until(lambda: Generation.objects.get(pk=first.pk).logs, step=lambda: (make_due(first), tracker_tick()))
    assert all({"message", "level", "timestamp"} <= set(entry) for entry in Generation.objects.get(pk=first.pk).logs)


# --- cancel in each state ----------------------------------------------------------------------

def test_cancel_pending_never_reaches_fal(studio, user, task_queue):
    generation = create(user)
    generation_cancel(generation)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.error_code) == (Status.CANCELED, "canceled")
    assert studio.stats()["submits"] == 0


def test_cancel_while_submitting_cancels_upstream_when_the_submit_returns(studio, user, task_queue, monkeypatch):
    generation = create(user)
    from fal_protocol.client import FalQueueClient

    real_submit = FalQueueClient.submit

    def submit_and_cancel_meanwhile(self, *args, **kwargs):
        generation_cancel(Generation.objects.get(pk=generation.pk))
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(FalQueueClient, "submit", submit_and_cancel_meanwhile)
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.CANCELED and row.fal_request_id
    assert studio.stats()["cancel_calls"] == 1
    assert studio.requests()[0]["canceled"] is True


@pytest.mark.parametrize("target", [Status.QUEUED, Status.RUNNING])
def test_cancel_queued_or_running_cancels_upstream(studio, user, task_queue, target):
    generation = create(user, prompt="a cowboy [sim:slow]")
    task_queue.run_all()
    if target == Status.RUNNING:
        track_until(generation, Status.RUNNING)
    generation_cancel(Generation.objects.get(pk=generation.pk))
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.CANCELED
    assert studio.stats()["cancel_calls"] == 1
    assert studio.requests()[0]["canceled"] is True
    assert GenerationAttempt.objects.get(generation=row, kind="cancel").response == {"status": "CANCELLATION_REQUESTED"}


def test_cancel_while_storing_discards_the_copy(studio, user, task_queue):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    generation_cancel(Generation.objects.get(pk=generation.pk))
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert row.status == Status.CANCELED and row.video is None
    assert StoredObject.objects.count() == 0 and StoredVideo.objects.count() == 0
    assert not default_storage.exists(f"users/{user.pk}/generations/{generation.pk}/video.mp4")


def test_cancel_finished_job_is_refused(studio, user, task_queue):
    generation = create(user)
    generation_cancel(generation)
    with pytest.raises(NotCancelable):
        generation_cancel(generation)


def test_a_database_blip_after_fal_accepted_a_submit_loses_nothing(studio, user, task_queue, monkeypatch):
    """fal's answer exists only in the submitting process until it is written: a database restart at
    that moment must not leave an accepted request as an unknown outcome (nor send it again)."""
    from django.db import OperationalError

    from core import db_blips
    from generations.services import submit

    generation = create(user)
    task_queue.calls.clear()
    real_finish, failures = submit.attempt_finish, []

    def finish_while_the_database_restarts(attempt, **fields):
        if not failures:
            failures.append(1)
            raise OperationalError("terminating connection due to administrator command")
        return real_finish(attempt, **fields)

    monkeypatch.setattr(submit, "attempt_finish", finish_while_the_database_restarts)
    monkeypatch.setattr(db_blips.time, "sleep", lambda seconds: None)
    submit.generation_submit(generation.pk)

    row = Generation.objects.get(pk=generation.pk)
    assert failures == [1] and row.status == Status.QUEUED and row.fal_request_id
    (attempt,) = GenerationAttempt.objects.filter(generation=row, kind="submit")
    assert attempt.http_status == 200 and attempt.outcome == GenerationAttempt.Outcome.OK
    assert studio.stats()["submits"] == 1
