"""Half-written uploads (a worker killed mid-store, or an abort lost to an S3 outage) are removed by the
daily storage task once they are older than any store could take; live ones are not."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest

from storage.abandoned import abandoned_writes_clear
from storage.tasks import storage_reconcile_task
from tests.s3server import s3_client

pytestmark = pytest.mark.django_db


def start_upload(backend, key: str) -> str:
    """Begin a multipart upload and send one part, as a store killed after its first part leaves it."""
    client = s3_client(backend.s3)
    name = backend.object_key(key)
    upload = client.create_multipart_upload(Bucket=backend.s3.bucket, Key=name, ContentType="video/mp4")
    client.upload_part(Bucket=backend.s3.bucket, Key=name, UploadId=upload["UploadId"], PartNumber=1,
                       Body=b"\0" * (5 * 1024 * 1024))
    return upload["UploadId"]


def unfinished(backend) -> list[str]:
    uploads = s3_client(backend.s3).list_multipart_uploads(Bucket=backend.s3.bucket).get("Uploads", [])
    return sorted(upload["Key"] for upload in uploads)


def initiated(backend):
    return s3_client(backend.s3).list_multipart_uploads(Bucket=backend.s3.bucket)["Uploads"][0]["Initiated"]


def test_abandoned_uploads_are_aborted_and_recent_ones_left_alone(s3_backend, monkeypatch):
    start_upload(s3_backend, "users/1/generations/a/video.mp4")
    start_upload(s3_backend, "users/2/generations/b/video.mp4")
    # moto stamps every upload with one fixed date, so "now" is set relative to it.
    started = initiated(s3_backend)

    monkeypatch.setattr("storage.abandoned.timezone.now", lambda: started + timedelta(minutes=59))
    assert abandoned_writes_clear(older_than=timedelta(hours=1)) == []  # could still have a live writer
    assert unfinished(s3_backend) == [s3_backend.object_key("users/1/generations/a/video.mp4"),
                                      s3_backend.object_key("users/2/generations/b/video.mp4")]

    monkeypatch.setattr("storage.abandoned.timezone.now", lambda: started + timedelta(minutes=61))
    aborted = abandoned_writes_clear(older_than=timedelta(hours=1))
    assert sorted(aborted) == [s3_backend.object_key("users/1/generations/a/video.mp4"),
                               s3_backend.object_key("users/2/generations/b/video.mp4")]
    assert unfinished(s3_backend) == []
    assert s3_backend.keys() == []  # nothing became an object


def test_the_daily_storage_task_aborts_abandoned_uploads(s3_backend, monkeypatch):
    start_upload(s3_backend, "users/1/generations/a/video.mp4")
    started = initiated(s3_backend)
    monkeypatch.setattr("storage.abandoned.timezone.now", lambda: started + timedelta(hours=2))
    report = storage_reconcile_task()
    assert report == {"clean": True, "users_with_byte_drift": 0, "missing_objects": 0, "orphaned_objects": 0,
                      "abandoned_writes": 1}
    assert unfinished(s3_backend) == []


def test_partial_files_of_dead_filesystem_stores_are_deleted_and_live_ones_kept(filesystem_backend):
    folder = filesystem_backend.media_root / "users/1/generations/a"
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"finished")
    dead = folder / ".video.mp4.k2j3h4.part"
    dead.write_bytes(b"half")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    live = folder / ".poster.jpg.x8y9z0.part"
    live.write_bytes(b"being written")

    assert abandoned_writes_clear(older_than=timedelta(hours=1)) == ["users/1/generations/a/.video.mp4.k2j3h4.part"]
    assert filesystem_backend.keys() == ["users/1/generations/a/.poster.jpg.x8y9z0.part",
                                         "users/1/generations/a/video.mp4"]
