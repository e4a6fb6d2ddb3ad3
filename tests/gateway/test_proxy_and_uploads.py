"""The server-proxy route (`x-fal-target-url`) and the storage upload flow, through Django's test client."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from PIL import Image

from generations.models import Generation, Upload
from generations.services.uploads import uploads_purge_expired
from storage.models import StoredObject, UsageEntry, UserQuota
from storage.quotas import usage_for
from storage.reconcile import storage_reconcile

pytestmark = pytest.mark.django_db
QUEUE = "https://queue.fal.run"
INITIATE = "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3"


def png(width: int = 64, height: int = 36, color=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def proxied(client: Client, method: str, target: str, body: dict | None = None, **headers):
    return client.generic(method, "/fal/proxy", json.dumps(body) if body is not None else "",
                          content_type="application/json", headers={"x-fal-target-url": target, **headers})


def local(url: str) -> str:
    return url.removeprefix("http://testserver")


# --- proxy -----------------------------------------------------------------------------------------

def test_queue_calls_through_the_proxy_are_answered_by_the_studio(gw, user, task_queue):
    response = proxied(gw, "POST", f"{QUEUE}/fal-ai/ltx-2/text-to-video", {"prompt": "proxied fox"})
    assert response.status_code == 200
    request_id = response.json()["request_id"]
    assert Generation.objects.get(pk=request_id).owner == user
    status = proxied(gw, "GET", f"{QUEUE}/fal-ai/ltx-2/requests/{request_id}/status?logs=1")
    assert status.status_code == 202 and status.json()["status"] == "IN_QUEUE"
    canceled = proxied(gw, "PUT", f"{QUEUE}/fal-ai/ltx-2/requests/{request_id}/cancel")
    assert canceled.status_code == 202 and Generation.objects.get(pk=request_id).status == "canceled"


@pytest.mark.parametrize("target, message", [
    (None, "header is missing"),
    ("https://evil.example.com/fal-ai/ltx-2/text-to-video", "not allowed"),
    ("http://queue.fal.run/fal-ai/ltx-2/text-to-video", "not allowed"),
    ("https://fal.run/fal-ai/ltx-2/text-to-video", "not allowed"),
    ("https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3", "not allowed"),
    ("https://queue.fal.run/proxy", "cannot target itself"),
])
def test_targets_outside_fals_queue_and_upload_routes_are_refused(gw, task_queue, target, message):
    headers = {"x-fal-target-url": target} if target else {}
    response = gw.post("/fal/proxy", json.dumps({"prompt": "x"}), content_type="application/json", headers=headers)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Generation.objects.exists()


def test_the_proxy_needs_credentials(task_queue):
    response = proxied(Client(), "POST", f"{QUEUE}/fal-ai/ltx-2/text-to-video", {"prompt": "x"})
    assert response.status_code == 401 and not Generation.objects.exists()


def test_a_signed_in_browser_may_use_the_proxy_with_the_csrf_header(user, task_queue):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get("/")  # sets the CSRF cookie, as any studio page does
    token = browser.cookies["csrftoken"].value
    target = f"{QUEUE}/fal-ai/ltx-2/text-to-video"
    refused = proxied(browser, "POST", target, {"prompt": "x"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Generation.objects.exists()
    accepted = proxied(browser, "POST", target, {"prompt": "x"}, **{"X-CSRFToken": token})
    assert accepted.status_code == 200
    request_id = accepted.json()["request_id"]
    assert proxied(browser, "GET", f"{QUEUE}/fal-ai/ltx-2/requests/{request_id}/status").status_code == 202
    # The session counts only through the proxy: the key routes want a key.
    assert browser.get(f"/fal/fal-ai/ltx-2/requests/{request_id}/status").status_code == 401


# --- storage upload --------------------------------------------------------------------------------

def initiate(client: Client, content_type: str = "image/png", file_name: str = "start frame.png", via_proxy=True):
    body = {"content_type": content_type, "file_name": file_name}
    if via_proxy:
        return proxied(client, "POST", INITIATE, body)
    return client.post("/fal/storage/upload/initiate?storage_type=fal-cdn-v3", json.dumps(body),
                       content_type="application/json")


def put(url: str, data: bytes, content_type: str = "image/png"):
    return Client().put(local(url), data, content_type=content_type)  # no Authorization, as fal's clients do


def uploaded(gw, data: bytes) -> tuple[Upload, str]:
    urls = initiate(gw).json()
    assert put(urls["upload_url"], data).status_code == 200
    return Upload.objects.get(), urls["file_url"]


def test_initiate_then_put_stores_the_image_and_books_its_bytes(storage_backend, gw, user, media_root):
    response = initiate(gw)
    assert response.status_code == 200
    urls = response.json()
    upload = Upload.objects.get()
    assert upload.owner == user and upload.object is None and upload.file_name == "start-frame.png"
    assert urls["file_url"] == f"http://testserver/fal/files/{upload.pk}/start-frame.png"
    assert urls["upload_url"].startswith("http://testserver/fal/storage/upload/put/")
    data = png()
    answer = put(urls["upload_url"], data)
    assert answer.status_code == 200 and answer.json() == {"file_url": urls["file_url"]}
    upload.refresh_from_db()
    stored = upload.object
    assert (stored.owner, stored.size, stored.sha256) == (user, len(data), hashlib.sha256(data).hexdigest())
    assert stored.key == f"users/{user.pk}/uploads/{upload.pk}/file.png"
    with default_storage.open(stored.key) as handle:
        assert handle.read() == data
    entry = UsageEntry.objects.get(job=upload.pk)
    assert (entry.event, entry.bytes, entry.usd, entry.jobs) == ("store", len(data), 0, 0)
    assert usage_for(user).bytes == len(data) and usage_for(user).active_jobs == 0
    # Another PUT to the same URL is refused (409) and changes nothing.
    assert put(urls["upload_url"], png(color=(0, 0, 255))).status_code == 409
    assert UsageEntry.objects.filter(job=upload.pk).count() == 1 and StoredObject.objects.count() == 1
    with default_storage.open(stored.key) as handle:
        assert handle.read() == data
    assert storage_reconcile().clean


def test_the_direct_route_works_like_the_proxied_one(gw, media_root):
    assert initiate(gw, via_proxy=False).status_code == 200 and Upload.objects.count() == 1


def test_only_image_types_can_be_initiated(gw):
    response = initiate(gw, content_type="application/pdf", file_name="x.pdf")
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "content_type"] and "image/png" in detail["msg"]
    assert not Upload.objects.exists()


@pytest.mark.parametrize("field, value, message", [
    ("file_name", "start\x00.png", "must not contain NUL characters (U+0000)"),
    ("file_name", "start\ud800.png", ("must be valid Unicode text: it holds a lone surrogate (U+D800), which "
                                       "cannot be encoded as UTF-8")),
    ("content_type", "image/\ud800", ("must be valid Unicode text: it holds a lone surrogate (U+D800), which "
                                       "cannot be encoded as UTF-8")),
    ("content_type", "image/png\x00", "must not contain NUL characters (U+0000)"),
])
@pytest.mark.parametrize("via_proxy", [True, False])
def test_names_and_types_that_cannot_be_stored_are_fals_422_naming_the_field(gw, field, value, message, via_proxy):
    response = initiate(gw, **{field: value}, via_proxy=via_proxy)  # json.dumps sends them as \u escapes
    assert response.status_code == 422, response.content
    assert response.json()["detail"] == [{"loc": ["body", field], "msg": message, "type": "value_error"}]
    assert not Upload.objects.exists()


def test_bytes_that_are_not_an_image_are_refused_and_nothing_is_kept(gw, user, media_root):
    urls = initiate(gw).json()
    response = put(urls["upload_url"], b"%PDF-1.4 not an image")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "file"]
    assert Upload.objects.get().object is None
    assert not StoredObject.objects.exists() and not UsageEntry.objects.exists()


def test_too_large_is_413_before_reading(gw, settings, media_root):
    settings.STUDIO_MAX_IMAGE_BYTES = 1000
    urls = initiate(gw).json()
    response = put(urls["upload_url"], png(400, 400, (1, 2, 3)) + b"\0" * 2000)
    assert response.status_code == 413 and "1,000 bytes" in response.json()["detail"]
    assert not StoredObject.objects.exists()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes per pixel."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_images_above_djangos_in_memory_body_limit_still_upload_and_submit(gw, settings, media_root, task_queue):
    data = noise_png(1000)
    assert len(data) > 2_621_440  # Django's default in-memory body limit
    upload, file_url = uploaded(gw, data)
    assert upload.object.size == len(data)
    inline = "data:image/png;base64," + base64.b64encode(data).decode()
    for image_url in (file_url, inline):
        response = gw.post("/fal/fal-ai/ltx-2/image-to-video", json.dumps({"prompt": "x", "image_url": image_url}),
                           content_type="application/json")
        assert response.status_code == 200, response.content[:300]
    assert Generation.objects.count() == 2
    # Past even that limit, the answer is still JSON: a 413 in fal's shape.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = gw.post("/fal/fal-ai/ltx-2/image-to-video", json.dumps({"prompt": "x", "image_url": inline}),
                       content_type="application/json")
    assert response.status_code == 413 and "larger than 1,000 bytes" in response.json()["detail"]
    assert Generation.objects.count() == 2


def test_bad_or_expired_upload_urls_are_403(gw, settings, media_root):
    urls = initiate(gw).json()
    assert put(urls["upload_url"] + "x", png()).status_code == 403
    settings.STUDIO_UPLOAD_URL_SECONDS = -1
    response = put(urls["upload_url"], png())
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    assert not StoredObject.objects.exists()


def test_an_upload_over_the_storage_quota_is_refused_and_its_object_removed(gw, user, media_root):
    UserQuota.objects.create(user=user, storage_bytes=100)
    urls = initiate(gw).json()
    response = put(urls["upload_url"], png())
    assert response.status_code == 403 and response.json()["error_type"] == "quota_exceeded"
    upload = Upload.objects.get()
    assert upload.object is None and not UsageEntry.objects.exists()
    assert not default_storage.exists(f"users/{user.pk}/uploads/{upload.pk}/file.png")


def test_the_file_url_is_readable_by_its_owner_only(gw, other_gw, media_root):
    data = png()
    _, file_url = uploaded(gw, data)
    mine = gw.get(local(file_url))
    assert (mine.status_code, mine["Content-Type"], mine.content) == (200, "image/png", data)
    assert other_gw.get(local(file_url)).status_code == 404
    assert Client().get(local(file_url)).status_code == 401


def test_image_to_video_takes_the_uploaded_file_url(gw, user, media_root, task_queue):
    data = png(96, 54)
    _, file_url = uploaded(gw, data)
    response = proxied(gw, "POST", f"{QUEUE}/fal-ai/ltx-2/image-to-video", {"prompt": "zoom in", "image_url": file_url})
    assert response.status_code == 200, response.content
    generation = Generation.objects.get(pk=response.json()["request_id"])
    assert generation.start_image is not None and generation.start_image.sha256 == hashlib.sha256(data).hexdigest()
    assert generation.input["image_url"] == "studio:start-image"
    with default_storage.open(generation.start_image.key) as handle:
        assert Image.open(handle).size == (96, 54)


def test_another_users_upload_cannot_be_used(gw, other_gw, media_root, task_queue):
    _, file_url = uploaded(gw, png())
    response = proxied(other_gw, "POST", f"{QUEUE}/fal-ai/ltx-2/image-to-video", {"prompt": "x", "image_url": file_url})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_url"]
    assert not Generation.objects.exists()


def test_multipart_uploads_are_refused_clearly(gw):
    target = "https://rest.fal.ai/storage/upload/initiate-multipart?storage_type=fal-cdn-v3"
    response = proxied(gw, "POST", target, {"content_type": "image/png", "file_name": "x.png"})
    assert response.status_code == 413 and "at most" in response.json()["detail"]


def test_expired_uploads_are_purged_with_their_bytes_given_back(storage_backend, gw, user, media_root, task_queue):
    upload, file_url = uploaded(gw, png())
    key = upload.object.key
    Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert gw.get(local(file_url)).status_code == 404
    assert uploads_purge_expired() == 1
    assert not Upload.objects.exists() and not StoredObject.objects.exists()
    assert not default_storage.exists(key)
    assert [entry.event for entry in UsageEntry.objects.filter(job=upload.pk)] == ["store", "delete"]
    assert usage_for(user).bytes == 0
    assert uploads_purge_expired() == 0 and UsageEntry.objects.count() == 2
    assert storage_reconcile().clean
