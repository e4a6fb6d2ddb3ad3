"""One upload URL stores at most one object (a claim in the database comes before the store), a
suspended owner's PUT stores nothing, and uploads are rate-limited per user."""
from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from PIL import Image

from generations.models import Upload
from generations.services import uploads as uploads_module
from generations.services.uploads import uploads_purge_expired
from storage.models import StoredObject, UsageEntry
from storage.quotas import usage_for
from storage.reconcile import storage_reconcile
from tests.gateway.test_proxy_and_uploads import initiate, png, put


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (10, 120, 240)).save(buffer, "JPEG")
    return buffer.getvalue()


def upload_objects(backend, upload: Upload) -> list[str]:
    return [key for key in backend.keys() if f"/uploads/{upload.pk}/" in key]


@pytest.mark.django_db(transaction=True)
def test_two_puts_at_once_store_one_object_and_the_loser_gets_409(storage_backend, gw, user, monkeypatch):
    # given: one upload URL, and two PUTs (a PNG and a JPEG: different object keys) that both get
    # past the checks before either stores anything
    urls = initiate(gw).json()
    upload = Upload.objects.get()
    checked = threading.Barrier(2)
    check_image = uploads_module.check_image_bytes

    def check_then_meet(data: bytes):
        image = check_image(data)
        checked.wait(timeout=10)
        return image

    monkeypatch.setattr(uploads_module, "check_image_bytes", check_then_meet)
    answers: dict[str, object] = {}

    def send(name: str, data: bytes, content_type: str) -> None:
        try:
            answers[name] = put(urls["upload_url"], data, content_type)
        finally:
            connection.close()

    # when: both are sent at once
    threads = [threading.Thread(target=send, args=("png", png(), "image/png")),
               threading.Thread(target=send, args=("jpeg", jpeg(), "image/jpeg"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: one 200, one 409 in fal's shape, one object in storage, one ledger line
    codes = sorted(answer.status_code for answer in answers.values())
    assert codes == [200, 409]
    loser = next(answer for answer in answers.values() if answer.status_code == 409)
    assert loser.json()["error_type"] == "upload_already_used" and "new upload" in loser.json()["detail"]
    upload.refresh_from_db()
    assert upload_objects(storage_backend, upload) == [upload.object.key]
    assert StoredObject.objects.count() == 1
    assert [entry.event for entry in UsageEntry.objects.all()] == ["store"]
    assert usage_for(user).bytes == upload.object.size

    # and: after expiry the purge leaves nothing behind
    Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert uploads_purge_expired() == 1
    assert upload_objects(storage_backend, upload) == []
    assert not StoredObject.objects.exists() and usage_for(user).bytes == 0
    assert storage_reconcile().clean


@pytest.mark.django_db
def test_a_put_after_the_upload_was_stored_is_409_and_changes_nothing(gw, media_root):
    urls = initiate(gw).json()
    assert put(urls["upload_url"], png()).status_code == 200
    stored = Upload.objects.get().object

    again = put(urls["upload_url"], jpeg(), "image/jpeg")

    assert again.status_code == 409 and again.json()["error_type"] == "upload_already_used"
    assert Upload.objects.get().object == stored and StoredObject.objects.count() == 1
    assert UsageEntry.objects.count() == 1


@pytest.mark.django_db
def test_a_failed_store_releases_the_claim_so_the_client_can_retry(gw, user, media_root, monkeypatch):
    # given: storage that fails the first write
    urls = initiate(gw).json()
    real_store = uploads_module.store_bytes
    calls = []

    def store_once_failing(key: str, data: bytes, **kwargs):
        calls.append(key)
        if len(calls) == 1:
            raise OSError("No space left on device")
        return real_store(key, data, **kwargs)

    monkeypatch.setattr(uploads_module, "store_bytes", store_once_failing)

    # when: the first PUT meets the failure
    failed = put(urls["upload_url"], png())

    # then: a retryable answer, nothing kept, the upload free again
    assert failed.status_code == 503 and int(failed["Retry-After"]) > 0
    upload = Upload.objects.get()
    assert upload.object is None and upload.claimed_key == ""
    assert not StoredObject.objects.exists() and not UsageEntry.objects.exists()

    # and: the retry stores it
    assert put(urls["upload_url"], png()).status_code == 200
    assert Upload.objects.get().object.key == calls[1] and usage_for(user).bytes == len(png())


@pytest.mark.django_db
def test_the_purge_removes_what_a_put_cut_short_by_a_dead_process_left(storage_backend, gw, user):
    # given: a PUT that claimed the upload and wrote its object, then its process died before recording it
    initiate(gw)
    upload = Upload.objects.get()
    key = f"users/{user.pk}/uploads/{upload.pk}/file.png"
    default_storage.save(key, ContentFile(png()))
    Upload.objects.filter(pk=upload.pk).update(claimed_key=key)
    assert upload_objects(storage_backend, upload) == [key]

    # when: the upload expires and is purged
    Upload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert uploads_purge_expired() == 1

    # then: nothing is left, and no ledger line was ever written
    assert upload_objects(storage_backend, upload) == [] and not Upload.objects.exists()
    assert not UsageEntry.objects.exists()


@pytest.mark.django_db
def test_a_suspended_owners_put_is_refused_and_stores_nothing(gw, user, media_root):
    urls = initiate(gw).json()
    type(user).objects.filter(pk=user.pk).update(is_active=False)

    refused = put(urls["upload_url"], png())

    assert refused.status_code == 403 and refused.json()["error_type"] == "account_suspended"
    assert Upload.objects.get().object is None and Upload.objects.get().claimed_key == ""
    assert not StoredObject.objects.exists() and not UsageEntry.objects.exists()
    assert not [path for path in media_root.rglob("*") if path.is_file()]


@pytest.mark.django_db
def test_initiate_and_put_share_a_per_user_upload_rate(gw, other_gw, user, settings, media_root):
    # given: an upload rate of 3 calls per minute
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "upload": "3/min"}}

    # when: one whole upload (2 calls), one more initiate (3), then its PUT and another initiate
    first = initiate(gw).json()
    assert put(first["upload_url"], png()).status_code == 200
    second = initiate(gw)
    assert second.status_code == 200
    refused_put = put(second.json()["upload_url"], png())
    refused_initiate = initiate(gw, via_proxy=False)

    # then: both refused with 429 and Retry-After in fal's shape; the refused PUT stored nothing
    for refused in (refused_put, refused_initiate):
        assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
        assert refused.json()["error_type"] == "rate_limited"
    assert Upload.objects.filter(owner=user).count() == 2
    assert StoredObject.objects.count() == 1 and UsageEntry.objects.count() == 1
    # another user's uploads are counted apart
    assert initiate(other_gw).status_code == 200

