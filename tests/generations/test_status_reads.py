"""The status endpoints' fast read: REST retrieve and the gateway's status and result
check the API key and read the job in one query, answer exactly what the ORM-loaded job answers,
and keep every contract: isolation, revocation and suspension at once, last use stamped rarely."""
from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts.keys import api_key_create, api_key_revoke
from accounts.models import ApiKey
from generations import status_reads
from generations.media_links import media_link_read
from generations.models import Generation
from generations.payloads import generation_payload, result_response, status_body
from generations.selectors import generation_get_for
from generations.status_reads import status_row_for_key
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db
LOGS = [{"message": f"step {i}", "level": "INFO", "source": "USER", "timestamp": "2026-11-25T10:00:00Z"}
        for i in range(3)]


def running(owner) -> Generation:
    return GenerationFactory(owner=owner, prompt="status", status="running", fal_status="IN_PROGRESS", logs=LOGS,
                             started_at=timezone.now(), queue_position=None)


def finished(owner, *, hidden: bool = False) -> Generation:
    now = timezone.now()
    return GenerationFactory(owner=owner, prompt="finished", with_video=True, status="succeeded",
                             fal_status="COMPLETED", is_hidden=hidden, started_at=now - timedelta(seconds=9),
                             completed_at=now - timedelta(seconds=1), finished_at=now, inference_seconds=7.5, logs=LOGS)


def orm_loaded(generation: Generation) -> Generation:
    return Generation.objects.select_related("video__file", "video__poster").get(pk=generation.pk)


def without_links(payload: dict) -> dict:
    video = payload.get("video")
    if not video:
        return payload
    return {**payload, "video": {k: v for k, v in video.items() if not k.endswith("url")}}


@pytest.fixture
def raw_key(user) -> str:
    raw = api_key_create(user=user, name="poller")[1]
    ApiKey.objects.update(last_used_at=timezone.now())  # a key in use: checking it writes nothing
    return raw


def rest(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def gateway(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Key {raw}")


def status_url(generation_id, tail: str = "/status") -> str:
    return f"/fal/fal-ai/ltx-2/requests/{generation_id}{tail}"


# --- one query, the ORM's answer ------------------------------------------------------------------

@pytest.mark.parametrize("make", [running, finished])
def test_rest_retrieve_is_one_query_and_answers_what_the_orm_loaded_job_answers(make, user, raw_key):
    generation = make(user)
    with CaptureQueriesContext(connection) as queries:
        response = rest(raw_key).get(f"/api/v1/generations/{generation.pk}/")
    assert response.status_code == 200
    assert len(queries.captured_queries) == 1
    body = response.json()
    assert without_links(body) == without_links(generation_payload(orm_loaded(generation)))
    if body["video"]:
        assert media_link_read(body["video"]["url"].rsplit("/", 1)[-1]) == (str(generation.pk), "video", False)
        assert body["video"]["poster_url"] and (body["video"]["content_type"], body["video"]["file_size"]) == (
            "video/mp4", 2048)


@pytest.mark.parametrize("make, code", [(running, 202), (finished, 200)])
def test_gateway_status_is_one_query_and_answers_what_the_orm_loaded_job_answers(make, code, user, raw_key):
    generation = make(user)
    with CaptureQueriesContext(connection) as queries:
        response = gateway(raw_key).get(status_url(generation.pk) + "?logs=1")
    assert (response.status_code, len(queries.captured_queries)) == (code, 1)
    assert response["x-fal-request-id"] == str(generation.pk)
    assert response.json() == status_body(orm_loaded(generation), app="fal-ai/ltx-2", base="http://testserver",
                                          logs=True)


@pytest.mark.parametrize("hidden, code", [(False, 200), (True, 410)])
def test_gateway_result_is_one_query_and_hidden_videos_are_410(hidden, code, user, raw_key):
    generation = finished(user, hidden=hidden)
    with CaptureQueriesContext(connection) as queries:
        response = gateway(raw_key).get(status_url(generation.pk, ""))
    assert (response.status_code, len(queries.captured_queries)) == (code, 1)
    expected_code, expected = result_response(orm_loaded(generation), response.wsgi_request)
    assert expected_code == code
    assert without_links(response.json()) == without_links(expected)


def test_the_fast_read_loads_what_the_full_read_loads_for_the_answers(user, raw_key):
    generation = finished(user)
    key, row = status_row_for_key(raw_key, generation.pk)
    fast = row.generation()
    full = generation_get_for(user, generation.pk)
    assert key.user == user and key.user.username == user.username
    for name in ("status", "logs", "input", "cost_usd", "created_at", "finished_at", "inference_seconds", "is_hidden"):
        assert getattr(fast, name) == getattr(full, name), name
    with CaptureQueriesContext(connection) as queries:
        assert (fast.video.file.size, fast.video.poster_id, fast.video.num_frames) == (2048, full.video.poster_id, 150)
    assert queries.captured_queries == []
    assert fast.fal_request_id == full.fal_request_id  # fields the answers do not show still load on access


def test_a_rest_poll_is_answered_without_drfs_request_handling_exactly_as_drf_answers_it(user, raw_key):
    generation = running(user)
    url = f"/api/v1/generations/{generation.pk}/"
    with mock.patch.object(APIView, "initial", side_effect=AssertionError("DRF handled the poll")):
        poll = rest(raw_key).get(url)
        accepting_json = rest(raw_key).get(url, HTTP_ACCEPT="application/json")
    # An Accept header the short path does not read goes through DRF, which negotiates JSON too.
    through_drf = rest(raw_key).get(url, HTTP_ACCEPT="application/json, text/plain;q=0.5")
    assert poll.status_code == accepting_json.status_code == through_drf.status_code == 200
    assert poll.content == accepting_json.content == through_drf.content
    assert dict(poll.headers) == dict(through_drf.headers)
    assert (poll["Content-Type"], poll["Allow"], poll["Vary"]) == ("application/json", "GET, DELETE, HEAD, OPTIONS",
                                                                   "Accept")


def test_the_browsable_api_and_other_methods_still_go_through_drf(user, raw_key):
    generation = running(user)
    url = f"/api/v1/generations/{generation.pk}/"
    for page in (rest(raw_key).get(url, HTTP_ACCEPT="text/html"), rest(raw_key).get(url + "?format=api")):
        assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
        assert str(generation.pk) in page.content.decode()
    assert rest(raw_key).delete(url).json()["code"] == "still_active"
    assert Generation.objects.filter(pk=generation.pk).exists()


# --- answers remembered per row ------------------------------------------------------------------

def test_an_unchanged_job_is_answered_from_memory_and_a_changed_one_afresh(user, raw_key):
    generation = running(user)
    status_reads._rest_body.cache_clear()
    status_reads._remembered_gateway_status.cache_clear()
    rest_url, gateway_url = f"/api/v1/generations/{generation.pk}/", status_url(generation.pk) + "?logs=1"
    first = (rest(raw_key).get(rest_url).json(), gateway(raw_key).get(gateway_url).json())
    again = (rest(raw_key).get(rest_url).json(), gateway(raw_key).get(gateway_url).json())
    assert again == first
    for remembered in (status_reads._rest_body, status_reads._remembered_gateway_status):
        assert (remembered.cache_info().misses, remembered.cache_info().hits) == (1, 1)

    step = {"message": "step 3", "level": "INFO", "source": "USER", "timestamp": "2026-11-25T10:00:03Z"}
    Generation.objects.filter(pk=generation.pk).update(logs=[*LOGS, step])
    changed_rest, changed_gateway = rest(raw_key).get(rest_url).json(), gateway(raw_key).get(gateway_url).json()
    assert changed_rest["logs"][-1] == changed_gateway["logs"][-1] == step
    Generation.objects.filter(pk=generation.pk).update(status="queued", fal_status="IN_QUEUE", queue_position=4)
    assert rest(raw_key).get(rest_url).json()["queue_position"] == 4
    response = gateway(raw_key).get(gateway_url)
    assert (response.status_code, response.json()["status"], response.json()["queue_position"]) == (202, "IN_QUEUE", 4)
    # Another base URL is another answer.
    assert gateway(raw_key).get(gateway_url, HTTP_HOST="127.0.0.1").json()["status_url"].startswith("http://127.0.0.1/")


def test_answers_with_media_links_are_never_remembered(user, raw_key):
    generation = finished(user)
    status_reads._rest_body.cache_clear()
    url = f"/api/v1/generations/{generation.pk}/"
    links = [rest(raw_key).get(url).json()["video"]["url"] for _ in range(2)]
    assert all(media_link_read(link.rsplit("/", 1)[-1]) == (str(generation.pk), "video", False) for link in links)
    assert status_reads._rest_body.cache_info().currsize == 0


# --- isolation, revocation, suspension ------------------------------------------------------------

def test_another_users_job_reads_exactly_like_an_unknown_one(user, other_user, raw_key):
    theirs = running(other_user)
    unknown = str(uuid.uuid4())
    assert status_row_for_key(raw_key, theirs.pk) == (ApiKey.objects.get(user=user), None)
    for client, url in ((rest(raw_key), "/api/v1/generations/{}/"), (gateway(raw_key), status_url("{}")),
                        (gateway(raw_key), status_url("{}", ""))):
        mine, missing = client.get(url.format(theirs.pk)), client.get(url.format(unknown))
        assert (mine.status_code, missing.status_code) == (404, 404)
        assert mine.content.decode() == missing.content.decode().replace(unknown, str(theirs.pk))
    assert Generation.objects.get(pk=theirs.pk).status == "running"


def test_revoking_a_key_stops_it_on_the_very_next_poll(user, raw_key):
    generation = running(user)
    assert rest(raw_key).get(f"/api/v1/generations/{generation.pk}/").status_code == 200
    assert gateway(raw_key).get(status_url(generation.pk)).status_code == 202
    api_key_revoke(ApiKey.objects.get())
    assert rest(raw_key).get(f"/api/v1/generations/{generation.pk}/").status_code == 401
    assert gateway(raw_key).get(status_url(generation.pk)).status_code == 401


def test_suspending_a_user_stops_their_keys_on_the_very_next_poll(user, raw_key):
    generation = running(user)
    assert gateway(raw_key).get(status_url(generation.pk)).status_code == 202
    user.is_active = False
    user.save()
    assert rest(raw_key).get(f"/api/v1/generations/{generation.pk}/").status_code == 401
    response = gateway(raw_key).get(status_url(generation.pk))
    assert response.status_code == 403 and "suspended" in response.json()["detail"]


def test_a_signed_in_session_still_reads_its_job_over_rest(user):
    generation = running(user)
    client = APIClient()
    client.force_login(user)
    response = client.get(f"/api/v1/generations/{generation.pk}/")
    assert response.status_code == 200 and response.json()["logs"] == LOGS


# --- last use ------------------------------------------------------------------------------------

def test_last_use_is_stamped_at_most_once_a_minute(user):
    key, raw = api_key_create(user=user, name="k")
    generation = running(user)
    url = f"/api/v1/generations/{generation.pk}/"
    with CaptureQueriesContext(connection) as first:
        assert rest(raw).get(url).status_code == 200
    stamped = ApiKey.objects.get().last_used_at
    assert stamped is not None and len(first.captured_queries) == 2  # the read and the stamp
    with CaptureQueriesContext(connection) as again:
        assert gateway(raw).get(status_url(generation.pk)).status_code == 202
    assert len(again.captured_queries) == 1 and ApiKey.objects.get().last_used_at == stamped
    ApiKey.objects.update(last_used_at=stamped - timedelta(minutes=2))
    assert rest(raw).get(url).status_code == 200
    assert ApiKey.objects.get().last_used_at > stamped


# --- throttling ----------------------------------------------------------------------------------

def test_polls_are_throttled_per_user_as_a_burst_then_a_steady_pace(user, other_user, raw_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "3/min", "create": "2/min"}}
    generation = running(user)
    url = f"/api/v1/generations/{generation.pk}/"
    client = rest(raw_key)
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(url)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 20  # one call per 20 s
    second_key = APIClient()
    second_key.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=user, name='second')[1]}")
    assert second_key.get(url).status_code == 429  # per user: another key of theirs shares the budget
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=other_user, name='theirs')[1]}")
    assert other.get(f"/api/v1/generations/{running(other_user).pk}/").status_code == 200


def test_one_declaration_shapes_the_json_the_schema_and_the_status_read():
    """A key added to payloads.GENERATION_JSON is in every answer, selected by the polled read, and
    must be documented by the API's serializer (this test says so when it is not)."""
    from api.serializers import GenerationSerializer
    from generations.payloads import GENERATION_JSON
    from generations.status_reads import STATUS_FIELDS

    keys = [out.key for out in GENERATION_JSON]
    assert list(GenerationSerializer().fields) == keys
    assert {name for out in GENERATION_JSON for name in out.reads} <= set(STATUS_FIELDS)
