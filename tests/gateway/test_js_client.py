"""fal's official JS client (`@fal-ai/client`, pinned in js/package.json) against the gateway.

Each test runs one Node script from `js/` against a live studio (web server, django-q2 cluster, fal
simulator as processes), by the recipes of the README's gateway section: `requestMiddleware` rewriting
fal's hosts to `<studio>/fal/`, or `proxyUrl: {url: "<studio>/fal/proxy", when: "always"}`. A script
prints one JSON line: what the client got back, every status it was shown, and every HTTP call it
made (recorded by the script's `fetch`, which also refuses any address off this machine). The test
checks those, the studio's database, and — for every job — that the stored video plays with
exactly the numbers the client was given.

Node and the installed client are required under CI (`make test` installs the client with
`npm ci` when npm exists); elsewhere the tests skip without them.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from generations.models import Generation, Upload
from tests.conftest import require
from tests.gateway.conftest import probe_video

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

JS = Path(__file__).resolve().parent / "js"
CLIENT_VERSION = "1.10.1"
T2V = "fal-ai/ltx-2/text-to-video"
I2V = "fal-ai/ltx-2/image-to-video"
LOG_LEVELS = {"STDERR", "STDOUT", "ERROR", "INFO", "WARN", "DEBUG"}  # fal's RequestLog levels


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    installed = JS / "node_modules" / "@fal-ai" / "client" / "package.json"
    require(path is not None and installed.is_file(),
            "Node.js and fal's JS client are needed: install node + npm, then `make test` "
            "(or `npm ci --prefix tests/gateway/js`)")
    assert json.loads(installed.read_text())["version"] == CLIENT_VERSION, \
        "tests/gateway/js/node_modules is stale: run `npm ci --prefix tests/gateway/js`"
    return path


def run_js(node: str, script: str, *args: str, timeout: float = 60) -> dict:
    """Run `js/<script>` with `args`; it must exit 0 and print exactly one JSON line."""
    run = subprocess.run([node, script, *args], cwd=JS, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"node {script} exited {run.returncode}:\n{run.stderr}\n{run.stdout}"
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1, f"node {script} must print one JSON line, got:\n{run.stdout}"
    return json.loads(lines[0])


# --- what the client saw ---------------------------------------------------------------------------

def assert_status_sequence(updates: list[dict], request_id: str, *, first: tuple[str, ...] = ()) -> None:
    """IN_QUEUE first, COMPLETED last and once, never a step back; every status shaped like fal's."""
    statuses = [*first, *(update["status"] for update in updates)]
    distinct = [status for i, status in enumerate(statuses) if i == 0 or statuses[i - 1] != status]
    assert distinct[0] == "IN_QUEUE" and distinct[-1] == "COMPLETED", statuses
    assert distinct in (["IN_QUEUE", "COMPLETED"], ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]), statuses
    assert statuses.count("COMPLETED") == 1, statuses
    for update in updates:
        assert update["request_id"] == request_id
        if update["status"] == "IN_QUEUE":
            assert isinstance(update["queue_position"], int) and update["queue_position"] >= 0, update
        elif update["status"] == "IN_PROGRESS":  # logs were asked for: a list (the script keeps its length)
            assert isinstance(update["logs"], int) and "queue_position" not in update, update
    assert_completed(updates[-1], request_id, logs=True)


def assert_completed(status: dict, request_id: str, *, logs: bool, error_type: str | None = None) -> None:
    """A COMPLETED status object: `metrics`, the `logs` key (a list of fal RequestLogs when asked
    for, else null) and — for a failed request only — `error` and `error_type`."""
    assert status["status"] == "COMPLETED" and status["request_id"] == request_id
    assert set(status["metrics"]) == {"inference_time"}
    inference_time = status["metrics"]["inference_time"]
    assert inference_time is None or inference_time >= 0
    if not logs:
        assert status["logs"] is None
    elif error_type is None:
        assert status["logs"], "a finished job's logs were asked for: the simulator's runner logs"
        for entry in status["logs"]:
            assert set(entry) == {"message", "level", "source", "timestamp"}, entry
            assert entry["level"] in LOG_LEVELS and entry["source"] == "USER" and entry["message"], entry
    else:
        assert isinstance(status["logs"], list)
    if error_type is None:
        assert "error" not in status and "error_type" not in status, status
    else:
        assert status["error_type"] == error_type and isinstance(status["error"], str) and status["error"], status


def assert_playable(video: dict, *, duration: int, fps: int, audio: bool) -> dict:
    """The client's VideoFile names a stored, playable MP4 with exactly those numbers."""
    assert video["content_type"] == "video/mp4"
    assert video["file_name"].endswith(".mp4")
    assert (video["duration"], video["fps"], video["num_frames"]) == (duration, fps, duration * fps)
    assert video["has_audio"] is audio
    assert abs(video["width"] / video["height"] - 16 / 9) < 0.1, video  # LTX-2 renders 16:9 only
    probe = probe_video(video["url"])
    assert probe["width"] == video["width"] > 0
    assert probe["height"] == video["height"] > 0
    assert probe["frames"] == video["num_frames"] > 0
    assert probe["bytes"] == video["file_size"] > 0
    assert probe["audio"] is audio
    return probe


def assert_succeeded(request_id: str, user, *, model: str, video: dict) -> Generation:
    """The studio's row for a request the client saw succeed: alice's, `succeeded`, the same video."""
    generation = Generation.objects.select_related("video").get(pk=request_id)
    assert str(generation.id) == request_id
    assert generation.owner == user
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.model_id == model
    stored = generation.video
    assert (stored.width, stored.height, stored.num_frames, stored.file_size) == \
        (video["width"], video["height"], video["num_frames"], video["file_size"])
    return generation


def queue_call(method: str, path: str, *, via: str) -> dict:
    """How a call to fal's queue host reaches the studio: rewritten onto /fal/, or via the proxy."""
    if via == "middleware":
        return {"method": method, "url": f"/fal/{path}", "target": None}
    return {"method": method, "url": "/fal/proxy", "target": f"https://queue.fal.run/{path}"}


def route(call: dict) -> dict:
    return {"method": call["method"], "url": call["url"], "target": call["target"]}


def test_a_2_3_portrait_request_gets_a_portrait_video(node, live_studio, studio_key, user):
    outcome = run_js(node, "portrait.mjs", live_studio, studio_key)

    video = outcome["result"]["data"]["video"]
    generation = assert_succeeded(outcome["result"]["requestId"], user, model="fal-ai/ltx-2.3/text-to-video",
                                  video=video)
    assert outcome["request_id"] == str(generation.pk)
    assert generation.input["aspect_ratio"] == "9:16" and generation.input["fps"] == 24
    assert (video["width"], video["height"]) == (66, 120)  # 1080×1920 at the simulator's 1/16, sides even
    assert (video["duration"], video["fps"], video["num_frames"]) == (6, 24, 144)
    probe = probe_video(video["url"])
    assert (probe["width"], probe["height"], probe["frames"]) == (66, 120, 144)


# --- subscribe -------------------------------------------------------------------------------------

SUBSCRIBE_CASES = ("middleware:polling", "middleware:streaming", "proxy:polling", "proxy:streaming")


def test_subscribe_by_polling_and_streaming_through_middleware_and_proxy(node, live_studio, studio_key, user):
    """fal.subscribe end to end four ways, side by side: requestMiddleware (recipe A) and proxyUrl
    with when: "always" (recipe B), each with polling and with the status stream (SSE)."""
    cases = run_js(node, "subscribe.mjs", live_studio, studio_key, *SUBSCRIBE_CASES)
    assert sorted(cases) == sorted(SUBSCRIBE_CASES)
    wrong_logs = {}

    for name, case in cases.items():
        via, mode = name.split(":")
        request_id = case["request_id"]
        assert uuid.UUID(request_id), name  # onEnqueue got the studio's id
        assert_status_sequence(case["updates"], request_id)
        assert case["result"]["requestId"] == request_id, f"{name}: x-fal-request-id of the result"
        video = case["result"]["data"]["video"]
        assert_playable(video, duration=6, fps=25, audio=True)
        generation = assert_succeeded(request_id, user, model=T2V, video=video)
        if case["updates"][-1]["logs"] != generation.logs:
            wrong_logs[name] = (len(case["updates"][-1]["logs"]), len(generation.logs))

        # The wire: submit, then status calls (one per update when polling, one stream), then the result.
        calls = case["calls"]
        base = f"fal-ai/ltx-2/requests/{request_id}"
        submit, *waits, result = calls
        assert route(submit) == queue_call("POST", T2V, via=via), name
        assert submit["body"] == {"prompt": f"A paper boat drifting down a rain gutter ({name})",
                                  "duration": "6", "fps": "25"}
        if mode == "polling":
            assert [route(call) for call in waits] == \
                [queue_call("GET", f"{base}/status?logs=1", via=via)] * len(case["updates"]), name
        else:
            assert [route(call) for call in waits] == \
                [queue_call("GET", f"{base}/status/stream?logs=1", via=via)], name
        assert route(result) == queue_call("GET", base, via=via), name
        assert {call["auth"] for call in calls} == {"Key …"}, name  # the studio key on every call

    assert Generation.objects.filter(owner=user).count() == len(SUBSCRIBE_CASES)
    # The client ends with the job's runner logs, each entry once, however it waited. When streaming,
    # fal's client appends every event's `logs` to those it already has (its queue.js: "accumulate
    # logs to match previous polling behavior"), so a stream event may carry only the entries not
    # sent in an earlier event; polling gets the whole list each time.
    assert not wrong_logs, f"(entries the client ended with, the job's entries): {wrong_logs}"


# --- the queue API call by call, and cancel ---------------------------------------------------------

def test_queue_submit_status_result_and_cancel(node, live_studio, studio_key, user):
    out = run_js(node, "queue.mjs", live_studio, studio_key)
    a, b = out["a"], out["b"]
    id_a, id_b = a["submit"]["request_id"], b["submit"]["request_id"]
    assert uuid.UUID(id_a) and uuid.UUID(id_b) and id_a != id_b

    # Submit answers fal's shape, with absolute URLs on the studio's own host.
    base = f"{live_studio}/fal/fal-ai/ltx-2/requests/{id_a}"
    assert a["submit"] == {"status": "IN_QUEUE", "request_id": id_a, "gateway_request_id": id_a,
                           "response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel",
                           "queue_position": a["submit"]["queue_position"]}
    assert isinstance(a["submit"]["queue_position"], int) and a["submit"]["queue_position"] >= 0

    # Job A: status → subscribeToStatus (polling) → result.
    assert a["status"]["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert_status_sequence(a["updates"], id_a, first=("IN_QUEUE", a["status"]["status"]))
    assert a["done"] == a["updates"][-1]
    assert a["result"]["requestId"] == id_a  # from the x-fal-request-id header
    video = a["result"]["data"]["video"]
    assert_playable(video, duration=8, fps=25, audio=False)
    assert_succeeded(id_a, user, model=T2V, video=video)
    assert_completed(a["status_without_logs"], id_a, logs=False)

    # Job B: canceled while still waiting; COMPLETED with error_type "canceled"; result refused.
    assert b["status_before_cancel"]["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert b["cancel"] == {"resolved": None}
    assert_completed(b["status_after_cancel"], id_b, logs=True, error_type="canceled")
    assert "resolved" not in b["result"], "the result of a canceled request must be refused"
    assert b["result"]["api_error"] is True and b["result"]["validation_error"] is False
    assert b["result"]["status"] == 400
    assert b["result"]["body"]["error_type"] == "canceled" and b["result"]["body"]["detail"]
    assert b["cancel_again"]["status"] == 400 and b["cancel_again"]["body"] == {"status": "ALREADY_COMPLETED"}
    canceled = Generation.objects.get(pk=id_b)
    assert canceled.owner == user and canceled.status == Generation.Status.CANCELED
    assert canceled.video is None

    # The wire: every call on fal's queue paths, rewritten onto /fal/, with the studio key.
    calls = [route(call) for call in out["calls"]]
    for method, path in [("POST", T2V), ("GET", f"fal-ai/ltx-2/requests/{id_a}/status?logs=1"),
                         ("GET", f"fal-ai/ltx-2/requests/{id_a}"),
                         ("GET", f"fal-ai/ltx-2/requests/{id_a}/status?logs=0"),
                         ("GET", f"fal-ai/ltx-2/requests/{id_b}/status?logs=0"),
                         ("GET", f"fal-ai/ltx-2/requests/{id_b}/status?logs=1"),
                         ("GET", f"fal-ai/ltx-2/requests/{id_b}")]:
        assert queue_call(method, path, via="middleware") in calls, (method, path)
    cancel = queue_call("PUT", f"fal-ai/ltx-2/requests/{id_b}/cancel", via="middleware")
    assert calls.count(cancel) == 2  # the accepted cancel, then the refused one, not retried
    assert {call["auth"] for call in out["calls"]} == {"Key …"}


# --- image-to-video with a Blob, through the proxy ---------------------------------------------------

def _quadrants_png(path: Path, size=(640, 360)) -> bytes:
    from PIL import Image

    width, height = size
    image = Image.new("RGB", size)
    for box, colour in [((0, 0, width // 2, height // 2), (220, 40, 40)),
                        ((width // 2, 0, width, height // 2), (40, 200, 60)),
                        ((0, height // 2, width // 2, height), (40, 60, 220)),
                        ((width // 2, height // 2, width, height), (240, 220, 40))]:
        image.paste(colour, box)
    image.save(path, format="PNG")
    return path.read_bytes()


def _pixels(data: bytes) -> tuple:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size, image.convert("RGB").tobytes()


def test_image_to_video_uploads_a_blob_through_the_proxy(node, live_studio, studio_key, user, tmp_path):
    from django.core.files.storage import default_storage

    png = _quadrants_png(tmp_path / "start.png")
    out = run_js(node, "image_to_video.mjs", live_studio, studio_key, str(tmp_path / "start.png"))
    request_id = out["request_id"]
    assert_status_sequence(out["updates"], request_id)
    assert out["result"]["requestId"] == request_id
    video = out["result"]["data"]["video"]
    assert_playable(video, duration=6, fps=25, audio=True)
    generation = assert_succeeded(request_id, user, model=I2V, video=video)

    # The upload: initiated through the proxy with the key, then the bytes PUT straight to upload_url.
    upload = Upload.objects.select_related("object").get()
    assert upload.owner == user and upload.object is not None
    assert upload.content_type == upload.object.content_type == "image/png"
    assert upload.object.size == len(png)
    with default_storage.open(upload.object.key, "rb") as handle:
        assert handle.read() == png
    initiate, put, submit, *rest = out["calls"]
    assert route(initiate) == {"method": "POST", "url": "/fal/proxy",
                               "target": "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3"}
    assert initiate["auth"] == "Key …"
    assert initiate["body"] == {"content_type": "image/png", "file_name": upload.file_name}
    assert upload.file_name.endswith(".png")
    assert put["method"] == "PUT" and put["url"].startswith("/fal/storage/upload/put/")
    assert (put["target"], put["auth"], put["content_type"]) == (None, None, "image/png")
    assert put["body"] == {"blob_size": len(png), "blob_type": "image/png"}
    assert route(submit) == queue_call("POST", I2V, via="proxy")
    assert submit["body"] == {"prompt": "The four coloured squares start to spin", "duration": "6",
                              "image_url": f"{live_studio}/fal/files/{upload.pk}/{upload.file_name}"}
    assert all(call["url"] == "/fal/proxy" and call["target"].startswith("https://queue.fal.run/fal-ai/ltx-2/")
               for call in rest)

    # The job kept the very image as its own start image.
    assert generation.start_image is not None
    with default_storage.open(generation.start_image.key, "rb") as handle:
        assert _pixels(handle.read()) == _pixels(png) and _pixels(png)[:2] == ("PNG", (640, 360))


# --- refusals ---------------------------------------------------------------------------------------

def test_wrong_key_and_invalid_input_are_refused_as_fal_errors(node, live_server, studio_key, user):
    """No worker cluster is needed: nothing may be created. Checked through both recipes."""
    out = run_js(node, "errors.mjs", live_server.url, studio_key)
    assert sorted(out) == ["middleware", "proxy"]
    for via, case in out.items():
        wrong = case["wrong_key"]
        assert "resolved" not in wrong, f"{via}: a key the studio never issued was accepted"
        assert wrong["api_error"] is True and wrong["validation_error"] is False, (via, wrong)
        assert wrong["status"] == 401, (via, wrong)
        assert "key" in wrong["body"]["detail"].lower(), (via, wrong)

        bad = case["bad_duration"]
        assert "resolved" not in bad, f"{via}: duration 7 was accepted"
        assert bad["validation_error"] is True and bad["status"] == 422, (via, bad)
        assert bad["name"] == "ValidationError"
        duration_errors = [error for error in bad["field_errors"] if error["loc"] == ["body", "duration"]]
        assert len(duration_errors) == 1 and bad["duration_errors"] == duration_errors, (via, bad)
        assert {"6", "8", "10"} <= set(_words(duration_errors[0]["msg"])), duration_errors
        assert duration_errors[0]["type"]

        # One submit each (a 401 or 422 is never retried), with the key as sent.
        submits = [route(call) for call in case["calls"]]
        assert submits == [queue_call("POST", T2V, via=via)] * 2, (via, submits)
        assert [call["auth"] for call in case["calls"]] == ["Key …", "Key …"]
    assert Generation.objects.count() == 0
    assert Upload.objects.count() == 0


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)
