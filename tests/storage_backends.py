"""Storage backend fixtures for the whole suite (loaded from tests/conftest.py).

- `storage_backend` runs a test twice: on FileSystemStorage under a temp MEDIA_ROOT (`filesystem_backend`)
  and on S3Storage against a fresh bucket of one moto server per session (`s3_backend`, tests/s3server.py).
  Each gives a `Backend` that lists and reads what really landed in storage, bypassing the code under test.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.s3server import S3Target, create_bucket, delete_bucket, s3_client, s3_server, storages_setting

FILESYSTEM_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


@dataclass
class Backend:
    name: str
    media_root: Path
    s3: S3Target | None = None
    location: str = ""

    def keys(self) -> list[str]:
        """Every stored object (every file, hidden ones included), as keys relative to the storage root."""
        if self.s3 is None:
            return sorted(str(p.relative_to(self.media_root)) for p in self.media_root.rglob("*") if p.is_file())
        prefix = f"{self.location}/" if self.location else ""
        response = s3_client(self.s3).list_objects_v2(Bucket=self.s3.bucket)
        return sorted(item["Key"].removeprefix(prefix) for item in response.get("Contents", []))

    def read(self, key: str) -> bytes:
        if self.s3 is None:
            return (self.media_root / key).read_bytes()
        return s3_client(self.s3).get_object(Bucket=self.s3.bucket, Key=self.object_key(key))["Body"].read()

    def head(self, key: str) -> dict[str, Any]:
        assert self.s3 is not None, "head() is for S3 only"
        return s3_client(self.s3).head_object(Bucket=self.s3.bucket, Key=self.object_key(key))

    def object_key(self, key: str) -> str:
        return f"{self.location}/{key}" if self.location else key


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint_url:
        yield endpoint_url


@pytest.fixture(params=["filesystem", "s3"])
def storage_backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def filesystem_backend(settings, tmp_path: Path) -> Backend:
    media_root = tmp_path / "media"
    media_root.mkdir()
    settings.MEDIA_ROOT = media_root
    settings.STORAGES = FILESYSTEM_STORAGES
    return Backend("filesystem", media_root)


@pytest.fixture
def s3_backend(settings, tmp_path: Path, s3_endpoint: str) -> Iterator[Backend]:
    media_root = tmp_path / "media"  # unused by S3Storage; set so nothing can land in the project's media/
    media_root.mkdir()
    settings.MEDIA_ROOT = media_root
    target = create_bucket(s3_endpoint)
    settings.STORAGES = storages_setting(target)
    try:
        yield Backend("s3", media_root, s3=target)
    finally:
        delete_bucket(target)
