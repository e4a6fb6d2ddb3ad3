"""Which kind of storage is configured, and where a stored object can be reached from here."""
from __future__ import annotations

from django.core.files.storage import FileSystemStorage, default_storage


def is_filesystem() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def object_location(key: str) -> str:
    """A local path (filesystem) or a short-lived presigned URL (S3) for the object `key`."""
    return default_storage.path(key) if is_filesystem() else default_storage.url(key)
