"""Image-to-video: the start image is checked (upload, data URI or URL), kept as the studio's own object,
counted in the quota, handed to fal as a data URI or through fal's storage upload, and deleted with the job."""
from __future__ import annotations

import base64
import io
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
import pillow_heif
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from fal_protocol.client import FalUnavailable
from generations import ltx
from generations.models import Generation, GenerationAttempt
from generations.services.create import START_IMAGE_REF, generation_create
from generations.services.delete import generation_delete
from generations.services.submit import generation_submit
from storage.models import StoredObject, UsageEntry, UserQuota
from storage.quotas import QuotaExceeded, estimate_bytes, usage_for
from tests.conftest import run_to_the_end
from tests.images import quadrants

pillow_heif.register_heif_opener()
pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


def image_bytes(fmt="PNG", size=(320, 180)) -> bytes:
    """A 16:9 picture with four distinct colour quadrants (easy to recognise after scaling and encoding)."""
    buffer = io.BytesIO()
    image = quadrants(size)
    if fmt == "GIF":
        image = image.convert("P")
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(data: bytes, content_type="image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def create(user, image_url, model="i2v", **input):
    generation, created = generation_create(owner=user, model=model,
                                            input={"prompt": "the start image comes alive", "image_url": image_url,
                                                   **input})
    assert created
    return generation


def stored_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_written(media_root):
    assert Generation.objects.count() == 0
    assert UsageEntry.objects.count() == 0
    assert StoredObject.objects.count() == 0
    assert stored_files(media_root) == []


# --- accepting the image ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, content_type, ext", [
    ("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp"),
    ("AVIF", "image/avif", "avif"), ("HEIF", "image/heif", "heif"),
])
def test_each_format_is_accepted_and_kept_as_its_own_counted_object(user, media_root, task_queue, fmt, content_type,
                                                                    ext):
    data = image_bytes(fmt)
    # the declared type is not trusted: every format is sent labelled as PNG
    generation = create(user, data_uri(data, "image/png"))
    assert generation.input["image_url"] == START_IMAGE_REF
    start = generation.start_image
    assert start.content_type == content_type and start.size == len(data) and start.owner == user
    assert start.key == f"users/{user.pk}/generations/{generation.pk}/start.{ext}"
    with default_storage.open(start.key, "rb") as stored:
        assert stored.read() == data
    reserve = UsageEntry.objects.get(job=generation.pk, event="reserve")
    assert reserve.bytes == estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True) + len(data)


BAD_IMAGES = [
    ("gif", lambda: image_bytes("GIF"), {}, "GIF images are not supported"),
    ("bmp", lambda: image_bytes("BMP"), {}, "BMP images are not supported"),
    ("too many bytes", lambda: image_bytes("PNG"), {"STUDIO_MAX_IMAGE_BYTES": 200}, "at most 200 bytes is allowed"),
    ("too many pixels", lambda: image_bytes("PNG"), {"STUDIO_MAX_IMAGE_PIXELS": 10_000}, "320×180 pixels"),
    ("not decodable", lambda: image_bytes("PNG", (400, 400))[:300], {}, "not a readable image"),
    ("not an image", lambda: b"<html>hello</html>", {}, "not a readable image"),
]


@pytest.mark.parametrize("name, make, overrides, message", BAD_IMAGES, ids=[row[0] for row in BAD_IMAGES])
def test_each_bad_image_is_refused_naming_the_problem_with_nothing_written(
        user, media_root, task_queue, settings, name, make, overrides, message):
    for setting, value in overrides.items():
        setattr(settings, setting, value)
    with pytest.raises(ltx.InputError) as info:
        create(user, data_uri(make()))
    assert list(info.value.errors) == ["image_url"]
    assert message in info.value.errors["image_url"]
    assert_nothing_written(media_root)
    assert task_queue.calls == []


def test_a_malformed_data_uri_is_refused(user, media_root, task_queue):
    with pytest.raises(ltx.InputError) as info:
        create(user, "data:image/png;base64,@@@not base64@@@")
    assert "not valid base64" in info.value.errors["image_url"]
    assert_nothing_written(media_root)


# --- image URLs ------------------------------------------------------------------------------------

class _ImageHandler(BaseHTTPRequestHandler):
    png = image_bytes("PNG")

    def do_GET(self):  # noqa: N802
        if self.path == "/start.png":
            self._send(200, self.png, "image/png")
        elif self.path == "/slow.png":
            time.sleep(2.0)
            self._send(200, self.png, "image/png")
        elif self.path == "/to-private.png":
            self.send_response(302)
            self.send_header("Location", "http://10.20.30.40/start.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b"missing", "text/plain")

    def _send(self, code, body, content_type):
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server(settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_image_url_is_fetched_and_kept(user, media_root, task_queue, image_server):
    url = f"{image_server}/start.png"
    generation = create(user, url)
    assert generation.input["image_url"] == url  # the original URL is what the job shows
    assert generation.start_image.content_type == "image/png" and generation.start_image.size == len(_ImageHandler.png)
    with default_storage.open(generation.start_image.key, "rb") as stored:
        assert stored.read() == _ImageHandler.png


@pytest.mark.parametrize("path, overrides, message", [
    ("/missing.png", {}, "answered HTTP 404"),
    ("/slow.png", {"STUDIO_IMAGE_FETCH_TIMEOUT_SECONDS": 0.5}, "did not answer within 0.5 s"),
    ("/start.png", {"STUDIO_MAX_IMAGE_BYTES": 100}, "at most 100 bytes is allowed"),
    ("/to-private.png", {}, "10.20.30.40 is not a public address"),
], ids=["404", "timeout", "too-large", "redirect-to-private"])
def test_a_bad_image_url_is_refused_with_nothing_written(user, media_root, task_queue, settings, image_server,
                                                          path, overrides, message):
    for setting, value in overrides.items():
        setattr(settings, setting, value)
    started = time.monotonic()
    with pytest.raises(ltx.InputError) as info:
        create(user, f"{image_server}{path}")
    assert message in info.value.errors["image_url"]
    assert time.monotonic() - started < 5
    assert_nothing_written(media_root)


def test_an_image_url_that_is_not_public_is_refused(user, media_root, task_queue, settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []
    for url, message in (("http://127.0.0.1:9/start.png", "127.0.0.1 is not a public address"),
                         ("https://169.254.169.254/latest/meta-data", "is not a public address"),
                         ("http://10.0.0.7/start.png", "10.0.0.7 is not a public address")):
        with pytest.raises(ltx.InputError) as info:
            create(user, url)
        assert message in info.value.errors["image_url"] and "not allowed" in info.value.errors["image_url"]
    assert_nothing_written(media_root)


def test_an_unreachable_image_url_is_refused(user, media_root, task_queue, settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ltx.InputError) as info:
        create(user, f"http://127.0.0.1:{port}/start.png")
    assert "is not reachable" in info.value.errors["image_url"]
    assert_nothing_written(media_root)


@pytest.mark.parametrize("url, message", [
    ("http://\uff11\uff12\uff17.0.0.1/x.png", "Invalid IDNA hostname"),   # full-width digits
    ("http://xn--/x.png", "Malformed A-label"),
    ("https://xn--ls8h.la/x.png", "not allowed"),                            # an emoji label
])
def test_an_image_url_whose_host_idna_cannot_handle_is_refused(user, media_root, task_queue, settings, url, message):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []
    with pytest.raises(ltx.InputError) as info:
        create(user, url)
    assert info.value.errors["image_url"].startswith("The image URL is not a valid URL: ")
    assert message in info.value.errors["image_url"]
    assert_nothing_written(media_root)


def test_the_api_answers_422_naming_input_image_url(user, media_root, task_queue, settings):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/v1/generations/", {"model": "i2v", "input": {
        "prompt": "x", "image_url": data_uri(image_bytes("GIF"), "image/gif")}}, format="json")
    assert response.status_code == 422, response.content
    assert "GIF images are not supported" in str(response.json())
    assert "image_url" in str(response.json())
    assert_nothing_written(media_root)


# --- quota -----------------------------------------------------------------------------------------

def test_a_quota_refusal_leaves_no_orphan_start_image(user, media_root, task_queue):
    UserQuota.objects.create(user=user, monthly_spend_usd=Decimal("0.10"))
    with pytest.raises(QuotaExceeded):
        create(user, data_uri(image_bytes()))
    assert_nothing_written(media_root)


def test_the_start_image_counts_against_the_storage_limit(user, media_root, task_queue):
    data = image_bytes()
    need = estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True)
    UserQuota.objects.create(user=user, storage_bytes=need + len(data) - 1)
    with pytest.raises(QuotaExceeded) as info:
        create(user, data_uri(data))
    assert info.value.limit == "storage_bytes"
    assert_nothing_written(media_root)


# --- handing it to fal, and the whole job ----------------------------------------------------------

@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def make_due(generation):
    Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))


def upload_attempt(generation) -> GenerationAttempt:
    return GenerationAttempt.objects.get(generation=generation, kind="upload")


def test_a_small_image_goes_to_fal_as_a_data_uri(studio, user, task_queue):
    generation = create(user, data_uri(image_bytes()), model="i2v-fast")
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    stats = studio.stats()
    assert (stats["submits"], stats["image_data_uri"], stats["image_uploaded"]) == (1, 1, 0)
    attempt = upload_attempt(generation)
    assert attempt.outcome == "ok" and attempt.response["method"] == "data_uri"
    assert "<= data URI limit" in attempt.response["reason"]
    sent = studio.requests()[0]
    assert Generation.objects.get(pk=generation.pk).input["image_url"] == START_IMAGE_REF
    assert sent  # the simulator saw the request


def test_a_larger_image_is_uploaded_to_fal_storage(studio, user, task_queue, settings):
    settings.STUDIO_FAL_DATA_URI_MAX_BYTES = 100
    data = image_bytes()
    generation = create(user, data_uri(data), model="i2v-fast")
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    stats = studio.stats()
    assert (stats["submits"], stats["image_data_uri"], stats["image_uploaded"]) == (1, 0, 1)
    attempt = upload_attempt(generation)
    assert attempt.outcome == "ok" and attempt.response["method"] == "fal_storage"
    assert attempt.response["file_url"].startswith(f"{studio.url}/files/") and attempt.response["bytes"] == len(data)
    assert "uploaded to fal storage" in attempt.response["reason"]


def test_a_failed_upload_is_retried_like_an_unavailable_submit(studio, user, task_queue, settings, monkeypatch):
    settings.STUDIO_FAL_DATA_URI_MAX_BYTES = 100

    def unavailable(self, data, content_type, file_name):
        raise FalUnavailable("fal storage is down", status_code=503)

    generation = create(user, data_uri(image_bytes()), model="i2v-fast")
    with monkeypatch.context() as patch:
        patch.setattr("fal_protocol.client.FalQueueClient.upload", unavailable)
        generation_submit(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.PENDING and generation.submit_attempts == 1
    attempt = upload_attempt(generation)
    assert attempt.outcome == "unavailable" and attempt.http_status == 503
    assert studio.stats()["submits"] == 0
    assert not GenerationAttempt.objects.filter(generation=generation, kind="submit").exists()
    make_due(generation)
    generation_submit(generation.pk)  # nothing was sent before, so trying again is safe
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    assert studio.stats()["image_uploaded"] == 1


def first_frame(key) -> Image.Image:
    with default_storage.open(key) as stored, av.open(stored) as container:
        frame = next(container.decode(video=0))
        return frame.to_image()


def small(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((16, 9), Image.Resampling.BOX), dtype=np.float32)


@pytest.mark.parametrize("threshold", [256 * 1024, 100], ids=["data-uri", "fal-upload"])
def test_image_to_video_end_to_end_starts_from_the_image_and_frees_it_on_delete(studio, user, task_queue, settings,
                                                                               threshold):
    settings.STUDIO_FAL_DATA_URI_MAX_BYTES = threshold
    data = image_bytes("JPEG", (640, 360))
    generation = run_to_the_end(create(user, data_uri(data, "image/jpeg"), model="i2v"), task_queue)
    assert generation.status == Status.SUCCEEDED, generation.error_message
    start, video = generation.start_image, generation.video

    frame0 = first_frame(video.file.key)
    with Image.open(io.BytesIO(data)) as original:
        difference = np.abs(small(frame0) - small(original)).mean()
    assert difference < 12, difference
    # ...and it moves: a text-to-video frame of the same job would look nothing like it
    with default_storage.open(video.file.key) as stored, av.open(stored) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]
    assert (np.abs(frames[-1] - frames[0]).max(axis=-1) > 40).mean() > 0.02

    stored_total = video.file.size + video.poster.size + start.size
    assert usage_for(user).bytes == stored_total
    assert default_storage.exists(start.key)

    generation_delete(generation)
    assert usage_for(user).bytes == 0
    assert not default_storage.exists(start.key)
    assert StoredObject.objects.count() == 0


def test_the_start_image_is_shown_to_its_owner_only(studio, user, other_user, task_queue):
    generation = create(user, data_uri(image_bytes("HEIF")))
    owner, stranger = Client(), Client()
    owner.force_login(user)
    stranger.force_login(other_user)
    url = reverse("generations:start-image", args=[generation.pk])
    response = owner.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumbnail:
        assert thumbnail.format == "JPEG"  # HEIF is turned into something a browser shows
    assert stranger.get(url).status_code == 404
    assert url in owner.get(reverse("generations:detail", args=[generation.pk])).content.decode()


def test_retry_of_an_image_job_reuses_the_stored_image(studio, user, task_queue):
    from generations.services.create import generation_retry

    data = image_bytes()
    generation = create(user, data_uri(data))
    Generation.objects.filter(pk=generation.pk).update(status=Status.FAILED)
    generation.refresh_from_db()
    again = generation_retry(generation)
    assert again.start_image.sha256 == generation.start_image.sha256
    assert again.start_image.pk != generation.start_image.pk
    assert again.input["image_url"] == START_IMAGE_REF


def test_reconcile_counts_an_in_flight_start_image_once(storage_backend, user, media_root, task_queue):
    from storage.reconcile import storage_reconcile

    generation = create(user, data_uri(image_bytes()))
    assert generation.status == Generation.Status.PENDING and generation.start_image is not None
    drift = storage_reconcile()
    assert drift.clean, drift
    UsageEntry.objects.create(user=user, event="adjust", bytes=7, month=UsageEntry.objects.first().month)
    assert storage_reconcile().bytes_by_user[user.pk][0] - storage_reconcile().bytes_by_user[user.pk][1] == 7
