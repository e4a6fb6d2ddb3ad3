"""Copy finished videos into the studio's own storage: stream a URL to a temp file, then store it.

Contract:
- `download_to_tempfile(url, ...)` streams an HTTP GET (httpx, at most 3 redirects) into a
  `NamedTemporaryFile(delete=False)` in 1 MiB chunks, hashing on the fly, so memory stays bounded
  whatever the size. Checks, in order: the status must be 200 (before any body is read); the
  Content-Type (parameters such as "; charset" ignored, case-insensitive) must be one of
  `allowed_content_types`; a declared Content-Length above `max_bytes` is refused unread; the body
  may not grow past `max_bytes`; the body may not be empty; and the bytes received must equal a
  declared Content-Length.
  The one sniffing rule: a response labelled "application/octet-stream" (or not labelled at all) is
  accepted only when "video/mp4" is allowed and the body looks like MP4 (bytes 4..8 are b"ftyp");
  it is then reported as "video/mp4".
  Every failure deletes the temp file and raises `TransferError` whose `.code` is one of
  "http_status" (non-200, or too many redirects), "content_type", "too_large", "empty",
  "size_mismatch" (the peer ended the body cleanly, short of or past its Content-Length: a lying
  or truncated response) or "network" (connect/read errors, resets, timeouts, broken framing).
  Errors writing the local temp file (OSError) propagate unchanged.
- `store_file(key, path, content_type=...)` / `store_bytes(key, data, content_type=...)` write to
  `default_storage` under exactly `key`, replacing whatever is there (keys are deterministic, so a
  rerun must hit the same object, never "key_AbC12.mp4"), and return the stored size read back from
  the storage; a read-back size different from the source raises TransferError("size_mismatch")
  after removing the bad object.
  - S3Storage: boto3 `upload_file` with a bounded TransferConfig (8 MiB parts, 4 threads, at most 4
    parts buffered), ContentType set, key prefixed with the storage's `location`. boto3 aborts the
    multipart upload itself when a part fails (tests/storage/test_transfer.py checks this against moto).
  - FileSystemStorage: written to a temp file in the destination folder, fsynced, then `os.replace`d
    onto the final path, so readers see the old file or the new one, never a partial one.
    The content type is not stored (the filesystem has no place for it).
  - Any other backend (e.g. Django's InMemoryStorage in tests): delete, then `save`.
  Storage errors (`STORAGE_ERRORS`: botocore/boto3 exceptions, OSError) propagate unchanged: they are
  worth retrying once the storage is back.
- Keys are relative POSIX paths without "." or ".." segments, backslashes or NUL; anything else raises
  `SuspiciousFileOperation` before touching storage. On the filesystem `storage.path()` also keeps
  every key inside MEDIA_ROOT.
- `delete_key(key)` is idempotent; `key_exists(key)` tells whether an object (a file, on disk) exists.
"""
from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import posixpath
import shutil
import ssl
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

import httpx
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.utils._os import safe_makedirs  # type: ignore[attr-defined]  # private; django-stubs omits it

from storage.backend import is_s3

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
CHUNK_SIZE = 1 * MiB
MAX_REDIRECTS = 3
MP4_CONTENT_TYPE = "video/mp4"
UNLABELLED_CONTENT_TYPES = {"", "application/octet-stream"}

# Upload tuning for S3 (measured on moto's S3 server): 8 MiB parts and at most 4 of them in memory keep the
# uploader's RSS growth small for any file size.
S3_MULTIPART_THRESHOLD = 8 * MiB
S3_MULTIPART_CHUNKSIZE = 8 * MiB
S3_MAX_CONCURRENCY = 4
S3_MAX_IN_MEMORY_UPLOAD_CHUNKS = 4


# What a store may raise when the storage itself is failing (down, timing out, refusing, disk full).
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError, Boto3Error)


class TransferError(Exception):
    """A download or store failed; `code` is a short machine string (see the module docstring)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    content_type: str


# --- download -------------------------------------------------------------------------------


def download_to_tempfile(
    url: str,
    *,
    max_bytes: int,
    allowed_content_types: Collection[str],
    timeout: float = 30.0,
    client: httpx.Client | None = None,
    dir: str | None = None,
) -> Downloaded:
    allowed = {media_type.strip().lower() for media_type in allowed_content_types}
    own_client = client is None
    if client is None:
        client = httpx.Client(timeout=timeout, verify=_tls_context())
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=dir, prefix="studio-download-", suffix=".part")
    try:
        with tmp:
            downloaded = _receive(client, url, tmp, max_bytes=max_bytes, allowed=allowed, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        Path(tmp.name).unlink(missing_ok=True)
        raise TransferError("network", f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
    finally:
        if own_client:
            client.close()
    logger.debug("downloaded %s: %d bytes, %s", url, downloaded.size, downloaded.content_type)
    return downloaded


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # httpx loads the CA bundle into a fresh SSL context for every client (~17 ms, more than the
    # rest of a small download); one shared context is thread-safe and enough.
    return httpx.create_ssl_context()


def _receive(
    client: httpx.Client, url: str, out: IO[bytes], *, max_bytes: int, allowed: set[str], timeout: float
) -> Downloaded:
    response = _get_following_redirects(client, url, timeout)
    try:
        if response.status_code != 200:
            raise TransferError("http_status", f"GET {url} answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        sniff_mp4 = content_type in UNLABELLED_CONTENT_TYPES and MP4_CONTENT_TYPE in allowed
        if content_type not in allowed and not sniff_mp4:
            raise TransferError(
                "content_type", f"{url} is {content_type or 'unlabelled'!r}, expected one of {sorted(allowed)}"
            )
        declared = _content_length(response)
        if declared is not None and declared > max_bytes:
            raise TransferError("too_large", f"{url} declares {declared} bytes, the limit is {max_bytes}")

        digest = hashlib.sha256()
        head = b""
        received = 0
        try:
            for chunk in response.iter_bytes(CHUNK_SIZE):
                received += len(chunk)
                if received > max_bytes:
                    raise TransferError("too_large", f"{url} sent more than the limit of {max_bytes} bytes")
                if sniff_mp4 and len(head) < 8:
                    head += chunk[: 8 - len(head)]
                    if len(head) == 8:
                        _require_mp4(head, url)
                digest.update(chunk)
                out.write(chunk)
        except httpx.RemoteProtocolError as exc:
            # In a Content-Length-framed body this means the peer closed the connection cleanly before
            # the declared length: the response lied about its size (or a proxy cut it). Resets and
            # timeouts arrive as other exception types and count as "network".
            if declared is None:
                raise
            raise TransferError("size_mismatch", f"{url} declared {declared} bytes but ended early: {exc}") from exc

        if received == 0:
            raise TransferError("empty", f"{url} sent an empty body")
        if sniff_mp4:
            _require_mp4(head, url)
            content_type = MP4_CONTENT_TYPE
        # The bytes on the wire (before any Content-Encoding is undone) are what the header counts.
        if declared is not None and response.num_bytes_downloaded != declared:
            raise TransferError(
                "size_mismatch", f"{url} declared {declared} bytes but sent {response.num_bytes_downloaded}"
            )
    finally:
        response.close()
    out.flush()
    return Downloaded(path=Path(out.name), size=received, sha256=digest.hexdigest(), content_type=content_type)


def _get_following_redirects(client: httpx.Client, url: str, timeout: float) -> httpx.Response:
    # Redirects are followed here rather than by httpx so the limit holds for a caller's client too.
    # identity encoding: the stored bytes must be the file itself, and Content-Length must describe them.
    request = client.build_request("GET", url, headers={"Accept-Encoding": "identity"}, timeout=timeout)
    for _ in range(MAX_REDIRECTS + 1):
        response = client.send(request, stream=True, follow_redirects=False)
        if not response.is_redirect or response.next_request is None:
            return response
        request = response.next_request
        response.close()
    raise TransferError("http_status", f"GET {url} redirected more than {MAX_REDIRECTS} times")


def _content_length(response: httpx.Response) -> int | None:
    if "transfer-encoding" in response.headers:
        return None  # the framing is chunked; a Content-Length alongside it is meaningless (RFC 9112 §6.3)
    raw = response.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise TransferError("network", f"{response.url} sent an invalid Content-Length {raw!r}") from None


def _require_mp4(head: bytes, url: str) -> None:
    if head[4:8] != b"ftyp":
        raise TransferError("content_type", f"{url} is labelled application/octet-stream but is not an MP4 file")


# --- store ----------------------------------------------------------------------------------


def store_file(key: str, path: Path, *, content_type: str) -> int:
    _check_key(key)
    path = Path(path)
    expected = path.stat().st_size
    storage = default_storage
    if is_s3(storage):
        stored = _s3_store(storage, key, content_type, file_path=path)
    elif isinstance(storage, FileSystemStorage):
        with path.open("rb") as source:
            stored = _filesystem_store(storage, key, source)
    else:
        with path.open("rb") as source:
            stored = _generic_store(storage, key, source)
    _verify_size(key, expected, stored)
    logger.debug("stored %s: %d bytes", key, stored)
    return stored


def store_bytes(key: str, data: bytes, *, content_type: str) -> int:
    _check_key(key)
    storage = default_storage
    if is_s3(storage):
        stored = _s3_store(storage, key, content_type, data=data)
    elif isinstance(storage, FileSystemStorage):
        stored = _filesystem_store(storage, key, io.BytesIO(data))
    else:
        stored = _generic_store(storage, key, io.BytesIO(data))
    _verify_size(key, len(data), stored)
    return stored


def delete_key(key: str) -> None:
    _check_key(key)
    default_storage.delete(key)  # both FileSystemStorage and S3Storage treat a missing key as done


def key_exists(key: str) -> bool:
    _check_key(key)
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        return os.path.isfile(storage.path(key))
    return storage.exists(key)


def _check_key(key: str) -> None:
    segments = key.split("/") if isinstance(key, str) else []
    if (
        not segments
        or any(segment in ("", ".", "..") for segment in segments)
        or "\\" in key
        or "\x00" in key
    ):
        raise SuspiciousFileOperation(f"invalid storage key {key!r}: expected a relative path like 'a/b.mp4'")


def _verify_size(key: str, expected: int, stored: int) -> None:
    if stored != expected:
        delete_key(key)
        raise TransferError("size_mismatch", f"{key}: stored {stored} bytes, expected {expected}; removed it")


def _s3_transfer_config() -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=S3_MULTIPART_THRESHOLD,
        multipart_chunksize=S3_MULTIPART_CHUNKSIZE,
        max_concurrency=S3_MAX_CONCURRENCY,
        use_threads=True,
    )
    config.max_in_memory_upload_chunks = S3_MAX_IN_MEMORY_UPLOAD_CHUNKS  # not a constructor argument
    return config


def _s3_store(storage: S3Storage, key: str, content_type: str, *, file_path: Path | None = None,
              data: bytes | None = None) -> int:
    client = storage.connection.meta.client
    name = posixpath.join(storage.location, key) if storage.location else key
    params = storage.get_object_parameters(name)  # AWS_S3_OBJECT_PARAMETERS, e.g. CacheControl
    params["ContentType"] = content_type
    if "ACL" not in params and storage.default_acl:
        params["ACL"] = storage.default_acl
    if file_path is not None:
        # upload_file reads parts from the path itself; upload_fileobj would buffer them in memory.
        client.upload_file(str(file_path), storage.bucket_name, name, ExtraArgs=params, Config=_s3_transfer_config())
    else:
        client.put_object(Bucket=storage.bucket_name, Key=name, Body=data, **params)
    return client.head_object(Bucket=storage.bucket_name, Key=name)["ContentLength"]


def _filesystem_store(storage: FileSystemStorage, key: str, source: BinaryIO) -> int:
    final = Path(storage.path(key))  # raises SuspiciousFileOperation outside MEDIA_ROOT
    if storage.directory_permissions_mode is not None:
        safe_makedirs(final.parent, storage.directory_permissions_mode, exist_ok=True)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK_SIZE)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates 0600; give the file the mode Django's own saves would give it.
        os.chmod(tmp_name, storage.file_permissions_mode if storage.file_permissions_mode is not None else 0o644)
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(final.parent)
    return final.stat().st_size


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _generic_store(storage: Storage, key: str, source: BinaryIO) -> int:
    storage.delete(key)
    saved_as = storage.save(key, File(source, name=posixpath.basename(key)))
    if saved_as != key:
        storage.delete(saved_as)
        raise RuntimeError(f"{type(storage).__name__} saved {key!r} as {saved_as!r}: it must allow overwriting")
    return storage.size(key)
