"""Clients need not poll: `Prefer: wait=N` on create and retrieve, and the event stream
`GET /api/v1/generations/{id}/events/` — through Django's test client (WSGI, where the stream is
stepped in its own thread) and under uvicorn as `make run` serves it (ASGI, where it waits on the
change watch)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from accounts.keys import api_key_create
from generations.models import Generation, StreamSlot
from generations.services.create import generation_create
from generations.transitions import transition
from generations.watch import marker_of, watch
from storage.models import UsageEntry, UserQuota
from tests.gateway.test_stream_limits import close
from tests.generations.test_api import assert_error

Status = Generation.Status
CREATE = {"model": "t2v", "input": {"prompt": "A heron waits in the reeds"}}


def running_job(owner) -> Generation:
    generation, _ = generation_create(owner=owner, model="t2v", input={"prompt": "a slow heron"})
    Generation.objects.filter(pk=generation.pk).update(status=Status.RUNNING, fal_status="IN_PROGRESS")
    return Generation.objects.get(pk=generation.pk)


def finish(pk: uuid.UUID, to: str = Status.CANCELED) -> None:
    assert transition(pk, from_=(Status.RUNNING,), to=to, finished_at=timezone.now())


def events_of(chunks: Iterator[bytes]) -> Iterator[dict | str]:
    """Each `data:` event as JSON, each comment as its text."""
    for chunk in chunks:
        text = chunk.decode()
        if text.startswith("data: "):
            yield json.loads(text.removeprefix("data: "))
        else:
            yield text


# --- Prefer: wait ------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=soon", "wait=1.5", "wait="])
def test_a_bad_wait_is_refused_before_anything_is_created(api, user, task_queue, prefer):
    # when: a create asks for a wait outside 1..60 whole seconds
    response = api.post("/api/v1/generations/", CREATE, format="json", HTTP_PREFER=prefer)

    # then: a validation error names the header; no job, ledger line or task
    body = assert_error(response, 422, "validation_error", "Prefer")
    assert "1 to 60" in body["details"]["Prefer"]
    assert not Generation.objects.exists() and not UsageEntry.objects.exists()
    assert task_queue.calls == []


@pytest.mark.django_db
def test_retrieve_with_a_wait_answers_a_terminal_job_at_once(api, user, task_queue):
    # given: a finished job
    generation = running_job(user)
    finish(generation.pk)

    # when: it is read with `Prefer: wait` (the longest wait)
    started = time.monotonic()
    response = api.get(f"/api/v1/generations/{generation.pk}/", HTTP_PREFER="respond-async, wait")

    # then: the answer is the job as it is, with the preference applied, long before the wait ran out
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert response["Preference-Applied"] == "wait=60"
    assert time.monotonic() - started < 30


@pytest.mark.django_db
def test_retrieve_with_a_wait_answers_an_unfinished_job_when_the_wait_runs_out(api, user, task_queue):
    generation = running_job(user)
    response = api.get(f"/api/v1/generations/{generation.pk}/", HTTP_PREFER="wait=1")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert response["Preference-Applied"] == "wait=1"


@pytest.mark.django_db
def test_a_wait_on_another_users_job_is_404(api, other_user, task_queue):
    generation = running_job(other_user)
    assert_error(api.get(f"/api/v1/generations/{generation.pk}/", HTTP_PREFER="wait=5"), 404, "not_found")


@pytest.mark.django_db
def test_create_with_a_wait_returns_the_job_it_made_with_the_preference_applied(api, user, task_queue):
    response = api.post("/api/v1/generations/", CREATE, format="json", HTTP_PREFER="wait=1")
    assert response.status_code == 201 and response["Preference-Applied"] == "wait=1"
    assert response.json()["id"] == str(Generation.objects.get().pk)


@pytest.mark.django_db(transaction=True)
def test_a_wait_ends_when_the_job_ends_not_when_the_time_runs_out(api, user, task_queue):
    # given: a running job that another process finishes half a second from now
    generation = running_job(user)

    def finish_soon() -> None:
        time.sleep(0.5)
        try:
            finish(generation.pk, Status.FAILED)
        finally:
            connection.close()

    finisher = threading.Thread(target=finish_soon)
    finisher.start()

    # when: the client reads it, willing to wait 60 s
    started = time.monotonic()
    response = api.get(f"/api/v1/generations/{generation.pk}/", HTTP_PREFER="wait=60")
    finisher.join()

    # then: the answer is the finished job, sent as the change was seen, not a minute later
    assert response.json()["status"] == "failed"
    assert time.monotonic() - started < 30


# --- the change watch ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_watch_wakes_a_waiter_on_a_change_and_lets_a_quiet_one_time_out(user):
    # given: two running jobs; a waiter watches both, and only the second will change
    other, generation = running_job(user), running_job(user)
    markers = {other.pk: marker_of(other), generation.pk: marker_of(generation)}

    async def scenario() -> tuple[bool, bool]:
        quiet = await watch.changed(markers, 0.6)
        changer = asyncio.get_running_loop().run_in_executor(None, _finish_and_close, generation.pk)
        woken = await watch.changed(markers, 30)
        await changer
        return quiet, woken

    quiet, woken = asyncio.run(scenario())
    assert (quiet, woken) == (False, True)
    assert watch._waiters == {}  # every waiter removed itself


def _finish_and_close(pk: uuid.UUID) -> None:
    try:
        time.sleep(0.3)
        finish(pk)
    finally:
        connection.close()


# --- the event stream, through the test client ---------------------------------------------------

@pytest.mark.django_db
def test_the_event_stream_sends_each_change_and_ends_at_a_terminal_status(api, user, task_queue):
    # given: a running job, and its stream open (Accept: text/event-stream, as EventSource sends)
    generation = running_job(user)
    response = api.get(f"/api/v1/generations/{generation.pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    events = events_of(iter(response.streaming_content))

    # then: the first event is the job as GET returns it, and the stream holds a slot
    first = next(events)
    assert isinstance(first, dict) and first == api.get(f"/api/v1/generations/{generation.pk}/").json()
    assert StreamSlot.objects.filter(user=user).count() == 1

    # when: the job ends
    finish(generation.pk)

    # then: one more event, the terminal one, and the end; the slot is given back on close
    rest = list(events)  # read to its end, which closes it (Django's test client does)
    assert [event["status"] for event in rest if isinstance(event, dict)] == ["canceled"]
    assert not StreamSlot.objects.exists()


@pytest.mark.django_db
def test_the_event_stream_is_only_for_the_owner(api, other_user, task_queue):
    generation = running_job(other_user)
    response = api.get(f"/api/v1/generations/{generation.pk}/events/")
    assert_error(response, 404, "not_found")
    assert not StreamSlot.objects.exists()


@pytest.mark.django_db
def test_event_streams_over_the_cap_are_refused_with_retry_after(api, user, settings, task_queue):
    settings.STUDIO_MAX_STREAMS_PER_USER = 1
    generation = running_job(user)
    first = api.get(f"/api/v1/generations/{generation.pk}/events/")
    second = api.get(f"/api/v1/generations/{generation.pk}/events/")
    assert first.status_code == 200
    body = assert_error(second, 429, "too_many_streams")
    assert "STUDIO_MAX_STREAMS_PER_USER" in body["message"] and int(second["Retry-After"]) >= 1
    assert StreamSlot.objects.count() == 1
    close(first)
    assert not StreamSlot.objects.exists()


# --- under uvicorn, as `make run` serves it ------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_under_asgi_streams_and_waits_follow_a_change_from_another_process(live_web, user):
    # given: a running job, its event stream open, and a waiting retrieve — against uvicorn
    _, key = api_key_create(user=user, name="live")
    generation = running_job(user)
    headers = {"Authorization": f"Key {key}"}
    path = f"/api/v1/generations/{generation.pk}/"
    with httpx.Client(base_url=live_web, headers=headers, timeout=30) as http:
        with http.stream("GET", path + "events/") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            first = json.loads(next(line for line in lines if line.startswith("data: ")).removeprefix("data: "))
            assert first["status"] == "running"
            results: list[httpx.Response] = []
            waiting = threading.Thread(target=lambda: results.append(http.get(path, headers={"Prefer": "wait=30"})))
            waiting.start()

            # when: the job ends in the database (as the worker process would end it)
            time.sleep(0.3)
            finish(generation.pk)

            # then: the stream sends the terminal event and ends; the waiting read answers with it
            last = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
            assert [event["status"] for event in last] == ["canceled"]
        waiting.join(30)
    assert results[0].json()["status"] == "canceled" and results[0].headers["Preference-Applied"] == "wait=30"


@pytest.mark.django_db(transaction=True)
def test_under_asgi_many_simultaneous_connections_are_all_answered(live_web, user):
    # given: 200 clients connecting at once (runserver's queue of 10 reset some of 50)
    async def one(http: httpx.AsyncClient) -> int:
        return (await http.get("/livez")).status_code

    async def all_at_once() -> list[int]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=live_web, limits=limits, timeout=60) as http:
            return await asyncio.gather(*(one(http) for _ in range(200)))

    # then: every one is answered, none reset
    assert asyncio.run(all_at_once()) == [200] * 200


@pytest.mark.django_db(transaction=True)
def test_under_asgi_open_streams_do_not_hold_a_database_connection_each(live_web, user):
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL's connections (pg_stat_activity)")
    # given: more open event streams than the web process has database threads (core/streaming.py)
    _, key = api_key_create(user=user, name="live")
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100})
    jobs = [running_job(user) for _ in range(16)]

    def server_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]

    before = server_connections()
    with httpx.Client(base_url=live_web, headers={"Authorization": f"Key {key}"}, timeout=30) as http:
        with contextlib.ExitStack() as streams:
            for job in jobs:
                stream = streams.enter_context(http.stream("GET", f"/api/v1/generations/{job.pk}/events/"))
                assert next(line for line in stream.iter_lines() if line.startswith("data: "))
            # then: the server holds fewer connections than streams (its shared threads and the watch)
            during = server_connections()
    assert during - before < len(jobs), (before, during)


@pytest.mark.django_db
def test_event_stream_errors_are_json_even_when_asked_for_events(api, other_user, user, settings, task_queue):
    # a stranger's job, asked for as EventSource asks: the 404 is the API's JSON error
    response = api.get(f"/api/v1/generations/{running_job(other_user).pk}/events/", HTTP_ACCEPT="text/event-stream")
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, "not_found")
    # and over the cap, the 429 likewise
    settings.STUDIO_MAX_STREAMS_PER_USER = 0
    response = api.get(f"/api/v1/generations/{running_job(user).pk}/events/?format=event-stream")
    assert response["Content-Type"] == "application/json"
    assert_error(response, 429, "too_many_streams")
