"""Which kind of storage is configured, and where a stored object can be reached from here."""
from __future__ import annotations

from django.core.files.storage import FileSystemStorage, Storage, default_storage


def is_filesystem() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def is_s3(storage: Storage | None = None) -> bool:
    """Whether `storage` (default: the default storage) is django-storages' S3Storage."""
    from storages.backends.s3 import S3Storage  # imported late: boto3 set-up is not free

    return isinstance(default_storage if storage is None else storage, S3Storage)


def object_location(key: str) -> str:
    """A local path (filesystem) or a short-lived presigned URL (S3) for the object `key`."""
    return default_storage.path(key) if is_filesystem() else default_storage.url(key)
