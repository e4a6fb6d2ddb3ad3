"""The pages' live streams (web/live.py): the job page's status and the gallery's cards as server-sent
events, through Django's test client (WSGI, where a stream is stepped in its own thread). The browser
side is in test_browser.py."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from django.test import Client

from generations.models import Generation, StreamSlot
from studio.asgi import STREAM_PATH
from tests.gateway.test_stream_limits import close
from tests.generations.test_live_answers import events_of, finish, running_job

pytestmark = pytest.mark.django_db
Status = Generation.Status


@pytest.fixture
def alice(client, user, task_queue):
    client.force_login(user)
    return client


def test_the_job_page_stream_sends_each_change_and_ends_with_the_job(alice, user):
    # given: a running job, and its page's stream open
    generation = running_job(user)
    response = alice.get(f"/generations/{generation.pk}/events")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    events = events_of(iter(response.streaming_content))

    # then: the first event is what the status URL answers, less the elapsed time the page counts itself
    first = next(events)
    status = alice.get(f"/generations/{generation.pk}/status").json()
    assert isinstance(first, dict) and first == {k: v for k, v in status.items() if k != "elapsed_seconds"}
    assert first["status"] == "running" and first["terminal"] is False
    assert StreamSlot.objects.filter(user=user).count() == 1

    # when: the job ends
    finish(generation.pk, Status.FAILED)

    # then: one more event, the terminal one, then the end; the slot is given back
    rest = [event for event in events if isinstance(event, dict)]
    assert [(event["status"], event["terminal"]) for event in rest] == [("failed", True)]
    assert not StreamSlot.objects.exists()


def test_the_job_page_stream_is_only_for_the_owner(alice, other_user):
    generation = running_job(other_user)
    assert alice.get(f"/generations/{generation.pk}/events").status_code == 404
    assert not StreamSlot.objects.exists()


def test_a_page_over_the_stream_cap_is_refused_with_retry_after(alice, user, settings):
    # given: one stream slot, held by the job page
    settings.STUDIO_MAX_STREAMS_PER_USER = 1
    generation = running_job(user)
    first = alice.get(f"/generations/{generation.pk}/events")
    assert first.status_code == 200

    # when: the gallery asks for a stream too
    second = alice.get(f"/generations/events?ids={generation.pk}")

    # then: 429 with a retry time (the page then polls); no second slot
    assert second.status_code == 429 and int(second["Retry-After"]) >= 1
    assert "STUDIO_MAX_STREAMS_PER_USER" in second.content.decode()
    assert StreamSlot.objects.count() == 1
    close(first)
    assert not StreamSlot.objects.exists()


def test_the_gallery_stream_sends_each_card_until_all_have_ended(alice, user, other_user):
    # given: two of alice's jobs (one running, one already ended) and one of another user's
    running, ended, foreign = running_job(user), running_job(user), running_job(other_user)
    finish(ended.pk)

    # when: the gallery follows all three
    response = alice.get(f"/generations/events?project=1&ids={running.pk},{ended.pk},{foreign.pk}")
    assert response.status_code == 200
    events = events_of(iter(response.streaming_content))

    # then: each of alice's cards comes as the server renders it; the ended one is final at once
    first = {event["id"]: event for event in (next(events), next(events))}
    assert set(first) == {str(running.pk), str(ended.pk)}
    assert first[str(ended.pk)]["terminal"] is True and first[str(running.pk)]["terminal"] is False
    html = first[str(running.pk)]["html"]
    assert html.startswith(f'<article class="card" data-generation="{running.pk}" data-live>')
    assert "Running" in html and running.project.name in html  # project=1: the card names its project
    assert "data-live" not in first[str(ended.pk)]["html"]

    # when: the running one ends
    finish(running.pk, Status.FAILED)

    # then: its final card, then the end; the other user's job was never sent
    rest = [event for event in events if isinstance(event, dict)]
    assert [(event["id"], event["status"]) for event in rest] == [(str(running.pk), "failed")]
    assert "data-live" not in rest[0]["html"]
    assert all(event["id"] != str(foreign.pk) for event in [*first.values(), *rest])
    assert not StreamSlot.objects.exists()


def test_the_gallery_stream_without_cards_of_the_users_says_there_is_nothing(alice, other_user):
    foreign = running_job(other_user)
    response = alice.get(f"/generations/events?ids={foreign.pk}")
    assert response.status_code == 204
    assert not StreamSlot.objects.exists()


@pytest.mark.parametrize("ids", ["not-a-uuid", ",".join(["00000000-0000-0000-0000-000000000001"] * 101)])
def test_a_bad_ids_list_is_refused_naming_it(alice, ids):
    response = alice.get(f"/generations/events?ids={ids}")
    assert response.status_code == 400 and response.content.decode().startswith("ids:")
    assert not StreamSlot.objects.exists()


def test_the_streams_need_a_signed_in_user(client, user):
    generation = running_job(user)
    for url in (f"/generations/{generation.pk}/events", f"/generations/events?ids={generation.pk}"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not StreamSlot.objects.exists()


@pytest.mark.parametrize(("path", "shares_the_stream_thread"), [
    ("/generations/0b8e2c1a-7d4f-4b59-9f3e-2a6c1d5e8f70/events", True),
    ("/generations/events", True),
    ("/generations/0b8e2c1a-7d4f-4b59-9f3e-2a6c1d5e8f70/status", False),
    ("/generations/0b8e2c1a-7d4f-4b59-9f3e-2a6c1d5e8f70/", False),
])
def test_under_asgi_only_the_pages_streams_share_the_stream_thread(path, shares_the_stream_thread):
    assert bool(STREAM_PATH.match(path)) is shares_the_stream_thread


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_gallery_stream_follows_a_change_from_another_process(live_web, user):  # noqa: F811
    # given: a signed-in browser's session, and a running job — against uvicorn, as `make run` serves
    browser = Client()
    browser.force_login(user)
    generation = running_job(user)
    cookies = {"sessionid": browser.cookies["sessionid"].value}
    with httpx.Client(base_url=live_web, cookies=cookies, timeout=30) as http:
        with http.stream("GET", f"/generations/events?ids={generation.pk}") as stream:
            assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
            lines = stream.iter_lines()
            first = json.loads(next(line for line in lines if line.startswith("data: ")).removeprefix("data: "))
            assert (first["id"], first["status"]) == (str(generation.pk), "running")

            # when: the job ends in the database (as the worker process would end it)
            finish(generation.pk)

            # then: the card's final look, and the end of the stream
            rest = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
            assert [(event["status"], event["terminal"]) for event in rest] == [("canceled", True)]
    # and the server gives the slot back once it has closed the response
    deadline = time.monotonic() + 10
    while StreamSlot.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not StreamSlot.objects.exists()
