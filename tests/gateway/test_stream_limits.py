"""Status streams cannot take the web tier down: at most STUDIO_MAX_STREAMS_PER_USER open per user
(counted in the database, so across processes, and never leaked), a maximum lifetime, and a closed
client noticed within about a second — under gunicorn as production runs it."""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.utils import timezone

from accounts.keys import api_key_create
from generations.models import Generation, StreamSlot
from generations.services import streams as streams_module
from generations.services.create import generation_create
from generations.services.streams import TooManyStreams, stream_slot_take
from tests.conftest import wait_until
from tests.processes import running_gunicorn
from tests.test_production import production_env

Status = Generation.Status


def unfinished(owner) -> Generation:
    generation, _ = generation_create(owner=owner, model="t2v", input={"prompt": "a slow fox"})
    Generation.objects.filter(pk=generation.pk).update(status=Status.RUNNING, fal_status="IN_PROGRESS")
    return generation


def stream_path(generation: Generation) -> str:
    return f"/fal/fal-ai/ltx-2/requests/{generation.pk}/status/stream"


# --- the cap, through Django's test client -----------------------------------------------------------

def close(response) -> None:
    """Close a response as the server does when it is done with it — without closing the test's own
    database connection (request_finished would), as Django's test client does."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


@pytest.mark.django_db
def test_streams_over_the_cap_get_429_and_a_closed_one_makes_room(gw, other_gw, user, other_user, settings,
                                                                  task_queue):
    # given: a cap of 2 and an unfinished job
    settings.STUDIO_MAX_STREAMS_PER_USER = 2
    path = stream_path(unfinished(user))

    # when: three streams are opened
    first, second, third = (gw.get(path) for _ in range(3))

    # then: two stream, the third is 429 in fal's shape with Retry-After; the slots are rows
    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429 and 0 < int(third["Retry-After"]) <= streams_module.SLOT_SECONDS
    assert third.json()["error_type"] == "too_many_streams" and "STUDIO_MAX_STREAMS_PER_USER" in third.json()["detail"]
    assert StreamSlot.objects.filter(user=user).count() == 2
    # another user's streams are counted apart
    theirs = other_gw.get(stream_path(unfinished(other_user)))
    assert theirs.status_code == 200

    # and: a stream the server closes gives its slot back at once, so another may open
    close(first)
    assert StreamSlot.objects.filter(user=user).count() == 1
    fourth = gw.get(path)
    assert fourth.status_code == 200
    for response in (second, theirs, fourth):
        close(response)
    assert not StreamSlot.objects.exists()


@pytest.mark.django_db
def test_a_finished_stream_gives_its_slot_back(gw, user, task_queue):
    generation = unfinished(user)
    Generation.objects.filter(pk=generation.pk).update(status=Status.CANCELED, error_code="canceled")
    response = gw.get(stream_path(generation))
    chunks = list(response.streaming_content)  # the test client closes the response at the end
    assert len(chunks) == 1 and b"COMPLETED" in chunks[0]
    assert not StreamSlot.objects.exists()


@pytest.mark.django_db
def test_slots_left_by_a_dead_process_expire(gw, user, settings, task_queue):
    # given: the cap taken by slots whose process died (not renewed for SLOT_SECONDS)
    settings.STUDIO_MAX_STREAMS_PER_USER = 2
    StreamSlot.objects.bulk_create(StreamSlot(user=user, expires_at=timezone.now() - timedelta(seconds=1))
                                   for _ in range(2))

    # when / then: a stream opens, and the dead slots are gone
    response = gw.get(stream_path(unfinished(user)))
    assert response.status_code == 200
    assert StreamSlot.objects.filter(user=user).count() == 1
    close(response)


@pytest.mark.django_db
def test_a_stream_ends_at_its_maximum_lifetime(gw, user, settings, task_queue):
    # given: an unfinished job and streams that may live half a second
    settings.STUDIO_SSE_MAX_SECONDS = 0.5
    settings.STUDIO_SSE_KEEPALIVE_SECONDS = 0.1
    response = gw.get(stream_path(unfinished(user)))
    deadline = time.monotonic() + 20

    # when: it is read to its end
    chunks = []
    for chunk in response.streaming_content:
        chunks.append(chunk.decode())
        assert time.monotonic() < deadline, "the stream did not end"

    # then: it ended without COMPLETED, said why, and gave its slot back
    assert json.loads(chunks[0].removeprefix("data: "))["status"] == "IN_PROGRESS"
    assert "COMPLETED" not in "".join(chunks)
    assert chunks[-1].startswith(": this stream reached its time limit (STUDIO_SSE_MAX_SECONDS)")
    assert not StreamSlot.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_opens_at_once_cannot_both_take_the_last_slot(user, settings, monkeypatch):
    # given: one slot left, and takes that, once they have counted, wait for each other (up to a
    # second: under the user's lock the other cannot count meanwhile)
    settings.STUDIO_MAX_STREAMS_PER_USER = 2
    stream_slot_take(user)
    start, counted = threading.Barrier(2), threading.Barrier(2)
    count = streams_module._held_expiries

    def count_then_wait(owner):
        held = count(owner)
        try:
            counted.wait(timeout=1)
        except threading.BrokenBarrierError:
            pass
        return held

    monkeypatch.setattr(streams_module, "_held_expiries", count_then_wait)
    outcomes: list[str] = []

    def take() -> None:
        try:
            start.wait()
            stream_slot_take(user)
            outcomes.append("taken")
        except TooManyStreams:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["refused", "taken"]
    assert StreamSlot.objects.filter(user=user).count() == 2


# --- under gunicorn ----------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_one_user_over_the_stream_cap_cannot_starve_another_users_requests(collected_static: Path, user, other_user,
                                                                           task_queue):
    # given: gunicorn with one process of 4 threads, a cap of 2 streams per user, and an unfinished job
    env = production_env(collected_static, WEB_CONCURRENCY="1", GUNICORN_THREADS="4",
                         STUDIO_MAX_STREAMS_PER_USER="2")
    generation = unfinished(user)
    key = api_key_create(user=user, name="streamer")[1]
    other_key = api_key_create(user=other_user, name="bystander")[1]
    with running_gunicorn(env) as (url, _):
        streams = []
        try:
            # when: the user opens more streams than the server has threads
            codes = []
            for _ in range(5):
                client = httpx.Client(base_url=url, timeout=httpx.Timeout(5.0))
                try:
                    response = client.send(client.build_request("GET", stream_path(generation),
                                                                headers={"Authorization": f"Key {key}"}), stream=True)
                    codes.append(response.status_code)
                    if response.status_code == 200:
                        lines = response.iter_lines()  # kept: dropping it would close the connection
                        next(lines)  # the first event: the stream is open
                        streams.append(lines)
                    else:
                        assert response.headers["Retry-After"]
                        assert json.loads(response.read())["error_type"] == "too_many_streams"
                except httpx.TimeoutException:
                    codes.append(None)
                streams.append(client)

            # then: another user's plain request still answers (without the cap it timed out: every
            # thread was holding a stream), and the user got two streams and three refusals
            answer = httpx.get(f"{url}/api/v1/usage/", headers={"Authorization": f"Bearer {other_key}"}, timeout=5)
            assert answer.status_code == 200
            assert codes == [200, 200, 429, 429, 429]
        finally:
            for held in streams:
                held.close()
        wait_until(lambda: not StreamSlot.objects.exists(), timeout=10)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_closed_client_frees_its_slot_within_about_a_second(collected_static: Path, user, task_queue):
    # given: gunicorn (keep-alives every 15 s, the default) and a stream open on an unfinished job
    env = production_env(collected_static, WEB_CONCURRENCY="1", GUNICORN_THREADS="4")
    generation = unfinished(user)
    key = api_key_create(user=user, name="streamer")[1]
    with running_gunicorn(env) as (url, _):
        client = httpx.Client(base_url=url, timeout=5)
        response = client.send(client.build_request("GET", stream_path(generation),
                                                    headers={"Authorization": f"Key {key}"}), stream=True)
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert StreamSlot.objects.count() == 1

        # when: the client closes the connection
        client.close()

        # then: the server notices and frees the slot within about a second, not at the next keep-alive
        wait_until(lambda: not StreamSlot.objects.exists(), timeout=2.5, interval=0.05)


# --- renewing the slots of a process's open streams ---------------------------------------------------

@pytest.mark.django_db
def test_slots_are_renewed_together_and_the_gone_ones_named(user):
    kept, gone = stream_slot_take(user), stream_slot_take(user)
    StreamSlot.objects.filter(pk__in=[kept.pk, gone.pk]).update(expires_at=timezone.now())
    gone.delete()
    before = timezone.now()
    assert streams_module.stream_slots_renew({kept.pk, gone.pk}) == {gone.pk}
    assert StreamSlot.objects.get(pk=kept.pk).expires_at >= before + timedelta(seconds=streams_module.SLOT_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_the_process_renews_held_slots_and_marks_the_removed_one_lost(user, monkeypatch):
    # given: a renewal every 0.1 s, and two held slots, one of which another process then removes
    monkeypatch.setattr(streams_module, "SLOT_SECONDS", 0.3)
    held = streams_module.SlotsHeld()
    kept, gone = stream_slot_take(user), stream_slot_take(user)
    held.hold(kept)
    held.hold(gone)
    first_expiry = StreamSlot.objects.get(pk=kept.pk).expires_at
    StreamSlot.objects.filter(pk=gone.pk).delete()

    # then: the removed one is lost (its stream ends), the kept one renewed and not lost
    wait_until(lambda: held.lost(gone), timeout=10)
    wait_until(lambda: StreamSlot.objects.get(pk=kept.pk).expires_at > first_expiry, timeout=10)
    assert not held.lost(kept)

    # and once nothing is held, the renewing thread ends
    held.drop(kept)
    held.drop(gone)
    wait_until(lambda: held._thread is None, timeout=10)
