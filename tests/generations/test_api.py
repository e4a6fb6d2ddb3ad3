"""REST API v1: auth modes, every endpoint, the error shape, isolation and idempotency."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from accounts.models import ApiKey
from generations.models import Generation, Project
from storage.models import UsageEntry, UserQuota
from tests.generations.test_pipeline import track_until
from tests.media_fetch import fetch
from tests.processes import free_port

pytestmark = pytest.mark.django_db
BODY = {"model": "t2v", "input": {"prompt": "A cowboy at high noon", "duration": 8}}


@pytest.fixture
def other_api(other_user):
    _, raw = api_key_create(user=other_user, name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Key {raw}")
    return client


def assert_error(response, status, code, *fields):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code and body["message"]
    for field in fields:
        assert field in body["details"], body
    return body


# --- auth ---------------------------------------------------------------------------------------

def test_bearer_and_key_schemes_both_authenticate(user, task_queue):
    _, raw = api_key_create(user=user, name="k")
    for scheme in ("Bearer", "Key"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {raw}")
        assert client.get("/api/v1/usage/").status_code == 200
    assert ApiKey.objects.get().last_used_at is not None


def test_session_auth_works_and_needs_csrf_for_writes(user, task_queue):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/generations/").status_code == 200
    assert_error(client.post("/api/v1/generations/", BODY, format="json"), 403, "permission_denied")
    assert Generation.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer nope", "Key ltx_wrong", "Bearer "])
def test_bad_keys_are_401_and_nothing_happens(header, task_queue):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.post("/api/v1/generations/", BODY, format="json"), 401, "authentication_failed")
    assert Generation.objects.count() == 0 and task_queue.calls == []


def test_no_credentials_is_401():
    assert_error(APIClient().get("/api/v1/generations/"), 401, "not_authenticated")


def test_revoked_keys_and_suspended_users_stop_working(user, task_queue):
    key, raw = api_key_create(user=user, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/usage/").status_code == 200
    user.is_active = False
    user.save()
    assert client.get("/api/v1/usage/").status_code == 401
    user.is_active = True
    user.save()
    assert client.delete(f"/api/v1/keys/{key.pk}/").status_code == 204
    assert client.get("/api/v1/usage/").status_code == 401


def test_keys_are_stored_as_digests_and_shown_once(api, user):
    created = api.post("/api/v1/keys/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    raw = created.json()["key"]
    assert raw.startswith("ltx_") and len(raw) > 40
    listed = api.get("/api/v1/keys/").json()
    assert {k["name"] for k in listed} == {"tests", "ci"}
    assert all("key" not in k and "digest" not in k for k in listed)
    assert not ApiKey.objects.filter(digest=raw).exists() and ApiKey.objects.filter(prefix=raw[:12]).exists()


def test_create_api_key_command_prints_the_key_alone_on_its_last_line(user, capsys):
    call_command("create_api_key", "alice", "--name", "cli")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/usage/").status_code == 200


# --- generations --------------------------------------------------------------------------------

def test_create_returns_201_with_the_generation_and_reserves_quota(api, user, task_queue,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/generations/", BODY, format="json")
    assert response.status_code == 201
    body = response.json()
    generation = Generation.objects.get()
    assert body["id"] == str(generation.pk) and body["status"] == "pending"
    assert body["model"] == "fal-ai/ltx-2.3/text-to-video"  # t2v under the default STUDIO_LTX_VERSION, 2.3
    assert body["input"] == {"prompt": "A cowboy at high noon", "duration": 8, "resolution": "1080p",
                             "aspect_ratio": "16:9", "fps": 25, "generate_audio": True}
    assert (body["cost_usd"], body["video"], body["error"]) == ("0.64", None, None)
    assert body["project"] == str(Project.objects.get(owner=user, name="Inbox").pk)
    assert task_queue.names()[0] == "generation_submit_task"
    assert UsageEntry.objects.get().usd == Decimal("0.64")


@pytest.mark.parametrize("body, fields", [
    ({"model": "t2v", "input": {"duration": 7}}, ["input.prompt", "input.duration"]),
    ({"model": "t2v", "input": {"prompt": "x", "resolution": "720p", "fps": 30, "aspect_ratio": "4:3"}},
     ["input.resolution", "input.fps", "input.aspect_ratio"]),
    ({"model": "t2v-fast", "input": {"prompt": "x", "duration": 12, "fps": 50}}, ["input.duration"]),
    ({"model": "sora", "input": {"prompt": "x"}}, ["model"]),
    ({"input": {"prompt": "x"}}, ["model"]),
    ({"model": "t2v", "input": "a string"}, ["input"]),
    ({"model": "t2v", "input": {"prompt": "x"}, "project": str(uuid.uuid4())}, ["project"]),
    ({"model": "t2v", "input": {"prompt": "x"}, "webhook_url": "not a url"}, ["webhook_url"]),
])
def test_invalid_create_is_422_naming_each_field_and_nothing_is_written(api, task_queue, body, fields):
    assert_error(api.post("/api/v1/generations/", body, format="json"), 422, "validation_error", *fields)
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0 and task_queue.calls == []


def test_malformed_json_is_400(api, task_queue):
    response = api.post("/api/v1/generations/", "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_unsupported_media_type_is_415(api, task_queue):
    response = api.post("/api/v1/generations/", "model=t2v", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_over_quota_is_403_quota_exceeded_with_the_figures(api, user, task_queue):
    UserQuota.objects.create(user=user, monthly_spend_usd=Decimal("0.40"))
    body = assert_error(api.post("/api/v1/generations/", BODY, format="json"), 403, "quota_exceeded", "limit", "hint")
    assert body["details"]["limit"] == "monthly_spend_usd" and body["details"]["allowed"] == "0.40"
    assert Generation.objects.count() == 0


def test_idempotency_key_replays_and_conflicts(api, task_queue):
    first = api.post("/api/v1/generations/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    replay = api.post("/api/v1/generations/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]
    changed = {**BODY, "input": {**BODY["input"], "duration": 10}}
    body = assert_error(api.post("/api/v1/generations/", changed, format="json", HTTP_IDEMPOTENCY_KEY="order-1"),
                        409, "idempotency_conflict")
    assert body["details"]["generation"] == first.json()["id"]
    assert Generation.objects.count() == 1 and UsageEntry.objects.count() == 1


def test_the_same_idempotency_key_is_independent_per_user(api, other_api, task_queue):
    mine = api.post("/api/v1/generations/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = other_api.post("/api/v1/generations/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


def test_list_filters_and_pages_newest_first(api, user, task_queue):
    project = Project.objects.create(owner=user, name="Westerns")
    ids = []
    for index in range(5):
        body = {**BODY, "input": {"prompt": f"shot {index}"}}
        if index % 2:
            body["project"] = str(project.pk)
        ids.append(api.post("/api/v1/generations/", body, format="json").json()["id"])
    Generation.objects.filter(pk=ids[0]).update(status="failed")
    page = api.get("/api/v1/generations/?page_size=2").json()
    assert [g["id"] for g in page["results"]] == ids[::-1][:2]
    second = api.get(page["next"]).json()
    assert [g["id"] for g in second["results"]] == ids[::-1][2:4]
    assert [g["id"] for g in api.get(f"/api/v1/generations/?project={project.pk}").json()["results"]] == [
        ids[3], ids[1]]
    assert [g["id"] for g in api.get("/api/v1/generations/?status=failed").json()["results"]] == [ids[0]]
    assert len(api.get("/api/v1/generations/?status=pending,failed").json()["results"]) == 5
    assert len(api.get("/api/v1/generations/?model=fal-ai/ltx-2.3/text-to-video").json()["results"]) == 5
    assert api.get("/api/v1/generations/?model=t2v-fast").json()["results"] == []
    assert api.get("/api/v1/generations/?model=fal-ai/ltxv-2/text-to-video").json()["results"] == []  # LTX-2.0
    assert api.get("/api/v1/generations/?created_before=2000-01-01T00:00:00Z").json()["results"] == []


@pytest.mark.parametrize("query, field", [("status=done", "status"), ("model=x", "model"), ("project=1", "project"),
                                          ("created_after=yesterday", "created_after")])
def test_bad_list_filters_are_422_naming_the_parameter(api, query, field):
    assert_error(api.get(f"/api/v1/generations/?{query}"), 422, "validation_error", field)


def test_other_users_generations_are_404_for_every_verb(api, other_api, task_queue):
    generation_id = api.post("/api/v1/generations/", BODY, format="json").json()["id"]
    for method, path in (("get", ""), ("delete", ""), ("post", "cancel/"), ("post", "retry/")):
        assert_error(getattr(other_api, method)(f"/api/v1/generations/{generation_id}/{path}"), 404, "not_found")
    assert other_api.get("/api/v1/generations/").json()["results"] == []
    assert Generation.objects.get(pk=generation_id).status == "pending"


def test_cancel_then_cancel_again_is_409_and_retry_makes_a_new_job(api, task_queue):
    generation_id = api.post("/api/v1/generations/", BODY, format="json").json()["id"]
    canceled = api.post(f"/api/v1/generations/{generation_id}/cancel/")
    assert (canceled.status_code, canceled.json()["status"], canceled.json()["error"]["code"]) == (
        200, "canceled", "canceled")
    assert_error(api.post(f"/api/v1/generations/{generation_id}/cancel/"), 409, "not_cancelable")
    retried = api.post(f"/api/v1/generations/{generation_id}/retry/")
    assert retried.status_code == 201
    assert retried.json()["id"] != generation_id and retried.json()["input"] == canceled.json()["input"]
    assert_error(api.post(f"/api/v1/generations/{retried.json()['id']}/retry/"), 409, "not_retryable")


def test_delete_active_is_409_and_finished_is_204(api, task_queue):
    generation_id = api.post("/api/v1/generations/", BODY, format="json").json()["id"]
    assert_error(api.delete(f"/api/v1/generations/{generation_id}/"), 409, "still_active")
    api.post(f"/api/v1/generations/{generation_id}/cancel/")
    assert api.delete(f"/api/v1/generations/{generation_id}/").status_code == 204
    assert_error(api.get(f"/api/v1/generations/{generation_id}/"), 404, "not_found")


@pytest.mark.django_db(transaction=True)
def test_a_finished_generation_has_a_videofile_with_working_signed_links(api, fal_sim, media_root, task_queue):
    body = {**BODY, "model": "fal-ai/ltx-2/text-to-video"}  # any endpoint: this is about the stored video
    generation_id = api.post("/api/v1/generations/", body, format="json").json()["id"]
    task_queue.run_all()
    track_until(Generation.objects.get(pk=generation_id), "storing")
    task_queue.run_all()
    body = api.get(f"/api/v1/generations/{generation_id}/").json()
    assert body["status"] == "succeeded" and body["finished_at"] and body["completed_at"]
    video = body["video"]
    assert (video["width"], video["height"], video["fps"], video["num_frames"], video["has_audio"]) == (
        120, 66, 25.0, 200, True)
    assert video["content_type"] == "video/mp4" and video["file_name"].endswith(".mp4")
    anonymous = APIClient()
    status, headers, body = fetch(anonymous, video["url"].removeprefix("http://testserver"), Range="bytes=0-9")
    assert (status, len(body)) == (206, 10) and headers["Content-Range"].endswith(f"/{video['file_size']}")
    status, headers, body = fetch(anonymous, video["download_url"].removeprefix("http://testserver"))
    assert (status, len(body)) == (200, video["file_size"]) and headers["Content-Disposition"].startswith("attachment")
    status, headers, body = fetch(anonymous, video["poster_url"].removeprefix("http://testserver"))
    assert (status, headers["Content-Type"], body[:3]) == (200, "image/jpeg", b"\xff\xd8\xff")
    Generation.objects.filter(pk=generation_id).update(is_hidden=True)
    assert anonymous.get(video["url"].removeprefix("http://testserver")).status_code == 404
    assert api.get(f"/api/v1/generations/{generation_id}/").json()["video"] is None


def test_tampered_media_links_are_404(client):
    assert client.get("/media/not-a-token").status_code == 404


# --- projects -----------------------------------------------------------------------------------

def test_project_crud_and_isolation(api, other_api, task_queue):
    created = api.post("/api/v1/projects/", {"name": "Westerns"}, format="json")
    assert created.status_code == 201
    project_id = created.json()["id"]
    assert_error(api.post("/api/v1/projects/", {"name": "Westerns"}, format="json"), 422, "validation_error", "name")
    assert api.patch(f"/api/v1/projects/{project_id}/", {"name": "Noir"}, format="json").json()["name"] == "Noir"
    for method in ("get", "patch", "delete"):
        assert_error(getattr(other_api, method)(f"/api/v1/projects/{project_id}/", {"name": "mine"}, format="json"),
                     404, "not_found")
    generation_id = api.post("/api/v1/generations/", {**BODY, "project": project_id}, format="json").json()["id"]
    assert_error(api.delete(f"/api/v1/projects/{project_id}/"), 409, "project_busy")
    api.post(f"/api/v1/generations/{generation_id}/cancel/")
    assert api.delete(f"/api/v1/projects/{project_id}/").status_code == 204
    assert not Generation.objects.filter(pk=generation_id).exists()
    assert [p["name"] for p in api.get("/api/v1/projects/").json()["results"]] == []


def test_another_users_project_cannot_receive_my_generation(api, other_user, task_queue):
    theirs = Project.objects.create(owner=other_user, name="Theirs")
    assert_error(api.post("/api/v1/generations/", {**BODY, "project": str(theirs.pk)}, format="json"),
                 422, "validation_error", "project")
    assert Generation.objects.count() == 0


# --- throttling and schema ----------------------------------------------------------------------

def test_creating_too_fast_is_429_with_retry_after(api, settings, task_queue):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api": "100/min", "create": "2/min"}}
    statuses = [api.post("/api/v1/generations/", BODY, format="json").status_code for _ in range(2)]
    assert statuses == [201, 201]
    response = api.post("/api/v1/generations/", BODY, format="json")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert Generation.objects.count() == 2
    assert api.get("/api/v1/usage/").status_code == 200  # reads are throttled separately


def test_an_unreachable_redis_lets_calls_through_unthrottled(api, settings, task_queue, caplog):
    # given: throttle counts kept in a Redis nobody answers at (down for maintenance), and a rate of 1
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "1/min", "create": "1/min"}}

    # when: creating and reading more than that
    created = [api.post("/api/v1/generations/", BODY, format="json") for _ in range(2)]
    reads = [api.get(f"/api/v1/generations/{answer.json()['id']}/") for answer in created]

    # then: served, not 500s (nor 429s: nothing could count them), and the outage is in the log
    assert [answer.status_code for answer in created + reads] == [201, 201, 200, 200]
    assert Generation.objects.count() == 2
    assert sum("throttle count for throttle_api_user" in record.getMessage() for record in caplog.records) == 4


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/generations/", "/api/v1/generations/{id}/", "/api/v1/generations/{id}/cancel/",
            "/api/v1/projects/", "/api/v1/keys/", "/api/v1/usage/", "/api/v1/models/", "/api/v1/price/"} <= set(paths)
    assert client.get("/api/docs/").status_code == 200


# --- image-to-video uploads ---------------------------------------------------------------------

def png_upload(size=(64, 36), name="start.png"):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 20)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def test_image_to_video_accepts_a_multipart_upload(api, task_queue, media_root):
    import json

    response = api.post("/api/v1/generations/", {"model": "i2v", "input": json.dumps({"prompt": "make it move"}),
                                                 "image": png_upload()}, format="multipart")
    assert response.status_code == 201, response.json()
    # The start image is stored as its own object; the input shows a short reference, not the bytes.
    assert response.json()["input"]["image_url"] == "studio:start-image"
    assert Generation.objects.get().input["image_url"] == response.json()["input"]["image_url"]
    assert Generation.objects.get().start_image.content_type == "image/png"


def test_an_oversized_upload_is_413_and_a_non_image_is_415(api, settings, task_queue):
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.STUDIO_MAX_IMAGE_BYTES = 100
    body = {"model": "i2v", "input": json.dumps({"prompt": "x"})}
    assert_error(api.post("/api/v1/generations/", {**body, "image": png_upload((400, 400))}, format="multipart"),
                 413, "payload_too_large", "image")
    settings.STUDIO_MAX_IMAGE_BYTES = 10_000_000
    text = SimpleUploadedFile("notes.png", b"this is not a picture", content_type="image/png")
    assert_error(api.post("/api/v1/generations/", {**body, "image": text}, format="multipart"),
                 415, "unsupported_media_type", "image")
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0


def test_image_url_as_a_data_uri_works_without_upload(api, task_queue, media_root):
    import base64

    # a real (decodable) PNG: start images are now checked by decoding, so a bare PNG signature is refused
    data_uri = "data:image/png;base64," + base64.b64encode(png_upload().read()).decode()
    body = {"model": "i2v-fast", "input": {"prompt": "x", "image_url": data_uri}}
    assert api.post("/api/v1/generations/", body, format="json").status_code == 201


# --- hostile input: a clean 4xx, nothing stored --------------------------------------------------

NUL = "must not contain NUL characters (U+0000)"
SURROGATE = "must be valid Unicode text: it holds a lone surrogate (U+D800), which cannot be encoded as UTF-8"


def post_json(client, path: str, text: str, **extra):
    """POST JSON text as it travels: its escapes (\\ud800, \\u0000) become characters only in the server's parser."""
    return client.post(path, text.encode(), content_type="application/json", **extra)


def assert_the_users_pages_still_answer(user, generation_id: str):
    web = Client()
    web.force_login(user)
    for path in ("/api/v1/generations/", f"/api/v1/generations/{generation_id}/", "/",
                 f"/generations/{generation_id}/"):
        assert web.get(path).status_code == 200, path


@pytest.mark.parametrize("text, field, message", [
    (r'{"model": "t2v", "input": {"prompt": "a\ud800b"}}', "input.prompt", SURROGATE),
    (r'{"model": "t2v", "input": {"prompt": "a\u0000b"}}', "input.prompt", NUL),
    (r'{"model": "i2v", "input": {"prompt": "x", "image_url": "https://example.com/\ud800.png"}}', "input.image_url",
     SURROGATE),
    (r'{"model": "t2v", "input": {"prompt": "x", "\ud800": 1}}', "input", "has a field name that " + SURROGATE),
])
def test_text_that_cannot_be_stored_is_422_naming_the_field_before_anything_is_stored(api, user, task_queue, text,
                                                                                       field, message):
    existing = api.post("/api/v1/generations/", BODY, format="json").json()["id"]
    task_queue.calls.clear()
    body = assert_error(post_json(api, "/api/v1/generations/", text), 422, "validation_error", field)
    assert body["details"] == {field: message}
    assert Generation.objects.count() == 1 and UsageEntry.objects.count() == 1 and task_queue.calls == []
    assert_the_users_pages_still_answer(user, existing)


@pytest.mark.parametrize("key, message", [("order\x00one", NUL), ("order\ud800", SURROGATE)])
def test_an_idempotency_key_that_cannot_be_stored_is_422(api, task_queue, key, message):
    body = assert_error(api.post("/api/v1/generations/", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key),
                        422, "validation_error")
    assert body["details"] == {"Idempotency-Key": message}
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0 and task_queue.calls == []


@pytest.mark.parametrize("field", ["prompt", "duration", "resolution", "aspect_ratio", "fps", "generate_audio"])
def test_a_null_ltx_field_is_422_naming_it_not_taken_as_absent(api, task_queue, field):
    body = {"model": "t2v", "input": {"prompt": "x", field: None}}
    response = assert_error(api.post("/api/v1/generations/", body, format="json"), 422, "validation_error")
    assert list(response["details"]) == [f"input.{field}"]
    assert response["details"][f"input.{field}"].startswith("must not be null")
    assert Generation.objects.count() == 0 and UsageEntry.objects.count() == 0 and task_queue.calls == []


@pytest.mark.parametrize("path, text", [
    ("/api/v1/generations/", "[" * 100_000),
    ("/api/v1/generations/", '{"model": "t2v", "input": ' + '{"a":' * 5_000 + "1" + "}" * 5_001),
    ("/api/v1/projects/", '{"name": ' + "[" * 40 + "]" * 40 + "}"),
])
def test_json_nested_too_deeply_is_a_400_parse_error(api, task_queue, path, text):
    body = assert_error(post_json(api, path, text), 400, "parse_error")
    assert body["message"] == "JSON parse error - arrays and objects are nested more than 32 levels deep"
    assert Generation.objects.count() == 0 and Project.objects.count() == 0 and task_queue.calls == []


@pytest.mark.parametrize("format", ["multipart", "form"])
def test_json_text_nested_too_deeply_in_a_form_field_is_422_on_input(api, task_queue, format):
    fields = {"model": "t2v", "input": "[" * 100_000}
    response = (api.post("/api/v1/generations/", fields, format="multipart") if format == "multipart" else
                api.post("/api/v1/generations/", f"model=t2v&input={'%5B' * 5_000}",
                         content_type="application/x-www-form-urlencoded"))
    body = assert_error(response, 422, "validation_error", "input")
    assert "nested more than 32 levels deep" in body["details"]["input"]
    assert Generation.objects.count() == 0 and task_queue.calls == []


def cursor(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("path", ["/api/v1/generations/", "/api/v1/projects/", "/api/v1/webhook-deliveries/",
                                  "/api/v1/webhooks/{endpoint}/deliveries/"])
@pytest.mark.parametrize("forged", ["cD14", cursor("o=1&p=2020-13-45"), cursor("r=x"), "A"])
def test_a_forged_cursor_is_400_invalid_cursor_naming_it_on_every_cursor_paged_list(api, user, task_queue, path,
                                                                                     forged):
    from webhooks.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(owner=user, url="https://example.com/hook", secret="whsec_x")
    api.post("/api/v1/generations/", BODY, format="json")
    body = assert_error(api.get(path.format(endpoint=endpoint.pk), {"cursor": forged}), 400, "invalid_cursor", "cursor")
    assert body["details"]["cursor"] == body["message"]


def test_the_cursors_the_api_hands_out_still_page(api, task_queue):
    ids = [api.post("/api/v1/generations/", BODY, format="json").json()["id"] for _ in range(3)]
    first = api.get("/api/v1/generations/?page_size=2").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [g["id"] for g in first["results"] + second["results"]] == ids[::-1]
    assert [g["id"] for g in back["results"]] == ids[::-1][:2]


def test_a_body_over_the_upload_limit_is_413_payload_too_large(api, settings, task_queue):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = {"model": "t2v", "input": {"prompt": "x" * 2000}}
    for response in (api.post("/api/v1/generations/", big, format="json"),
                     api.post("/api/v1/generations/", {"model": "t2v", "input": json.dumps(big["input"])},
                              format="multipart"),
                     api.post("/api/v1/projects/", {"name": "y" * 2000}, format="json")):
        body = assert_error(response, 413, "payload_too_large")
        assert body["details"] == {"max_bytes": 1000} and "larger than 1,000 bytes" in body["message"]
    assert Generation.objects.count() == 0 and Project.objects.count() == 0 and task_queue.calls == []
