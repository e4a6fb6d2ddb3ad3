"""falsim: fal's queue protocol, storage upload, CDN serving, webhooks and faults.

Every test talks real HTTP to a started FalSimulator (httpx, and fal's official
fal_client for the end-to-end flows). No database, no Django.
"""

import base64
import hashlib
import io
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import fal_client
import fal_client.client
import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from falsim import FalSimulator
from falsim.render import output_size
from tests.conftest import wait_until

KEY = "falsim-id:falsim-secret"  # the "Key id:secret" form, compared as a whole
T2V = "fal-ai/ltx-2/text-to-video"
RUN = 0.2
SCALE = 16


@pytest.fixture(scope="module")
def sim():
    with FalSimulator(key=KEY, runners=4, run_seconds=RUN, scale=SCALE, keepalive_interval=0.1,
                      webhook_backoff=0.05) as simulator:
        yield simulator


def make_client(**kwargs):
    return httpx.Client(headers={"Authorization": f"Key {KEY}"}, timeout=10, trust_env=False, **kwargs)


@pytest.fixture(scope="module")
def client():
    with make_client() as c:
        yield c


def submit(client, sim, prompt="A calm lake at sunrise", model=T2V, params=None, **inputs):
    response = client.post(f"{sim.url}/{model}", json={"prompt": prompt, **inputs}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(client, status_url, want="COMPLETED", timeout=10.0, **params):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url, params=params)
        if response.status_code in (200, 202) and response.json()["status"] == want:
            return response
        time.sleep(0.02)
    raise AssertionError(f"{status_url} never reached {want}")


def record(sim, request_id):
    return next(r for r in sim.requests() if r["request_id"] == request_id)


# --- submit ------------------------------------------------------------------------------------


def test_submit_returns_fal_fields(sim, client):
    response = client.post(f"{sim.url}/{T2V}", json={"prompt": "A calm lake", "duration": "6"})
    assert response.status_code == 200
    body = response.json()
    request_id = body["request_id"]
    assert str(uuid.UUID(request_id)) == request_id
    root = f"{sim.url}/fal-ai/ltx-2/requests/{request_id}"
    assert body == {"status": "IN_QUEUE", "request_id": request_id, "response_url": root,
                    "status_url": root + "/status", "cancel_url": root + "/cancel",
                    "queue_position": body["queue_position"]}
    assert isinstance(body["queue_position"], int) and body["queue_position"] >= 0
    assert response.headers["x-fal-request-id"] == request_id
    assert response.headers["content-type"] == "application/json"
    assert record(sim, request_id)["input"] == {"prompt": "A calm lake", "duration": "6"}


@pytest.mark.parametrize("model, app", [
    ("fal-ai/ltx-2/text-to-video/fast", "fal-ai/ltx-2"),
    ("fal-ai/ltxv-2/text-to-video", "fal-ai/ltxv-2"),
])
def test_submit_urls_use_owner_and_app_only(sim, client, model, app):
    body = submit(client, sim, model=model)
    assert body["status_url"] == f"{sim.url}/{app}/requests/{body['request_id']}/status"
    assert client.get(body["status_url"]).status_code in (200, 202)


def test_urls_are_built_from_the_host_header(sim, client):
    response = client.post(f"{sim.url}/{T2V}", json={"prompt": "x"}, headers={"Host": "sim.example:9999"})
    assert response.json()["status_url"].startswith("http://sim.example:9999/fal-ai/ltx-2/requests/")


def test_unknown_model_is_404(sim, client):
    response = client.post(f"{sim.url}/fal-ai/flux/dev", json={"prompt": "x"})
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


@pytest.mark.parametrize("model, body, field", [
    (T2V, {"duration": "6"}, "prompt"),
    (T2V, {"prompt": 42}, "prompt"),
    (T2V, {"prompt": "x" * 2501}, "prompt"),
    (T2V, {"prompt": "x", "duration": "7"}, "duration"),
    (T2V, {"prompt": "x", "duration": 12}, "duration"),  # 12 s is Fast-only
    (T2V, {"prompt": "x", "resolution": "720p"}, "resolution"),
    (T2V, {"prompt": "x", "fps": 30}, "fps"),
    (T2V, {"prompt": "x", "aspect_ratio": "9:16"}, "aspect_ratio"),
    (T2V, {"prompt": "x", "generate_audio": "maybe"}, "generate_audio"),
    ("fal-ai/ltx-2/text-to-video/fast", {"prompt": "x", "duration": "12", "fps": "50"}, "fps"),
    ("fal-ai/ltx-2/text-to-video/fast", {"prompt": "x", "duration": 14, "resolution": "1440p"}, "resolution"),
    ("fal-ai/ltx-2/text-to-video/fast", {"prompt": "x", "duration": 13}, "duration"),
    ("fal-ai/ltx-2/image-to-video", {"prompt": "x"}, "image_url"),
    ("fal-ai/ltx-2/image-to-video", {"prompt": "x", "image_url": "not a url"}, "image_url"),
])
def test_invalid_input_is_422_naming_the_field(sim, client, model, body, field):
    before = len(sim.requests())
    response = client.post(f"{sim.url}/{model}", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert ["body", field] in [entry["loc"] for entry in detail]
    assert all(entry["msg"] and entry["type"] for entry in detail)
    assert len(sim.requests()) == before  # never enqueued


@pytest.mark.parametrize("model, body", [
    (T2V, {"prompt": "x", "duration": 10, "fps": 50, "resolution": "2160p", "generate_audio": False}),
    (T2V, {"prompt": "x" * 2500, "duration": "8", "fps": "25", "aspect_ratio": "16:9"}),
    ("fal-ai/ltx-2/text-to-video/fast", {"prompt": "x", "duration": "20", "fps": 25, "resolution": "1080p"}),
    ("fal-ai/ltx-2/image-to-video", {"prompt": "x", "image_url": "data:image/png;base64,iVBORw0KGgo="}),
    ("fal-ai/ltx-2/image-to-video/fast", {"prompt": "x", "image_url": "https://example.com/a.png"}),
    ("fal-ai/ltxv-2/image-to-video", {"prompt": "x", "image_url": "http://127.0.0.1:1/a.jpg"}),
])
def test_valid_inputs_are_accepted(sim, client, model, body):
    response = client.post(f"{sim.url}/{model}", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("raw, detail_type", [(b"{not json", "json_invalid"), (b"[1, 2]", "model_attributes_type")])
def test_malformed_body_is_422(sim, client, raw, detail_type):
    response = client.post(f"{sim.url}/{T2V}", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == detail_type


def test_unknown_path_is_404_json(sim, client):
    response = client.get(f"{sim.url}/nothing/here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


# --- auth ----------------------------------------------------------------------------------------


def test_auth_is_required_on_queue_and_storage_calls(sim, client):
    job = submit(client, sim)
    calls = [
        ("POST", f"{sim.url}/{T2V}", {"prompt": "x"}),
        ("GET", job["status_url"], None),
        ("GET", job["response_url"], None),
        ("PUT", job["cancel_url"], None),
        ("POST", f"{sim.url}/storage/upload/initiate?storage_type=fal-cdn-v3",
         {"file_name": "a.png", "content_type": "image/png"}),
        ("POST", f"{sim.url}/storage/auth/token?storage_type=fal-cdn-v3", {}),
    ]
    with httpx.Client(trust_env=False) as anonymous:
        for method, url, body in calls:
            for headers in ({}, {"Authorization": "Key wrong"}, {"Authorization": "Key falsim-id"},
                            {"Authorization": f"Bearer {KEY}"}):
                response = anonymous.request(method, url, json=body, headers=headers)
                assert response.status_code == 401, (method, url, headers)
                assert isinstance(response.json()["detail"], str)
    assert record(sim, job["request_id"])["canceled"] is False


# --- status, logs, result ------------------------------------------------------------------------


def test_status_202_until_completed_then_200_with_logs_and_metrics(sim, client):
    job = submit(client, sim, duration="8", fps="50")
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.get(job["status_url"], params={"logs": "1"})
        body = response.json()
        seen.append((response.status_code, body["status"]))
        assert response.headers["x-fal-request-id"] == job["request_id"]
        for key in ("request_id", "response_url", "status_url", "cancel_url"):
            assert body[key] == job[key]
        if body["status"] == "IN_QUEUE":
            assert isinstance(body["queue_position"], int)
        if body["status"] == "IN_PROGRESS":
            assert isinstance(body["logs"], list)
        if body["status"] == "COMPLETED":
            break
        time.sleep(0.02)
    assert seen[-1] == (200, "COMPLETED")
    assert all(code == 202 for code, status in seen[:-1])
    assert (202, "IN_PROGRESS") in seen
    assert body["metrics"]["inference_time"] >= RUN - 0.01
    assert "error" not in body
    messages = [entry["message"] for entry in body["logs"]]
    for expected in ("Generating frames 20%", "Generating frames 40%", "Generating frames 100%", "Encoding video"):
        assert expected in messages
    entry = body["logs"][0]
    assert set(entry) == {"message", "level", "source", "timestamp"}
    assert entry["level"] == "INFO" and entry["source"] == "USER"
    assert entry["timestamp"].endswith("Z") and "T" in entry["timestamp"]

    for flag, logs_expected in (("0", False), ("false", False), ("true", True), (None, False)):
        body = client.get(job["status_url"], params={"logs": flag} if flag else None).json()
        assert (body["logs"] is not None) is logs_expected


def test_result_body_header_and_video_file(sim, client):
    job = submit(client, sim, duration=8, fps=50, generate_audio=False, resolution="1440p")
    wait_status(client, job["status_url"])
    response = client.get(job["response_url"])
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"] == job["request_id"]
    video = response.json()["video"]
    width, height = output_size(2560, 1440, SCALE)
    assert {k: video[k] for k in ("content_type", "width", "height", "fps", "duration", "num_frames")} == {
        "content_type": "video/mp4", "width": width, "height": height, "fps": 50.0, "duration": 8.0, "num_frames": 400}
    assert video["url"].startswith(sim.url + "/files/") and video["url"].endswith(video["file_name"])

    with httpx.Client(trust_env=False) as anonymous:  # the CDN needs no auth
        file = anonymous.get(video["url"])
    assert file.status_code == 200
    assert file.headers["content-type"] == "video/mp4"
    assert file.headers["accept-ranges"] == "bytes"
    assert int(file.headers["content-length"]) == len(file.content) == video["file_size"]
    with av.open(io.BytesIO(file.content)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)
        assert stream.frames == 400 and float(stream.average_rate) == 50
        assert len(container.streams.audio) == 0


def test_result_before_completion_is_400(sim, client):
    job = submit(client, sim, prompt="[sim:slow] a slow one")
    response = client.get(job["response_url"])
    assert response.status_code == 400
    assert response.json() == {"detail": "Request is still in progress"}
    client.put(job["cancel_url"])


def test_full_model_id_is_accepted_before_requests(sim, client):
    job = submit(client, sim)
    wait_status(client, job["status_url"])
    base = f"{sim.url}/{T2V}/requests/{job['request_id']}"
    assert client.get(base + "/status").json()["status"] == "COMPLETED"
    assert client.get(base).json()["video"]["num_frames"] == 150


def test_unknown_request_and_unknown_app(sim, client):
    unknown = str(uuid.uuid4())
    assert client.get(f"{sim.url}/fal-ai/ltx-2/requests/{unknown}/status").status_code == 404
    assert client.get(f"{sim.url}/fal-ai/ltx-2/requests/{unknown}").status_code == 404
    assert client.get(f"{sim.url}/fal-ai/ltx-2/requests/{unknown}/status/stream").status_code == 404
    job = submit(client, sim)
    response = client.get(f"{sim.url}/fal-ai/flux/requests/{job['request_id']}/status")
    assert response.status_code == 404


def test_queue_positions_with_one_runner(client):
    with FalSimulator(key=KEY, runners=1, run_seconds=0.3, scale=SCALE) as sim:
        first = submit(client, sim, prompt="[sim:slow] first")
        wait_status(client, first["status_url"], "IN_PROGRESS")
        second = submit(client, sim, prompt="second")
        third = submit(client, sim, prompt="third")
        assert (second["queue_position"], third["queue_position"]) == (0, 1)
        responses = [client.get(job["status_url"]) for job in (first, second, third)]
        assert [r.status_code for r in responses] == [202, 202, 202]
        assert [r.json()["status"] for r in responses] == ["IN_PROGRESS", "IN_QUEUE", "IN_QUEUE"]
        assert [r.json().get("queue_position") for r in responses] == [None, 0, 1]
        assert responses[0].json()["logs"] is None
        stats = sim.stats()
        assert (stats["in_queue"], stats["in_progress"]) == (2, 1)
        wait_status(client, second["status_url"], "IN_PROGRESS")
        assert client.get(third["status_url"]).json()["queue_position"] == 0
        wait_status(client, third["status_url"])
        records = {r["request_id"]: r for r in sim.requests()}
        a, b, c = (records[j["request_id"]] for j in (first, second, third))
        # FIFO, one at a time, and each ran at least run_seconds (3x for [sim:slow]).
        assert a["completed_at"] <= b["started_at"] and b["completed_at"] <= c["started_at"]
        assert a["completed_at"] - a["started_at"] >= 0.9 - 0.01
        assert c["completed_at"] - c["started_at"] >= 0.3 - 0.01
        assert sim.stats()["completed"] == 3


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_in_queue_in_progress_completed_and_unknown(client):
    with FalSimulator(key=KEY, runners=1, run_seconds=0.3, scale=SCALE) as sim:
        running = submit(client, sim, prompt="[sim:slow] running")
        wait_status(client, running["status_url"], "IN_PROGRESS")
        queued = submit(client, sim, prompt="queued")

        response = client.put(queued["cancel_url"])
        assert response.status_code == 202
        assert response.json() == {"status": "CANCELLATION_REQUESTED"}
        status = client.get(queued["status_url"])
        assert status.status_code == 200
        assert status.json()["status"] == "COMPLETED"
        assert status.json()["error"] == "Request was cancelled"
        assert status.json()["error_type"]
        result = client.get(queued["response_url"])
        assert result.status_code == 400
        assert result.json() == {"detail": "Request was cancelled"}

        started = time.monotonic()
        response = client.put(running["cancel_url"])
        assert (response.status_code, response.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        body = wait_status(client, running["status_url"]).json()
        assert time.monotonic() - started < 0.6  # stopped well before its 0.9 s run
        assert body["error"] == "Request was cancelled"
        assert client.get(running["response_url"]).status_code == 400

        response = client.put(running["cancel_url"])
        assert (response.status_code, response.json()) == (400, {"status": "ALREADY_COMPLETED"})
        response = client.put(f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}/cancel")
        assert (response.status_code, response.json()) == (404, {"status": "NOT_FOUND"})

        time.sleep(0.4)  # the runner is free again; the cancelled request must never start
        records = {r["request_id"]: r for r in sim.requests()}
        assert records[queued["request_id"]]["started_at"] is None
        assert records[queued["request_id"]]["canceled"] is True
        assert records[running["request_id"]]["canceled"] is True
        assert sim.stats()["cancel_calls"] == 4
        assert sim.stats()["renders"] == 0


# --- SSE -----------------------------------------------------------------------------------------


def read_events(client, url, **params):
    events, comments = [], []
    with client.stream("GET", url, params=params, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
            elif line.startswith(":"):
                comments.append(line)
    return events, comments


def test_status_stream_ends_with_completed(sim, client):
    job = submit(client, sim, prompt="[sim:slow] streamed")
    events, comments = read_events(client, job["status_url"] + "/stream", logs="1")
    statuses = [event["status"] for event in events]
    assert statuses[-1] == "COMPLETED"
    assert statuses.count("COMPLETED") == 1
    assert set(statuses) <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}
    assert "IN_PROGRESS" in statuses
    assert events[-1]["request_id"] == job["request_id"]
    assert "Generating frames 100%" in [log["message"] for log in events[-1]["logs"]]
    # Each event is a change: progress logs arrive as separate events.
    assert len(events) >= 5
    # keepalive_interval is 0.1 s here and the run lasts 0.6 s with idle gaps between log lines.
    assert ": keepalive" in comments


def test_status_stream_of_completed_request_sends_one_event(sim, client):
    job = submit(client, sim)
    wait_status(client, job["status_url"])
    events, _ = read_events(client, job["status_url"] + "/stream")
    assert [event["status"] for event in events] == ["COMPLETED"]


# --- webhooks ------------------------------------------------------------------------------------


class WebhookReceiver:
    """A tiny HTTP server that records POSTs; ``fail_first`` answers 500 that many times."""

    def __init__(self, fail_first=0):
        self.received = []
        self.fail_first = fail_first
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                status = 500 if receiver.calls <= receiver.fail_first else 200
                if status == 200:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def verify_signature(jwks, headers, body):
    headers = {k.lower(): v for k, v in headers.items()}
    timestamp = headers["x-fal-webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) <= 300
    message = "\n".join([headers["x-fal-webhook-request-id"], headers["x-fal-webhook-user-id"], timestamp,
                         hashlib.sha256(body).hexdigest()]).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    assert len(signature) == 64
    for key in jwks["keys"]:
        assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def test_webhook_delivered_signed_and_verifiable(sim, client, receiver):
    job = submit(client, sim, params={"fal_webhook": receiver.url})
    assert record(sim, job["request_id"])["webhook_url"] == receiver.url
    wait_until(lambda: receiver.received)
    headers, body = receiver.received[0]
    payload = json.loads(body)
    assert payload["request_id"] == payload["gateway_request_id"] == job["request_id"]
    assert payload["status"] == "OK"
    assert payload["payload"] == client.get(job["response_url"]).json()
    assert headers["X-Fal-Webhook-Request-Id"] == job["request_id"]
    assert headers["Content-Type"] == "application/json"

    jwks_response = httpx.get(f"{sim.url}/.well-known/jwks.json", trust_env=False)
    assert jwks_response.status_code == 200
    jwks = jwks_response.json()
    assert "=" not in jwks["keys"][0]["x"] and jwks["keys"][0]["kid"]
    assert verify_signature(jwks, headers, body)
    assert not verify_signature(jwks, headers, body + b" ")  # a tampered body fails
    wait_until(lambda: record(sim, job["request_id"])["webhook_delivered_at"])


def test_webhook_error_body_for_failed_request(sim, client, receiver):
    job = submit(client, sim, prompt="[sim:422] flagged", params={"fal_webhook": receiver.url})
    wait_until(lambda: receiver.received)
    headers, body = receiver.received[0]
    payload = json.loads(body)
    assert payload["status"] == "ERROR"
    assert payload["error"] == "Invalid status code: 422"
    assert payload["request_id"] == job["request_id"]
    assert payload["payload"]["detail"][0]["loc"] == ["body", "prompt"]
    assert verify_signature(sim.jwks(), headers, body)


def test_webhook_retried_after_failures(sim, client):
    server = WebhookReceiver(fail_first=2)
    try:
        job = submit(client, sim, params={"fal_webhook": server.url})
        wait_until(lambda: server.received)
        assert server.calls == 3
        assert json.loads(server.received[0][1])["request_id"] == job["request_id"]
        assert verify_signature(sim.jwks(), *server.received[0])
        wait_until(lambda: record(sim, job["request_id"])["webhook_attempts"] == 3)
    finally:
        server.close()


def test_webhook_gives_up_after_bounded_attempts(client):
    with FalSimulator(key=KEY, runners=1, run_seconds=0.05, scale=SCALE, webhook_max_attempts=3,
                      webhook_backoff=0.02) as sim:
        dead = WebhookReceiver(fail_first=1000)
        try:
            job = submit(client, sim, params={"fal_webhook": dead.url})
            wait_until(lambda: sim.stats()["webhooks_failed"] == 1)
            assert dead.calls == 3
            assert record(sim, job["request_id"])["webhook_delivered_at"] is None
        finally:
            dead.close()


# --- storage and CDN -----------------------------------------------------------------------------


def test_storage_upload_flow_and_range_requests(sim, client):
    data = bytes(range(256)) * 40  # 10240 bytes
    response = client.post(f"{sim.url}/storage/upload/initiate", params={"storage_type": "fal-cdn-v3"},
                           json={"file_name": "frame one.png", "content_type": "image/png"})
    assert response.status_code == 200
    body = response.json()
    upload_url, file_url = body["upload_url"], body["file_url"]
    assert file_url.startswith(sim.url + "/files/")

    with httpx.Client(trust_env=False) as anonymous:
        assert anonymous.get(file_url).status_code == 404  # nothing stored yet
        bad = upload_url.replace("signature=", "signature=0")
        assert anonymous.put(bad, content=data, headers={"Content-Type": "image/png"}).status_code == 403
        put = anonymous.put(upload_url, content=data, headers={"Content-Type": "image/png"})
        assert put.status_code == 200

        full = anonymous.get(file_url)
        assert full.status_code == 200
        assert full.content == data
        assert full.headers["content-type"] == "image/png"
        assert full.headers["accept-ranges"] == "bytes"
        assert full.headers["content-length"] == str(len(data))

        cases = [("bytes=10-19", 10, 19), ("bytes=-5", len(data) - 5, len(data) - 1),
                 ("bytes=10000-", 10000, len(data) - 1), ("bytes=10230-99999", 10230, len(data) - 1),
                 ("bytes=0-0", 0, 0)]
        for header, start, end in cases:
            part = anonymous.get(file_url, headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == data[start:end + 1]
            assert part.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
            assert part.headers["content-length"] == str(end - start + 1)

        for header in ("bytes=10240-", "bytes=99999-100000", "bytes=-0"):
            part = anonymous.get(file_url, headers={"Range": header})
            assert part.status_code == 416, header
            assert part.headers["content-range"] == f"bytes */{len(data)}"

        head = anonymous.head(file_url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))
        head_range = anonymous.head(file_url, headers={"Range": "bytes=-5"})
        assert head_range.status_code == 206 and head_range.headers["content-length"] == "5"

        # Keep-alive still works after HEAD and ranged responses on the same connection.
        assert anonymous.get(file_url).content == data


def test_storage_types_and_bad_requests(sim, client):
    ok = client.post(f"{sim.url}/storage/upload/initiate?storage_type=gcs",
                     json={"file_name": "a.jpg", "content_type": "image/jpeg"})
    assert ok.status_code == 200 and set(ok.json()) == {"upload_url", "file_url"}
    bad_type = client.post(f"{sim.url}/storage/upload/initiate?storage_type=s3", json={"file_name": "a"})
    assert bad_type.status_code == 400
    bad_json = client.post(f"{sim.url}/storage/upload/initiate?storage_type=gcs", content=b"{",
                           headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 422
    unknown = httpx.put(f"{sim.url}/storage/upload/put/deadbeef?signature=x", content=b"x", trust_env=False)
    assert unknown.status_code == 404


def test_fal_client_upload_flows(sim, monkeypatch):
    monkeypatch.setattr(fal_client.client, "REST_URL", sim.url)
    monkeypatch.setattr(fal_client.client, "CDN_URL", sim.url)
    fal = fal_client.SyncClient(key=KEY)
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    # fal's default path: CDN token from rest, then POST /files/upload with the Bearer token.
    v3_url = fal.upload(data, "image/png", file_name="in.png", repository="fal_v3", fallback_repository=[])
    # The storage-backed fallback path: initiate (gcs) + PUT to the signed URL.
    gcs_url = fal.upload(data, "image/png", file_name="in2.png", repository="fal", fallback_repository=[])
    for url in (v3_url, gcs_url):
        assert url.startswith(sim.url + "/files/")
        response = httpx.get(url, trust_env=False)
        assert response.content == data and response.headers["content-type"] == "image/png"
    assert httpx.post(f"{sim.url}/files/upload", content=b"x", headers={"Authorization": "Bearer nope"},
                      trust_env=False).status_code == 401


# --- fal_client end to end -----------------------------------------------------------------------


def test_fal_client_submit_status_result(sim, monkeypatch):
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", sim.url + "/")
    fal = fal_client.SyncClient(key=KEY)
    handle = fal.submit(T2V, arguments={"prompt": "A paper boat on a river", "duration": "6", "fps": "25"})
    assert handle.status_url == f"{sim.url}/fal-ai/ltx-2/requests/{handle.request_id}/status"
    first = handle.status(with_logs=True)
    assert isinstance(first, (fal_client.Queued, fal_client.InProgress))
    events = list(handle.iter_events(with_logs=True, interval=0.02))
    assert isinstance(events[-1], fal_client.Completed)
    assert events[-1].error is None
    assert events[-1].metrics["inference_time"] >= RUN - 0.01
    assert any(isinstance(e, fal_client.InProgress) and e.logs for e in events)
    result = handle.get()
    assert result["video"]["num_frames"] == 150 and result["video"]["content_type"] == "video/mp4"

    # subscribe() = submit + polling + result, with on_queue_update callbacks.
    updates = []
    result = fal.subscribe("fal-ai/ltx-2/image-to-video/fast",
                           arguments={"prompt": "x", "image_url": "https://example.com/a.png", "duration": 12},
                           with_logs=True, interval=0.02, on_queue_update=updates.append)
    assert result["video"]["duration"] == 12.0 and result["video"]["num_frames"] == 300
    assert updates and isinstance(updates[-1], fal_client.Completed)

    # Cancel via the client's handle, then status/result through module-level URL rebuilding.
    handle = fal.submit(T2V, arguments={"prompt": "[sim:slow] cancel me"})
    handle.cancel()
    assert wait_until(lambda: isinstance(handle.status(), fal_client.Completed))
    with pytest.raises(fal_client.client.FalClientHTTPError) as excinfo:
        handle.get()
    assert excinfo.value.status_code == 400


def test_fal_client_sees_422_on_submit(sim, monkeypatch):
    monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", sim.url + "/")
    fal = fal_client.SyncClient(key=KEY)
    with pytest.raises(fal_client.client.FalClientHTTPError) as excinfo:
        fal.submit(T2V, arguments={"prompt": "x", "resolution": "720p"})
    assert excinfo.value.status_code == 422


# --- faults and magic words ----------------------------------------------------------------------


def fault_sim(**faults):
    delay = faults.pop("fault_delay", 35.0)
    return FalSimulator(key=KEY, runners=2, run_seconds=0.05, scale=SCALE, faults=faults, seed=7,
                        fault_delay=delay)


def test_fault_submit_5xx(client):
    with fault_sim(submit_5xx=1.0) as sim:
        response = client.post(f"{sim.url}/{T2V}", json={"prompt": "x"})
        assert response.status_code == 503
        assert response.json() == {"detail": "Runner scheduling failed", "error_type": "runner_scheduling_failure"}
        assert response.headers["x-fal-error-type"] == "runner_scheduling_failure"
        assert response.headers["x-fal-request-id"]
        assert sim.requests() == [] and sim.stats()["submits"] == 1


def test_fault_submit_timeout_enqueues_then_answers_late(client):
    with fault_sim(submit_timeout=1.0, fault_delay=0.5) as sim:
        with pytest.raises(httpx.ReadTimeout):
            client.post(f"{sim.url}/{T2V}", json={"prompt": "ambiguous"}, timeout=0.15)
        # The client gave up, but the request exists and runs to completion.
        (request,) = sim.requests()
        wait_until(lambda: sim.completed_at(request["request_id"]))
        started = time.monotonic()
        response = client.post(f"{sim.url}/{T2V}", json={"prompt": "patient"}, timeout=5)
        assert time.monotonic() - started >= 0.45
        assert response.status_code == 200 and response.json()["status"] == "IN_QUEUE"


def test_fault_status_5xx(client):
    with fault_sim(status_5xx=1.0) as sim:
        job = submit(client, sim)
        response = client.get(job["status_url"])
        assert response.status_code == 503
        assert response.headers["x-fal-request-id"] == job["request_id"]
        assert response.headers["x-fal-error-type"]
        wait_until(lambda: sim.completed_at(job["request_id"]))
        assert client.get(job["response_url"]).status_code == 200


def test_fault_result_5xx(client):
    with fault_sim(result_5xx=1.0) as sim:
        job = submit(client, sim)
        assert wait_status(client, job["status_url"]).status_code == 200
        response = client.get(job["response_url"])
        assert response.status_code == 503
        assert response.headers["x-fal-request-id"] == job["request_id"]


def assert_completed_with_422(client, job):
    status = wait_status(client, job["status_url"]).json()
    assert status["error"] == "Invalid status code: 422"
    assert status["error_type"]
    result = client.get(job["response_url"])
    assert result.status_code == 422
    assert result.headers["x-fal-request-id"] == job["request_id"]
    detail = result.json()["detail"]
    assert detail[0]["loc"] == ["body", "prompt"]
    assert detail[0]["type"] == "content_policy_violation" and detail[0]["msg"]


def test_fault_result_422(client):
    with fault_sim(result_422=1.0) as sim:
        assert_completed_with_422(client, submit(client, sim))
        assert sim.stats()["renders"] == 0


def test_magic_422(sim, client):
    assert_completed_with_422(client, submit(client, sim, prompt="A scene [sim:422]"))


def assert_lost(client, sim, job):
    wait_until(lambda: sim.completed_at(job["request_id"]))
    assert client.get(job["status_url"]).status_code == 404
    assert client.get(job["response_url"]).status_code == 404
    assert client.put(job["cancel_url"]).json() == {"status": "NOT_FOUND"}
    assert record(sim, job["request_id"])["lost"] is True


def test_fault_lost(client):
    with fault_sim(lost=1.0) as sim:
        assert_lost(client, sim, submit(client, sim))


def test_magic_lost(sim, client, receiver):
    job = submit(client, sim, prompt="[sim:lost] gone", params={"fal_webhook": receiver.url})
    assert_lost(client, sim, job)
    time.sleep(0.2)
    assert receiver.calls == 0  # a lost request never calls back


def test_magic_slow_runs_three_times_longer(sim, client):
    job = submit(client, sim, prompt="[sim:slow] take your time")
    body = wait_status(client, job["status_url"]).json()
    assert body["metrics"]["inference_time"] >= 3 * RUN - 0.01
    assert client.get(job["response_url"]).status_code == 200


def test_fault_429_on_every_queue_call(client):
    with fault_sim(**{"429": 1.0}) as sim:
        response = client.post(f"{sim.url}/{T2V}", json={"prompt": "x"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        root = f"{sim.url}/fal-ai/ltx-2/requests/{uuid.uuid4()}"
        for method, url in (("GET", root + "/status"), ("GET", root), ("PUT", root + "/cancel")):
            assert client.request(method, url).status_code == 429
        assert sim.requests() == []
        stats = sim.stats()
        assert (stats["submits"], stats["status_calls"], stats["result_calls"], stats["cancel_calls"]) == (1, 1, 1, 1)


def test_faults_are_seeded_and_reproducible(client):
    def outcomes(seed):
        with FalSimulator(key=KEY, run_seconds=0.05, scale=SCALE, faults={"submit_5xx": 0.5}, seed=seed) as sim:
            return [client.post(f"{sim.url}/{T2V}", json={"prompt": "x"}).status_code for _ in range(24)]

    first, again, other = outcomes(3), outcomes(3), outcomes(4)
    assert first == again
    assert set(first) == {200, 503}
    assert first != other


def test_unknown_fault_name_is_rejected():
    with pytest.raises(ValueError):
        FalSimulator(faults={"submit_500": 0.5})
    with pytest.raises(ValueError):
        FalSimulator(faults={"lost": 2})


def test_start_timeout_expires_queued_request(client):
    with FalSimulator(key=KEY, runners=1, run_seconds=0.2, scale=SCALE) as sim:
        blocker = submit(client, sim, prompt="[sim:slow] blocker")
        response = client.post(f"{sim.url}/{T2V}", json={"prompt": "impatient"},
                               headers={"X-Fal-Request-Start-Timeout": "0.2"})
        job = response.json()
        body = wait_status(client, job["status_url"]).json()
        assert body["error_type"] == "request_timeout"
        result = client.get(job["response_url"])
        assert result.status_code == 504
        assert result.headers["x-fal-request-timeout-type"] == "user"
        assert record(sim, job["request_id"])["started_at"] is None
        client.put(blocker["cancel_url"])


# --- bench mode and introspection ----------------------------------------------------------------


def test_cache_renders_renders_each_distinct_output_once(client):
    with FalSimulator(key=KEY, runners=4, run_seconds=0.05, scale=SCALE, cache_renders=True) as sim:
        same = [submit(client, sim, prompt=f"prompt {n}") for n in range(6)]
        other = submit(client, sim, prompt="different fps", fps=50)
        results = []
        for job in same + [other]:
            wait_status(client, job["status_url"])
            results.append(client.get(job["response_url"]).json()["video"])
        assert sim.stats()["renders"] == 2
        assert len({video["url"] for video in results}) == 7  # still one URL per request
        assert len({video["file_size"] for video in results[:6]}) == 1
        assert results[-1]["num_frames"] == 300
        with httpx.Client(trust_env=False) as anonymous:
            assert len(anonymous.get(results[0]["url"]).content) == results[0]["file_size"]


def test_sim_endpoints_match_python_api(sim, client):
    job = submit(client, sim)
    wait_status(client, job["status_url"])
    with httpx.Client(trust_env=False) as anonymous:  # no auth needed
        stats = anonymous.get(f"{sim.url}/_sim/stats").json()
        requests = anonymous.get(f"{sim.url}/_sim/requests").json()
    for key in ("submits", "status_calls", "result_calls", "cancel_calls", "completed", "in_queue", "in_progress"):
        assert isinstance(stats[key], int)
    entry = next(r for r in requests if r["request_id"] == job["request_id"])
    assert entry == record(sim, job["request_id"])
    assert set(entry) >= {"request_id", "model_id", "input", "status", "submitted_at", "started_at",
                          "completed_at", "canceled", "webhook_url"}
    assert entry["status"] == "COMPLETED" and entry["model_id"] == T2V
    assert entry["submitted_at"] <= entry["started_at"] <= entry["completed_at"] == sim.completed_at(job["request_id"])
    assert sim.completed_at("nope") is None


def test_many_concurrent_status_calls(sim):
    jobs = []
    with make_client() as c:
        jobs = [submit(c, sim, prompt=f"load {n}") for n in range(8)]
    errors = []

    def poll(job):
        try:
            with make_client() as c:
                for _ in range(40):
                    assert c.get(job["status_url"]).status_code in (200, 202)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_stop_closes_port_and_removes_workdir(client):
    sim = FalSimulator(key=KEY, run_seconds=0.05, scale=SCALE).start()
    job = submit(client, sim)
    wait_status(client, job["status_url"])
    workdir, url = sim.workdir, sim.url
    sim.stop()
    assert not os.path.exists(workdir)
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/_sim/stats", trust_env=False, timeout=1)


I2V = "fal-ai/ltx-2/image-to-video"


def _start_png():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), (30, 160, 220)).save(buffer, format="PNG")
    return buffer.getvalue()


def _first_frame_rgb(client, sim, rid):
    result = client.get(f"{sim.url}/{I2V}/requests/{rid}").json()
    body = httpx.get(result["video"]["url"], timeout=10).content
    with av.open(io.BytesIO(body)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)


def test_image_inputs_are_counted_by_form_and_rendered_from(sim, client):
    png = _start_png()
    before = sim.stats()
    inline = submit(client, sim, model=I2V, image_url="data:image/png;base64," + base64.b64encode(png).decode())
    initiated = client.post(f"{sim.url}/storage/upload/initiate", params={"storage_type": "fal-cdn-v3"},
                            json={"file_name": "start.png", "content_type": "image/png"}).json()
    put = httpx.put(initiated["upload_url"], content=png, headers={"Content-Type": "image/png"})
    assert put.status_code in (200, 201, 204), put.text
    uploaded = submit(client, sim, model=I2V, image_url=initiated["file_url"])
    after = sim.stats()
    assert after["image_data_uri"] - before["image_data_uri"] == 1
    assert after["image_uploaded"] - before["image_uploaded"] == 1
    for job in (inline, uploaded):
        wait_status(client, job["status_url"])
        mean = _first_frame_rgb(client, sim, job["request_id"])
        assert abs(mean[0] - 30) < 12 and abs(mean[1] - 160) < 12 and abs(mean[2] - 220) < 12, mean
