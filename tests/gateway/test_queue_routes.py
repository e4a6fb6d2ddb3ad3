"""The gateway's queue routes through Django's test client: fal's shapes for every state, errors,
isolation between users, and a whole job driven through the simulator."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.keys import api_key_create, api_key_revoke
from generations.models import Generation
from generations.services.tracking import tracker_tick
from generations.transitions import transition
from storage.models import UsageEntry, UserQuota
from tests.conftest import wait_until
from tests.factories import SuperuserFactory
from tests.generations.test_pipeline import make_due, probe
from tests.media_fetch import fetch
from tests.processes import ROOT

pytestmark = pytest.mark.django_db
Status = Generation.Status
T2V = "/fal/fal-ai/ltx-2/text-to-video"


def submit(gw: Client, body: dict | None = None, path: str = T2V, **extra):
    return gw.post(path, json.dumps({"prompt": "a fox in the snow"} if body is None else body),
                   content_type="application/json", **extra)


def submitted(gw: Client, **kwargs) -> Generation:
    response = submit(gw, **kwargs)
    assert response.status_code == 200, response.content
    return Generation.objects.get(pk=response.json()["request_id"])


def move(generation: Generation, status: str, **fields) -> Generation:
    """Put a job in `status` the way the pipeline would leave it (no fal involved)."""
    Generation.objects.filter(pk=generation.pk).update(status=status, **fields)
    return Generation.objects.get(pk=generation.pk)


def run_until_finished(generation: Generation, task_queue) -> Generation:
    """Tick the tracker and run every task it enqueues until the job is finished."""
    def step():
        make_due(generation)
        tracker_tick()
        task_queue.run_all()

    return wait_until(lambda: Generation.objects.filter(pk=generation.pk, status__in=Generation.TERMINAL).first(),
                      step=step, timeout=30, interval=0.1)


def requests_url(generation: Generation, tail: str = "", app: str = "fal-ai/ltx-2") -> str:
    return f"/fal/{app}/requests/{generation.pk}{tail}"


# --- submit ----------------------------------------------------------------------------------------

def test_submit_answers_like_fal_and_the_request_is_a_studio_generation(gw, user, task_queue,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(gw, {"prompt": "a fox", "duration": 8, "resolution": "1440p"})
    assert response.status_code == 200
    body = response.json()
    generation = Generation.objects.get()
    base = f"http://testserver/fal/fal-ai/ltx-2/requests/{generation.pk}"
    assert body == {"status": "IN_QUEUE", "request_id": str(generation.pk), "gateway_request_id": str(generation.pk),
                    "response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel",
                    "queue_position": 0}
    assert response["x-fal-request-id"] == str(generation.pk)
    assert (generation.owner, generation.project.name, generation.model_id) == (
        user, "Inbox", "fal-ai/ltx-2/text-to-video")
    assert generation.input["duration"] == "8" and generation.cost_usd == Decimal("0.96")
    assert task_queue.names() == ["generation_submit_task", "tracker_run_task"]
    assert UsageEntry.objects.get(job=generation.pk).event == "reserve"


@pytest.mark.parametrize("path, model, app", [
    ("/fal/fal-ai/ltxv-2/text-to-video", "fal-ai/ltx-2/text-to-video", "fal-ai/ltxv-2"),
    ("/fal/fal-ai/ltx-2/text-to-video/fast", "fal-ai/ltx-2/text-to-video/fast", "fal-ai/ltx-2"),
])
def test_aliases_and_sub_paths_keep_the_callers_app_in_the_returned_urls(gw, task_queue, path, model, app):
    body = submit(gw, path=path).json()
    generation = Generation.objects.get(pk=body["request_id"])
    assert generation.model_id == model
    assert body["status_url"] == f"http://testserver/fal/{app}/requests/{generation.pk}/status"


def test_base_url_setting_wins_over_the_request_host(gw, settings, task_queue):
    settings.STUDIO_BASE_URL = "https://studio.example.com"
    body = submit(gw).json()
    assert body["response_url"] == f"https://studio.example.com/fal/fal-ai/ltx-2/requests/{body['request_id']}"


def test_behind_a_tls_proxy_the_forwarded_scheme_and_host_are_used(gw, settings, task_queue):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "studio.example.com"]
    body = submit(gw, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "studio.example.com"}).json()
    assert body["status_url"] == f"https://studio.example.com/fal/fal-ai/ltx-2/requests/{body['request_id']}/status"


def test_forwarded_headers_are_trusted_only_when_configured():
    # Settings read the environment at start-up, so look at them in fresh processes.
    script = ("import django; django.setup(); from django.conf import settings; "
              "print(settings.SECURE_PROXY_SSL_HEADER, settings.USE_X_FORWARDED_HOST)")
    seen = []
    for value in ("true", "false"):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "studio.settings", "STUDIO_TRUST_FORWARDED_HEADERS": value}
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env=env)
        seen.append(out.stdout.strip())
    assert seen == ["('HTTP_X_FORWARDED_PROTO', 'https') True", "None False"]


def test_an_unknown_model_is_404_naming_what_is_served(gw, task_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(gw, path="/fal/fal-ai/flux/dev")
    assert response.status_code == 404
    assert "fal-ai/flux/dev" in response.json()["detail"] and "fal-ai/ltx-2/text-to-video" in response.json()["detail"]
    assert not Generation.objects.exists() and task_queue.calls == []


@pytest.mark.parametrize("body, fields", [
    ({"prompt": "x", "duration": 7}, ["duration"]),
    ({"prompt": "", "fps": 30}, ["prompt", "fps"]),
    ({"prompt": "x", "seed": 3}, ["seed"]),
    (["not", "an", "object"], ["input"]),
])
def test_invalid_input_is_fals_422_naming_each_field_and_nothing_is_charged(gw, user, task_queue, body, fields):
    response = submit(gw, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [item["loc"] for item in detail] == [["body", field] for field in fields]
    assert all(item["msg"] and item["type"] == "value_error" for item in detail)
    assert all(field in response.json()["message"] for field in fields)
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []


def test_the_allowed_values_are_named(gw, task_queue):
    detail = submit(gw, {"prompt": "x", "duration": 7}).json()["detail"][0]
    assert "6, 8, 10" in detail["msg"]


def test_malformed_json_is_422(gw, task_queue):
    response = gw.post(T2V, "{nope", content_type="application/json")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "body"]
    assert not Generation.objects.exists()


NUL = "must not contain NUL characters (U+0000)"
SURROGATE = "must be valid Unicode text: it holds a lone surrogate (U+D800), which cannot be encoded as UTF-8"
I2V = "/fal/fal-ai/ltx-2/image-to-video"


@pytest.mark.parametrize("path, text, field, message", [
    (T2V, r'{"prompt": "a\ud800b"}', "prompt", SURROGATE),
    (T2V, r'{"prompt": "a\u0000b"}', "prompt", NUL),
    (I2V, r'{"prompt": "x", "image_url": "data:image/png;base64,\ud800"}', "image_url", SURROGATE),
    (T2V, r'{"prompt": "x", "duration": null}', "duration", "must not be null; leave it out to use the default 6"),
    (T2V, r'{"prompt": "x", "generate_audio": null}', "generate_audio",
     "must not be null; leave it out to use the default true"),
    (I2V, '{"prompt": "x", "image_url": "http://\uff11\uff12\uff17.0.0.1/x.png"}', "image_url",
     "The image URL is not a valid URL: Invalid IDNA hostname: '\uff11\uff12\uff17.0.0.1'."),
    (I2V, '{"prompt": "x", "image_url": "http://xn--/x.png"}', "image_url",
     "The image URL is not a valid URL: Malformed A-label, no Punycode eligible content found."),
    (I2V, '{"prompt": "x", "image_url": "http://[::1/x.png"}', "image_url",
     "The image URL is not a valid URL: Invalid port: ':1'."),
])
def test_input_that_cannot_be_stored_or_sent_is_fals_422_before_anything_is_created(gw, user, task_queue, settings,
                                                                                     path, text, field, message):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []
    response = gw.post(path, text.encode(), content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["detail"] == [{"loc": ["body", field], "msg": message, "type": "value_error"}]
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 5_000 + "1" + "}" * 5_000,
                                  '{"prompt": "x", "duration": ' + "[" * 40 + "]" * 40 + "}"])
def test_json_nested_too_deeply_is_fals_422_on_the_body_through_the_route_and_the_proxy(gw, task_queue, text):
    for response in (gw.post(T2V, text, content_type="application/json"),
                     gw.post("/fal/proxy", text, content_type="application/json",
                             HTTP_X_FAL_TARGET_URL="https://queue.fal.run/fal-ai/ltx-2/text-to-video")):
        assert response.status_code == 422, response.content
        assert response.json()["detail"] == [{"loc": ["body", "body"], "type": "value_error",
                                              "msg": "is not accepted: arrays and objects are nested more than 32 "
                                                     "levels deep"}]
    assert not Generation.objects.exists() and task_queue.calls == []


def test_a_private_webhook_address_is_refused_before_anything_is_created(gw, task_queue):
    response = submit(gw, path=T2V + "?fal_webhook=http://169.254.169.254/latest")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "fal_webhook"]
    assert not Generation.objects.exists() and task_queue.calls == []


def test_the_webhook_url_is_kept_on_the_job(gw, settings, task_queue):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    generation = submitted(gw, path=T2V + "?fal_webhook=http%3A%2F%2F127.0.0.1%3A9%2Fhook%3Fa%3D1")
    assert generation.fal_webhook_url == "http://127.0.0.1:9/hook?a=1" and generation.webhook_url == ""


def test_over_quota_is_403_in_fals_shape_never_429(gw, user, task_queue):
    UserQuota.objects.create(user=user, monthly_spend_usd=Decimal("0.50"))
    response = submit(gw, {"prompt": "x", "duration": 10})
    assert response.status_code == 403
    body = response.json()
    assert body["error_type"] == "quota_exceeded" and "Monthly spend limit reached" in body["detail"]
    assert body["quota"]["limit"] == "monthly_spend_usd"
    assert not Generation.objects.exists() and not UsageEntry.objects.exists()


@pytest.mark.parametrize("header, status", [
    (None, 401), ("Key ", 401), ("Key ltx_wrong", 401), ("Basic dXNlcjpwYXNz", 401),
])
def test_missing_or_bad_credentials_are_401(header, status, task_queue):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = submit(client)
    assert response.status_code == status and response.json()["detail"]
    assert response.json()["message"] == response.json()["detail"]  # what fal's JS client shows
    assert not Generation.objects.exists()


def test_revoked_keys_are_401_and_suspended_accounts_403(user, task_queue):
    key, raw = api_key_create(user=user, name="k")
    client = Client(HTTP_AUTHORIZATION=f"Key {raw}")
    user.is_active = False
    user.save()
    response = submit(client)
    assert response.status_code == 403 and "suspended" in response.json()["detail"]
    user.is_active = True
    user.save()
    api_key_revoke(key)
    assert submit(client).status_code == 401
    assert not Generation.objects.exists()


def test_submitting_too_fast_is_429_with_retry_after_and_creates_nothing(gw, settings, task_queue):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"api": "100/min", "create": "2/min"}}
    assert [submit(gw).status_code for _ in range(2)] == [200, 200]
    response = submit(gw)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response.json()["error_type"] == "rate_limited"
    assert Generation.objects.count() == 2


def test_bearer_works_like_key(user, task_queue):
    raw = api_key_create(user=user, name="k")[1]
    assert submit(Client(HTTP_AUTHORIZATION=f"Bearer {raw}")).status_code == 200


def test_wrong_methods_are_405_with_allow(gw, task_queue):
    response = gw.get(T2V)
    assert response.status_code == 405 and response["Allow"] == "POST"
    generation = submitted(gw)
    assert gw.post(requests_url(generation, "/status")).status_code == 405
    assert gw.get(requests_url(generation, "/cancel")).status_code == 405


# --- status ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, queue_position", [
    (Status.PENDING, None), (Status.HELD, None), (Status.SUBMITTING, None), (Status.QUEUED, 3)])
def test_every_waiting_state_is_in_queue_with_a_position(gw, task_queue, status, queue_position):
    generation = move(submitted(gw), status, queue_position=queue_position)
    response = gw.get(requests_url(generation, "/status"))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "IN_QUEUE" and body["queue_position"] == (queue_position or 0)
    assert "logs" not in body and body["status_url"].endswith(f"/requests/{generation.pk}/status")


LOGS = [{"message": "Generating", "level": "INFO", "source": "USER", "timestamp": "2026-11-25T10:00:00Z"}]


@pytest.mark.parametrize("query, with_logs", [
    ("", False), ("?logs=1", True), ("?logs=true", True), ("?logs=0", False), ("?logs=false", False)])
def test_in_progress_always_has_the_logs_key_and_logs_only_when_asked(gw, task_queue, query, with_logs):
    generation = move(submitted(gw), Status.RUNNING, logs=LOGS)
    response = gw.get(requests_url(generation, "/status") + query)
    assert response.status_code == 202
    assert response.json()["status"] == "IN_PROGRESS"
    assert response.json()["logs"] == (LOGS if with_logs else None)


def test_storing_is_still_in_progress(gw, task_queue):
    generation = move(submitted(gw), Status.STORING)
    assert gw.get(requests_url(generation, "/status")).json()["status"] == "IN_PROGRESS"


def test_completed_is_200_with_metrics_and_failures_carry_the_error(gw, task_queue):
    now = timezone.now()
    done = move(submitted(gw), Status.SUCCEEDED, started_at=now - timedelta(seconds=12.5), completed_at=now)
    response = gw.get(requests_url(done, "/status?logs=1"))
    assert response.status_code == 200
    assert response.json()["metrics"] == {"inference_time": 12.5} and response.json()["logs"] == []
    assert "error" not in response.json()
    measured_by_fal = move(submitted(gw), Status.SUCCEEDED, started_at=now - timedelta(seconds=12.5), completed_at=now,
                           inference_seconds=3.25)
    assert gw.get(requests_url(measured_by_fal, "/status")).json()["metrics"] == {"inference_time": 3.25}
    failed = move(submitted(gw), Status.FAILED, error_code="content_policy_violation", error_message="not allowed")
    body = gw.get(requests_url(failed, "/status")).json()
    assert (body["status"], body["error"], body["error_type"]) == (
        "COMPLETED", "not allowed", "content_policy_violation")
    assert body["metrics"] == {"inference_time": None} and body["logs"] is None


def test_the_full_model_id_before_requests_is_tolerated(gw, task_queue):
    generation = submitted(gw)
    response = gw.get(requests_url(generation, "/status", app="fal-ai/ltx-2/text-to-video"))
    assert response.status_code == 202
    assert response.json()["status_url"].startswith("http://testserver/fal/fal-ai/ltx-2/requests/")


# --- result ----------------------------------------------------------------------------------------

def test_result_before_completion_is_a_clear_400(gw, task_queue):
    generation = submitted(gw)
    response = gw.get(requests_url(generation))
    assert response.status_code == 400 and response.json()["detail"] == "Request is still in progress"
    assert response["x-fal-request-id"] == str(generation.pk)


@pytest.mark.parametrize("code, message, status", [
    ("rejected", "prompt too long", 422), ("content_policy_violation", "flagged", 422),
    ("lost_upstream", "fal no longer has it", 500), ("submit_unknown", "unknown", 500)])
def test_failed_results_answer_like_fal(gw, task_queue, code, message, status):
    generation = move(submitted(gw), Status.FAILED, error_code=code, error_message=message)
    response = gw.get(requests_url(generation))
    assert response.status_code == status
    if status == 422:
        assert response.json() == {"detail": [{"loc": ["body"], "msg": message, "type": code}]}
    else:
        assert response.json() == {"detail": message, "error_type": code}
    assert response["x-fal-request-id"] == str(generation.pk)


# --- cancel ----------------------------------------------------------------------------------------

def test_cancel_is_202_then_400_already_completed_and_404_for_unknown_ids(gw, user, task_queue):
    generation = submitted(gw)
    response = gw.put(requests_url(generation, "/cancel"))
    assert (response.status_code, response.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    release = UsageEntry.objects.get(job=generation.pk, event="release")
    assert release.usd == -generation.cost_usd
    response = gw.put(requests_url(generation, "/cancel"))
    assert (response.status_code, response.json()) == (400, {"status": "ALREADY_COMPLETED"})
    unknown = uuid.uuid4()
    response = gw.put(f"/fal/fal-ai/ltx-2/requests/{unknown}/cancel")
    assert (response.status_code, response.json()) == (404, {"status": "NOT_FOUND"})
    assert response["x-fal-request-id"] == str(unknown)
    status = gw.get(requests_url(generation, "/status")).json()
    assert (status["status"], status["error_type"]) == ("COMPLETED", "canceled")
    assert gw.get(requests_url(generation)).status_code == 400


# --- isolation -------------------------------------------------------------------------------------

def test_another_users_requests_are_404_on_every_route_and_stay_untouched(gw, other_gw, task_queue):
    generation = move(submitted(gw), Status.RUNNING)
    for method, tail in (("get", "/status"), ("get", "/status/stream"), ("get", ""), ("put", "/cancel")):
        response = getattr(other_gw, method)(requests_url(generation, tail))
        assert response.status_code == 404, tail
    assert Generation.objects.get(pk=generation.pk).status == Status.RUNNING
    assert gw.get(requests_url(generation, "/status")).status_code == 202


@pytest.mark.parametrize("request_id", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_request_ids_are_404(gw, request_id):
    response = gw.get(f"/fal/fal-ai/ltx-2/requests/{request_id}/status")
    assert response.status_code == 404 and request_id in response.json()["detail"]


# --- status stream ---------------------------------------------------------------------------------

def read_events(response, limit: int = 50) -> list[str]:
    """The stream's lines up to its end (a stream that never ends fails the test by timeout)."""
    chunks = []
    for chunk in response.streaming_content:
        chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)
        assert len(chunks) < limit, chunks
    return chunks


@pytest.mark.django_db(transaction=True)
def test_the_stream_sends_each_change_keeps_alive_and_ends_only_after_completed(gw, settings, task_queue):
    settings.STUDIO_SSE_KEEPALIVE_SECONDS = 0.3
    generation = submitted(gw)

    def pipeline():
        try:
            time.sleep(0.8)
            transition(generation.pk, from_=[Status.PENDING], to=Status.SUBMITTING)
            transition(generation.pk, from_=[Status.SUBMITTING], to=Status.RUNNING, logs=LOGS)
            time.sleep(0.5)
            transition(generation.pk, from_=[Status.RUNNING], to=Status.FAILED, error_code="rejected",
                       error_message="no")
        finally:
            connection.close()

    worker = threading.Thread(target=pipeline)
    worker.start()
    response = gw.get(requests_url(generation, "/status/stream?logs=1"))
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    chunks = read_events(response)
    worker.join()
    data = [json.loads(chunk.removeprefix("data: ")) for chunk in chunks if chunk.startswith("data: ")]
    assert [event["status"] for event in data] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert data[1]["logs"] == LOGS and data[2]["error_type"] == "rejected"
    assert data[2]["logs"] == []  # each entry once per stream: fal's JS client appends every event's logs
    assert ": keep-alive\n\n" in chunks[:chunks.index(next(c for c in chunks if "IN_PROGRESS" in c))]
    assert chunks[-1].startswith("data: ") and "COMPLETED" in chunks[-1]


def test_a_finished_request_streams_one_event_and_closes(gw, task_queue):
    generation = move(submitted(gw), Status.CANCELED, error_code="canceled", error_message="canceled by the user")
    chunks = read_events(gw.get(requests_url(generation, "/status/stream")))
    assert len(chunks) == 1 and json.loads(chunks[0].removeprefix("data: "))["status"] == "COMPLETED"


# --- a whole job -----------------------------------------------------------------------------------

def test_a_job_through_the_simulator_ends_with_the_studios_stored_copy(gw, fal_sim, media_root, task_queue):
    generation = submitted(gw, body={"prompt": "a fox", "duration": 6, "fps": 25})
    run_until_finished(generation, task_queue)
    status = gw.get(requests_url(generation, "/status?logs=true"))
    assert status.status_code == 200 and status.json()["status"] == "COMPLETED"
    assert status.json()["metrics"]["inference_time"] > 0 and status.json()["logs"]
    response = gw.get(requests_url(generation))
    assert response.status_code == 200 and response["x-fal-request-id"] == str(generation.pk)
    video = response.json()["video"]
    generation.refresh_from_db()
    stored = generation.video
    assert (video["content_type"], video["file_size"], video["num_frames"]) == ("video/mp4", stored.file_size, 150)
    assert probe(stored.file.key)[:2] == (video["width"], video["height"])
    status_code, _, body = fetch(Client(), video["url"].removeprefix("http://testserver"))
    assert (status_code, len(body)) == (200, video["file_size"])
    assert fal_sim.stats()["submits"] == 1
    Generation.objects.filter(pk=generation.pk).update(is_hidden=True)
    hidden = gw.get(requests_url(generation))
    assert hidden.status_code == 410 and "hidden" in hidden.json()["detail"]
    assert Client().get(video["url"].removeprefix("http://testserver")).status_code == 404


def test_unrouted_gateway_paths_answer_in_fals_shape(gw):
    response = gw.get("/fal/")
    assert response.status_code == 404 and response.json() == {"detail": "No such resource."}


# --- moderation and operations reach the gateway --------------------------------------------------

def test_a_blocklisted_prompt_is_fals_422_on_prompt_and_nothing_is_charged(gw, db, task_queue):
    from moderation.models import BlockedTerm
    from moderation.services import blocked_term_save

    admin = SuperuserFactory(username="root", password="root-password")
    blocked_term_save(BlockedTerm(term="forbidden thing"), actor=admin, reason="test")
    response = submit(gw, {"prompt": "A Forbidden Thing at dawn"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []


def test_while_the_provider_is_paused_submits_are_held_and_in_queue(gw, db, task_queue,
                                                                    django_capture_on_commit_callbacks):
    from moderation.services import provider_pause

    admin = SuperuserFactory(username="root", password="root-password")
    provider_pause(actor=admin, reason="fal incident")
    with django_capture_on_commit_callbacks(execute=True):
        body = submit(gw).json()
    generation = Generation.objects.get(pk=body["request_id"])
    assert generation.status == Status.HELD and body["status"] == "IN_QUEUE"
    assert "generation_submit_task" not in task_queue.names()
    assert gw.get(requests_url(generation, "/status")).json()["status"] == "IN_QUEUE"
