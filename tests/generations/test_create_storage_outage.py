"""An image-to-video job asked for while our storage refuses writes: nothing is created, and every way in
answers that storage is unavailable (REST 503 `storage_unavailable` with Retry-After, the gateway fal's
503 shape, the web form a form error) — never a 500. Found by `make chaos`'s storage outage. The S3
server is moto over HTTP behind a proxy whose link the test cuts (tests/generations/test_storage_faults.py)."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.models import Generation
from storage.models import StoredObject, UsageEntry
from tests.gateway.conftest import key_client
from tests.generations.test_storage_faults import s3_link  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


def assert_nothing_created(s3_link) -> None:  # noqa: F811
    assert Generation.objects.count() == 0
    assert UsageEntry.objects.count() == 0
    assert StoredObject.objects.count() == 0
    s3_link.mode = "up"
    assert s3_link.bucket_keys() == []


def test_rest_create_answers_503_storage_unavailable_and_creates_nothing(user, task_queue, s3_link):  # noqa: F811
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=user, name='tests')[1]}")
    s3_link.mode = "down"

    response = api.post("/api/v1/generations/", {"model": "i2v", "input": {"prompt": "the fox looks up",
                                                                              "image_url": data_uri()}}, format="json")

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "storage_unavailable" and response.json()["details"] == {}
    assert "nothing was created" in response.json()["message"]
    assert response["Retry-After"] == "30"
    assert task_queue.calls == []
    assert_nothing_created(s3_link)
    # Once storage is back the same request goes through.
    assert api.post("/api/v1/generations/", {"model": "i2v", "input": {"prompt": "the fox looks up",
                                                                        "image_url": data_uri()}},
                    format="json").status_code == 201


def test_gateway_submit_answers_fals_503_and_creates_nothing(user, task_queue, s3_link):  # noqa: F811
    s3_link.mode = "down"

    response = key_client(user).post("/fal/fal-ai/ltx-2/image-to-video", {"prompt": "the fox looks up",
                                                                          "image_url": data_uri()},
                                     content_type="application/json")

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error_type"] == "storage_unavailable" and body["detail"] == body["message"]
    assert response["Retry-After"] == "30"
    assert task_queue.calls == []
    assert_nothing_created(s3_link)


def test_web_form_shows_storage_unavailable_and_creates_nothing(client, user, task_queue, s3_link):  # noqa: F811
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(user)
    s3_link.mode = "down"

    response = client.post("/new/", {"prompt": "the fox looks up", "mode": "image", "tier": "pro", "duration": "6",
                                     "resolution": "1080p", "fps": "25", "generate_audio": "on", "project": "",
                                     "idempotency_key": "key-1",
                                     "image": SimpleUploadedFile("start.png", png_bytes(), content_type="image/png")})

    assert response.status_code == 200
    assert b"storage is unavailable right now" in response.content and b'class="errorlist nonfield"' in response.content
    assert_nothing_created(s3_link)
