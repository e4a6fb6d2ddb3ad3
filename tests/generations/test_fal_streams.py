"""fal's status streams: followed many at once on one event loop (fal_protocol/status_streams.py), and
by the stream follower instead of the chain's polls, with polls left as the backstop
(services/fal_streams.py)."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from fal_protocol import status_streams
from fal_protocol.client import FalQueueClient, FalStatus
from fal_protocol.status_streams import StatusStreams, Taken
from generations.models import Generation
from generations.services import fal_streams, tracking
from generations.services.fal_streams import StreamFollower
from generations.services.lease import named_lease_claim, named_lease_release
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


def test_wait_wakes_the_caller_when_a_stream_completes_or_ends_but_not_for_news(sim, streams):
    # given: a request that logs for 0.4 s before it completes, followed from its start
    client = FalQueueClient(base_url=sim.url, key=KEY)
    assert streams.follow("job", client.submit("fal-ai/ltx-2/text-to-video", {"prompt": "a heron"}).status_url)

    # when / then: the wait ends with the completion, not with the news before it
    assert streams.wait(20)
    statuses = [event.status for _, event in streams.take().events]
    assert statuses[-1] == "COMPLETED" and "IN_PROGRESS" in statuses
    assert not streams.wait(0.05)  # taken: nothing new to wake for
    # a stream that ends early wakes the caller too
    assert streams.follow("gone", f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}/status")
    assert streams.wait(20) and streams.take().ended == ["gone"]
    client.close()


def test_no_more_than_the_limit_are_followed_at_once(sim, streams):
    client = FalQueueClient(base_url=sim.url, key=KEY)
    urls = [client.submit("fal-ai/ltx-2/text-to-video", {"prompt": f"bird {n}"}).status_url for n in range(3)]
    assert [streams.follow(n, url) for n, url in enumerate(urls)] == [True, True, False]
    assert streams.count() == 2
    client.close()


# --- the follower -----------------------------------------------------------------------------------

@pytest.fixture
def follower(settings) -> Iterator[StreamFollower]:
    settings.STUDIO_FAL_STATUS_STREAMS = 100
    followed = StreamFollower(limit=100)
    yield followed
    followed.stop()


def chain_tick() -> None:
    tracking._tick()
    tracking._record_finished_polls(wait=True)


@pytest.mark.django_db
def test_the_follower_brings_a_job_to_storing_and_the_chain_never_polls_it(sim, user, task_queue, follower,
                                                                           media_root):
    # given: a job fal has accepted, due for the chain's poll; streams on (webhooks off)
    assert fal_streams.streams_enabled()
    generation = create(user)
    generation_submit(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    make_due(generation)

    # when: the follower and the chain both run until fal's completion is recorded
    def both() -> None:
        follower.work()
        chain_tick()

    wait_until(lambda: Generation.objects.get(pk=generation.pk).status == Status.STORING, step=both, timeout=30,
               interval=0.05)

    # then: it went through running with fal's log lines, all from the one stream: the chain never polled
    row = Generation.objects.get(pk=generation.pk)
    assert row.was_running and row.started_at is not None and row.logs
    assert row.inference_seconds is not None
    assert sim.stats()["status_calls"] == 1
    assert generation.pk not in follower.followed  # a completed stream is forgotten


@pytest.mark.django_db(transaction=True)  # the follower's writer threads see only committed rows
def test_completions_of_one_pass_are_recorded_by_several_writers_at_once(settings, user, monkeypatch):
    # given: three jobs followed on their streams, all completed at fal before the follower's next pass
    monkeypatch.setattr(StreamFollower, "_writers", staticmethod(lambda: 3))
    threads: set[str] = set()
    record = fal_streams.record_statuses

    def spy(rows, statuses, *, streamed):
        threads.add(threading.current_thread().name)
        record(rows, statuses, streamed=streamed)

    monkeypatch.setattr(fal_streams, "record_statuses", spy)
    settings.STUDIO_FAL_STATUS_STREAMS = 10
    with studio_simulator(settings, runners=3, run_seconds=0.3) as simulator:
        follower = StreamFollower(limit=10)
        try:
            jobs = [create(user, prompt=f"heron {n}") for n in range(3)]
            for job in jobs:
                generation_submit(job.pk)
                make_due(job)
            follower.follow_new()
            wait_until(lambda: follower.streams.count() == 0, timeout=30)  # every stream brought its end

            # when: one pass
            follower.record_news()
        finally:
            follower.stop()

    # then: each job is storing with its completion recorded, by three threads of the follower's pool
    rows = Generation.objects.filter(pk__in=[job.pk for job in jobs])
    assert {row.status for row in rows} == {Status.STORING}
    assert all(row.completed_at and row.was_running and row.logs for row in rows)
    assert len(threads) == 3 and all(name.startswith("fal-streams-record") for name in threads)
    assert simulator.stats()["status_calls"] == 3  # one stream each, no poll


@pytest.mark.django_db
def test_a_followed_job_is_due_only_at_the_backstop_and_at_once_when_the_follower_stops(sim, user, task_queue,
                                                                                         follower):
    # given: a long job, due, picked up by the follower
    generation = create(user)
    generation_submit(generation.pk)
    make_due(generation)
    before = timezone.now()
    assert follower.follow_new() == 1

    # then: the chain leaves it alone until the backstop
    assert generation.pk in follower.followed
    assert Generation.objects.get(pk=generation.pk).next_poll_at >= before + tracking.STREAM_BACKSTOP
    wait_until(lambda: sim.stats()["status_calls"] == 1)  # the stream is open
    chain_tick()
    assert sim.stats()["status_calls"] == 1  # and no poll came

    # when: the follower stops (its process ends)
    follower.stop()

    # then: the job is due at once, for the chain to poll
    assert Generation.objects.get(pk=generation.pk).next_poll_at <= timezone.now()


@pytest.mark.django_db
def test_a_job_whose_stream_ends_early_is_polled_at_once_and_not_followed_again_soon(sim, user, task_queue,
                                                                                       follower):
    # given: a job whose status URL has no stream (fal forgot it, say), followed
    generation = create(user)
    generation_submit(generation.pk)
    bogus = f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}/status"
    Generation.objects.filter(pk=generation.pk).update(fal_status_url=bogus, next_poll_at=timezone.now())
    assert follower.follow_new() == 1

    # when: the follower takes the streams' news until the stream's end is among it
    wait_until(lambda: generation.pk not in follower.followed, step=follower.record_news, timeout=10, interval=0.02)

    # then: the job is due now, to be polled, and is not followed again while it is
    assert Generation.objects.get(pk=generation.pk).next_poll_at <= timezone.now() + timedelta(seconds=1)
    assert follower.follow_new() == 0


def test_one_follower_holds_the_lease_at_a_time(db):
    assert named_lease_claim(fal_streams.LEASE_NAME, "host-a")
    assert not named_lease_claim(fal_streams.LEASE_NAME, "host-b")  # another host's follower waits
    assert named_lease_claim(fal_streams.LEASE_NAME, "host-a")  # renewed by its holder
    named_lease_release(fal_streams.LEASE_NAME, "host-a")
    assert named_lease_claim(fal_streams.LEASE_NAME, "host-b")


class Brought:
    """Stands in for StatusStreams: hands out what the test put in `events`."""

    limit = 10

    def __init__(self) -> None:
        self.events: list = []

    def take(self) -> Taken:
        events, self.events = self.events, []
        return Taken(events=events)

    def count(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.fixture
def recorded(monkeypatch) -> list:
    """What the follower records, instead of writing it."""
    calls: list = []
    monkeypatch.setattr(fal_streams, "record_statuses",
                        lambda rows, statuses, *, streamed: calls.append((rows, statuses, streamed)))
    return calls


def followed_by_stand_in(pk: uuid.UUID) -> tuple[StreamFollower, Brought]:
    brought = Brought()
    follower = StreamFollower(limit=10, streams=brought)  # type: ignore[arg-type]
    follower.followed[pk] = fal_streams._Followed(Status.QUEUED, "http://fal.invalid/status")
    return follower, brought


def test_news_is_one_status_per_job_and_stage_with_every_log_line_so_far(recorded):
    # given: a stream that brought three log events and the end since the follower last looked
    pk, log = uuid.uuid4(), [{"message": f"step {n}", "level": "INFO"} for n in range(3)]
    follower, brought = followed_by_stand_in(pk)
    brought.events = [(pk, FalStatus("IN_PROGRESS", logs=[log[0]])), (pk, FalStatus("IN_PROGRESS", logs=[log[1]])),
                      (pk, FalStatus("IN_PROGRESS", logs=log[:3])),
                      (pk, FalStatus("COMPLETED", logs=[], inference_time=2.0))]

    # when / then: one IN_PROGRESS (the start is kept, for billing) with the three lines once each, then the end
    follower.record_news()
    [(rows, statuses, streamed)] = recorded
    assert [fal.status for fal in statuses] == ["IN_PROGRESS", "COMPLETED"] and streamed
    assert statuses[0].logs == log and statuses[1].logs == log
    assert rows[0] == (pk, Status.QUEUED, "http://fal.invalid/status") and rows[1][0] == pk
    assert pk not in follower.followed


def test_news_within_a_stage_waits_its_turn_but_a_new_stage_does_not(monkeypatch, recorded):
    pk = uuid.uuid4()
    line = [{"message": f"step {n}", "level": "INFO"} for n in range(2)]
    follower, brought = followed_by_stand_in(pk)

    def news() -> list[FalStatus]:
        recorded.clear()
        follower.record_news()
        return [fal for _, statuses, _ in recorded for fal in statuses]

    # the start is news at once
    brought.events.append((pk, FalStatus("IN_PROGRESS", logs=line[:1])))
    assert [fal.status for fal in news()] == ["IN_PROGRESS"]
    # a log line right after waits (as a poll a second later would bring it) ...
    brought.events.append((pk, FalStatus("IN_PROGRESS", logs=line[1:])))
    assert news() == []
    # ... and comes with every line once its time has passed
    monkeypatch.setattr(fal_streams, "NEWS_EVERY", 0.0)
    assert [fal.logs for fal in news()] == [line]
    # the end never waits
    monkeypatch.setattr(fal_streams, "NEWS_EVERY", 60.0)
    brought.events.append((pk, FalStatus("COMPLETED")))
    assert [fal.status for fal in news()] == ["COMPLETED"]


class Clock:
    """Stands in for the follower's `time`: a monotonic clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_a_completion_is_recorded_first_then_starts_and_news_take_turns_within_the_budget(monkeypatch):
    # given: two running jobs whose log lines wait (recorded 10 and 30 s ago), two queued ones that
    # started (recorded 20 and 15 s ago) and one that completed; each write uses up a pass's budget
    clock = Clock(100.0)
    monkeypatch.setattr(fal_streams, "time", clock)
    monkeypatch.setattr(fal_streams, "NEWS_CHUNK", 1)
    calls: list = []

    def record(rows, statuses, *, streamed):
        calls.append([(pk, fal.status) for (pk, _, _), fal in zip(rows, statuses, strict=True)])
        clock.now += fal_streams.NEWS_BUDGET

    monkeypatch.setattr(fal_streams, "record_statuses", record)
    brought = Brought()
    follower = StreamFollower(limit=10, streams=brought)  # type: ignore[arg-type]
    old, started, late, oldest, done = (uuid.uuid4() for _ in range(5))
    for pk, status, recorded_at in ((old, Status.RUNNING, 90.0), (started, Status.QUEUED, 80.0),
                                    (late, Status.QUEUED, 85.0), (oldest, Status.RUNNING, 70.0),
                                    (done, Status.RUNNING, 95.0)):
        follower.followed[pk] = fal_streams._Followed(status, "http://fal.invalid/status", recorded_at=recorded_at)
        brought.events.append((pk, FalStatus("IN_PROGRESS", logs=[{"message": str(pk)}])))
    brought.events.append((done, FalStatus("COMPLETED")))

    # when / then: the first pass records the completion (with the news before it), then the start
    follower.record_news()
    assert calls == [[(done, "IN_PROGRESS"), (done, "COMPLETED")], [(started, "IN_PROGRESS")]]
    assert done not in follower.followed
    assert follower.followed[started].status == Status.RUNNING
    # a deferred start is not skipped: the job completes meanwhile, and both are recorded first
    brought.events.append((late, FalStatus("COMPLETED")))
    follower.record_news()
    assert calls[2] == [(late, "IN_PROGRESS"), (late, "COMPLETED")]
    # the passes after it take the news in turn, the longest-waiting first, each once
    follower.record_news()
    follower.record_news()
    assert calls[3:] == [[(oldest, "IN_PROGRESS")], [(old, "IN_PROGRESS")]]
    assert all(not job.held for job in follower.followed.values())


@pytest.mark.django_db
def test_a_followed_jobs_due_time_is_pushed_again_once_half_the_backstop_has_passed(user, monkeypatch):
    # given: three followed jobs at fal, due in 2 s: one pushed 1 s ago, one 6 s ago, and one 6 s ago
    # that a user canceled meanwhile
    clock = Clock(1000.0)
    monkeypatch.setattr(fal_streams, "time", clock)
    follower = StreamFollower(limit=10, streams=Brought())  # type: ignore[arg-type]
    fresh, stale, canceled = (create(user, prompt=f"egret {n}") for n in range(3))
    soon = timezone.now() + timedelta(seconds=2)
    Generation.objects.filter(pk__in=[fresh.pk, stale.pk]).update(status=Status.RUNNING, next_poll_at=soon)
    Generation.objects.filter(pk=canceled.pk).update(status=Status.CANCELED, next_poll_at=None)
    for job, pushed_at in ((fresh, 999.0), (stale, 994.0), (canceled, 994.0)):
        follower.followed[job.pk] = fal_streams._Followed(Status.RUNNING, "http://fal.invalid/status",
                                                          pushed_at=pushed_at)
    before = timezone.now()

    # when
    follower._renew()

    # then: only the stale one is pushed STREAM_BACKSTOP away; the canceled one is forgotten
    due = dict(Generation.objects.filter(pk__in=[fresh.pk, stale.pk]).values_list("pk", "next_poll_at"))
    assert due[stale.pk] >= before + tracking.STREAM_BACKSTOP and follower.followed[stale.pk].pushed_at == 1000.0
    assert due[fresh.pk] == soon and follower.followed[fresh.pk].pushed_at == 999.0
    assert canceled.pk not in follower.followed


def test_streams_are_spread_over_clients_of_at_most_streams_per_client_each():
    # httpcore's pool costs each client time in proportion to the connections it holds: with room for
    # 250 streams, three clients take them in turn.
    def completed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b'data: {"status": "COMPLETED", "request_id": "r"}\n\n')

    streams: StatusStreams = StatusStreams(key=KEY, limit=250, transport=httpx.MockTransport(completed))
    try:
        used: list[int] = []
        follow = streams._follow

        async def spy(key, client, status_url):
            used.append(streams._clients.index(client))
            await follow(key, client, status_url)

        streams._follow = spy  # type: ignore[method-assign]
        for n in range(4):
            assert streams.follow(n, f"http://fal.invalid/requests/{n}/status")
        seen = taken_until(streams, lambda seen: len(seen.events) == 4)
    finally:
        streams.close()
    assert status_streams.STREAMS_PER_CLIENT == 100 and len(streams._clients) == 3
    assert used == [0, 1, 2, 0] and sorted(key for key, _ in seen.events) == [0, 1, 2, 3]
