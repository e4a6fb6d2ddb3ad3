"""fal's status streams: followed many at once on one event loop (fal_protocol/status_streams.py), and
in the tracking chain instead of polls, with polls left as the backstop (services/fal_streams.py)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from fal_protocol.client import FalQueueClient, FalStatus
from fal_protocol.status_streams import StatusStreams, Taken
from generations.models import Generation
from generations.services import fal_streams, tracking
from generations.services.submit import generation_submit
from tests.conftest import studio_simulator, wait_until
from tests.generations.test_pipeline import create, make_due

Status = Generation.Status
KEY = "test-fal-key"


@pytest.fixture
def sim(settings) -> Iterator:
    """A simulator whose jobs run for 0.4 s (logging as they go), two at a time."""
    with studio_simulator(settings, runners=2, run_seconds=0.4) as simulator:
        yield simulator


@pytest.fixture
def streams() -> Iterator[StatusStreams]:
    followed: StatusStreams = StatusStreams(key=KEY, limit=2)
    yield followed
    followed.close()


def taken_until(streams: StatusStreams, done, timeout: float = 20) -> Taken:
    """Everything the streams bring until `done(all so far)` holds."""
    seen = Taken()

    def step() -> bool:
        more = streams.take()
        seen.events.extend(more.events)
        seen.ended.extend(more.ended)
        return done(seen)

    wait_until(step, timeout=timeout, interval=0.02)
    return seen


# --- following streams -----------------------------------------------------------------------------

def test_a_followed_stream_brings_each_change_until_completed(sim, streams):
    # given: a request at fal, followed on its status stream
    client = FalQueueClient(base_url=sim.url, key=KEY)
    submitted = client.submit("fal-ai/ltx-2/text-to-video", {"prompt": "a heron"})
    assert streams.follow("job", submitted.status_url)
    assert not streams.follow("job", submitted.status_url)  # once per key

    # when: it runs to its end
    seen = taken_until(streams, lambda seen: any(event.is_completed for _, event in seen.events))

    # then: its statuses in order, log lines while running, COMPLETED last; the stream closed by
    # itself and is not reported as ended early; one status call for the whole run
    statuses = [event.status for _, event in seen.events]
    assert statuses[-1] == "COMPLETED" and "IN_PROGRESS" in statuses
    assert statuses.index("IN_PROGRESS") > max((i for i, s in enumerate(statuses) if s == "IN_QUEUE"), default=-1)
    assert any(event.logs for _, event in seen.events)
    assert {key for key, _ in seen.events} == {"job"} and seen.ended == []
    wait_until(lambda: streams.count() == 0)
    assert sim.stats()["status_calls"] == 1
    client.close()


def test_a_stream_that_cannot_open_is_reported_as_ended(sim, streams):
    missing = f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}/status"
    assert streams.follow("gone", missing)
    seen = taken_until(streams, lambda seen: seen.ended)
    assert seen.ended == ["gone"] and seen.events == []
    assert streams.count() == 0


def test_no_more_than_the_limit_are_followed_at_once(sim, streams):
    client = FalQueueClient(base_url=sim.url, key=KEY)
    urls = [client.submit("fal-ai/ltx-2/text-to-video", {"prompt": f"bird {n}"}).status_url for n in range(3)]
    assert [streams.follow(n, url) for n, url in enumerate(urls)] == [True, True, False]
    assert streams.count() == 2
    client.close()


# --- in the tracking chain -------------------------------------------------------------------------

@pytest.fixture
def chain_streams(settings) -> Iterator[None]:
    settings.STUDIO_FAL_STATUS_STREAMS = 100
    yield
    fal_streams.stop()


@pytest.mark.django_db
def test_the_chain_follows_a_job_on_its_stream_and_polls_it_not_once(sim, user, task_queue, chain_streams,
                                                                       settings, media_root):
    # given: a job fal has accepted, and the chain ticking with streams (webhooks off)
    assert fal_streams.streams_enabled()
    generation = create(user)
    generation_submit(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    make_due(generation)

    # when: the chain ticks until fal's completion is recorded
    def tick() -> None:
        tracking._tick(streaming=True)
        tracking._record_finished_polls(wait=True)

    wait_until(lambda: Generation.objects.get(pk=generation.pk).status == Status.STORING, step=tick, timeout=30,
               interval=0.05)

    # then: it went through running with fal's log lines, all from the one stream: no status poll
    row = Generation.objects.get(pk=generation.pk)
    assert row.was_running and row.started_at is not None and row.logs
    assert row.inference_seconds is not None
    assert sim.stats()["status_calls"] == 1
    assert not fal_streams.following(generation.pk)  # a completed stream is forgotten


@pytest.mark.django_db
def test_a_followed_job_is_due_only_for_its_backstop_poll(sim, user, task_queue, chain_streams, settings):
    # given: a long job, followed
    generation = create(user)
    generation_submit(generation.pk)
    make_due(generation)
    before = timezone.now()
    tracking._tick(streaming=True)

    # then: it is followed and not due again before the backstop (unless its stream brings news)
    assert fal_streams.following(generation.pk)
    due = Generation.objects.get(pk=generation.pk).next_poll_at
    assert due >= before + fal_streams.STREAM_BACKSTOP


@pytest.mark.django_db
def test_a_job_whose_stream_ends_early_is_polled_at_once_and_not_followed_again_soon(sim, user, task_queue,
                                                                                       chain_streams):
    # given: a job whose status URL has no stream (fal forgot it, say), followed
    generation = create(user)
    generation_submit(generation.pk)
    bogus = f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}/status"
    Generation.objects.filter(pk=generation.pk).update(fal_status_url=bogus, next_poll_at=timezone.now())
    row = (generation.pk, Status.QUEUED, bogus)
    assert fal_streams.follow_or_poll([row]) == []

    # when: the chain takes the streams' news until the stream's end is among it
    wait_until(lambda: not fal_streams.following(generation.pk), step=fal_streams.news, timeout=10, interval=0.02)

    # then: the job is due now, to be polled, and is polled (not followed) when next due
    assert not fal_streams.following(generation.pk)
    assert Generation.objects.get(pk=generation.pk).next_poll_at <= timezone.now() + timedelta(seconds=1)
    assert fal_streams.follow_or_poll([row]) == [row]


def test_news_is_one_status_per_job_and_stage_with_every_log_line_so_far(monkeypatch, chain_streams):
    # given: a stream that brought three log events and the end since the chain last looked
    pk, log = uuid.uuid4(), [{"message": f"step {n}", "level": "INFO"} for n in range(3)]
    events = [(pk, FalStatus("IN_PROGRESS", logs=[log[0]])), (pk, FalStatus("IN_PROGRESS", logs=[log[1]])),
              (pk, FalStatus("IN_PROGRESS", logs=log[:3])), (pk, FalStatus("COMPLETED", logs=[], inference_time=2.0))]

    class Brought:
        limit = 10

        def take(self) -> Taken:
            return Taken(events=list(events))

    monkeypatch.setattr(fal_streams, "_streams", Brought())
    fal_streams._followed[pk] = (Status.QUEUED, "http://fal.invalid/status")

    # when / then: one IN_PROGRESS (the start is kept, for billing) with the three lines once each, then the end
    rows, statuses = fal_streams.news()
    assert [fal.status for fal in statuses] == ["IN_PROGRESS", "COMPLETED"]
    assert statuses[0].logs == log and statuses[1].logs == log
    assert rows[0] == (pk, Status.QUEUED, "http://fal.invalid/status") and rows[1][0] == pk
    assert not fal_streams.following(pk)
    monkeypatch.setattr(fal_streams, "_streams", None)  # nothing real to stop


def test_news_within_a_stage_waits_its_turn_but_a_new_stage_does_not(monkeypatch, chain_streams):
    pk = uuid.uuid4()
    line = [{"message": f"step {n}", "level": "INFO"} for n in range(2)]
    brought: list = []

    class Brought:
        limit = 10

        def take(self) -> Taken:
            events, brought[:] = list(brought), []
            return Taken(events=events)

    monkeypatch.setattr(fal_streams, "_streams", Brought())
    fal_streams._followed[pk] = (Status.QUEUED, "http://fal.invalid/status")
    # the start is news at once
    brought.append((pk, FalStatus("IN_PROGRESS", logs=line[:1])))
    assert [fal.status for fal in fal_streams.news()[1]] == ["IN_PROGRESS"]
    # a log line right after waits (as a poll a second later would bring it) ...
    brought.append((pk, FalStatus("IN_PROGRESS", logs=line[1:])))
    assert fal_streams.news() == ([], [])
    # ... and comes with every line once its second has passed
    monkeypatch.setattr(fal_streams, "NEWS_EVERY", 0.0)
    assert [fal.logs for fal in fal_streams.news()[1]] == [line]
    # the end never waits
    monkeypatch.setattr(fal_streams, "NEWS_EVERY", 60.0)
    brought.append((pk, FalStatus("COMPLETED")))
    assert [fal.status for fal in fal_streams.news()[1]] == ["COMPLETED"]
    monkeypatch.setattr(fal_streams, "_streams", None)
