"""Files: fal's storage upload flow, its CDN upload, and file serving like its CDN (with Range).

    POST /storage/upload/initiate?storage_type=fal-cdn-v3|gcs   -> {upload_url, file_url}
    PUT  /storage/upload/put/{token}?signature=... raw bytes (no auth; signed URL)
    POST /storage/auth/token?storage_type=fal-cdn-v3            -> {token, token_type, base_url, expires_at}
    POST /files/upload                             raw bytes, Bearer token -> {access_url}
    GET|HEAD /files/{token}/{file_name}            CDN-style file serving with Range (no auth)

Uploads and rendered videos are files in the scratch folder; ``FileStore`` remembers which token
serves which. The route functions take the HTTP handler (``falsim/http.py``) they answer on.
Faults here: ``download_truncated`` and ``download_slow`` (``falsim/faults.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import quote

from falsim.schema import error_item

if TYPE_CHECKING:
    from falsim.http import Handler


@dataclass(eq=False)
class StoredFile:
    path: str
    content_type: str
    file_name: str


class FileStore:
    """The files the simulator serves by token, uploads not yet put, and CDN upload tokens.

    ``uploads_dir`` is set when the simulator starts (its scratch folder exists from then on).
    """

    def __init__(self) -> None:
        self.uploads_dir: str | None = None
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._pending_uploads: dict[str, StoredFile] = {}
        self._cdn_tokens: dict[str, float] = {}
        self._upload_secret = secrets.token_bytes(32)

    def upload_path(self, token: str) -> str:
        assert self.uploads_dir is not None, "the simulator has not started"
        return os.path.join(self.uploads_dir, token)

    def new_upload(self, file_name: str, content_type: str, base_url: str) -> dict:
        token = secrets.token_hex(16)
        with self._lock:
            self._pending_uploads[token] = StoredFile(self.upload_path(token), content_type, file_name)
        return {
            "upload_url": f"{base_url}/storage/upload/put/{token}?signature={self._upload_signature(token)}",
            "file_url": f"{base_url}/files/{token}/{quote(file_name)}",
        }

    def _upload_signature(self, token: str) -> str:
        return hmac.new(self._upload_secret, token.encode(), hashlib.sha256).hexdigest()[:32]

    def check_upload_signature(self, token: str, signature: str) -> bool:
        return hmac.compare_digest(self._upload_signature(token), signature or "")

    def pending_upload(self, token: str) -> StoredFile | None:
        with self._lock:
            return self._pending_uploads.get(token) or self._files.get(token)

    def store(self, token: str, entry: StoredFile) -> None:
        with self._lock:
            self._pending_uploads.pop(token, None)
            self._files[token] = entry

    def new_cdn_token(self) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(24)
        expires = datetime.now(UTC) + timedelta(hours=1)
        with self._lock:
            self._cdn_tokens[token] = expires.timestamp()
        return token, expires

    def cdn_token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._cdn_tokens.get(token)
        return expires is not None and expires > time.time()

    def get(self, token: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(token)


def start_image(image_url: str, files: FileStore) -> tuple[str, bytes | None]:
    """Where an input image (start or end) comes from, and its bytes when they are at hand (data URI, our own
    /files/)."""
    if image_url.startswith("data:"):
        try:
            return "data_uri", base64.b64decode(image_url.split(",", 1)[1], validate=False)
        except (ValueError, IndexError):
            return "data_uri", None
    match = re.match(r"^https?://[^/]+/files/([^/]+)/", image_url)
    if match:
        entry = files.get(match.group(1))
        if entry is not None:
            try:
                with open(entry.path, "rb") as handle:
                    return "uploaded", handle.read()
            except OSError:
                return "uploaded", None
    return "url", None  # fetched (briefly) when the request runs


# --- routes --------------------------------------------------------------------------------------


def _storage_type_ok(http: Handler, allowed: tuple[str, ...] = ("fal-cdn-v3", "gcs")) -> bool:
    storage_type = (http.query.get("storage_type") or ["fal-cdn-v3"])[-1]
    if storage_type in allowed:
        return True
    http.send_json(400, {"detail": f"Unsupported storage type '{storage_type}'"})
    return False


def storage_initiate(http: Handler) -> None:
    if not http.key_ok() or not _storage_type_ok(http) or http.account_locked():
        return
    ok, body = http.read_json()
    if not ok:
        return
    if not isinstance(body, dict):
        return http.send_json(422, {"detail": [error_item(None, "Input should be a valid dictionary",
                                                          "model_attributes_type")]})
    file_name = _safe_file_name(body.get("file_name"))
    content_type = body.get("content_type") or "application/octet-stream"
    if not isinstance(content_type, str):
        return http.send_json(422, {"detail": [error_item("content_type", "Input should be a valid string",
                                                          "string_type")]})
    http.send_json(200, http.sim.files.new_upload(file_name, content_type, http.base_url()))


def storage_put(http: Handler, token: str) -> None:
    files = http.sim.files
    entry = files.pending_upload(token)
    if entry is None:
        return http.send_json(404, {"detail": "Upload not found"})
    if not files.check_upload_signature(token, (http.query.get("signature") or [""])[-1]):
        return http.send_json(403, {"detail": "Invalid upload signature"})
    content_type = http.headers.get("Content-Type") or entry.content_type
    _save_body(http, entry.path)
    files.store(token, StoredFile(entry.path, content_type, entry.file_name))
    http.write_response(200, [("ETag", f'"{token}"')])


def storage_token(http: Handler) -> None:
    if not http.key_ok() or not _storage_type_ok(http, ("fal-cdn-v3",)) or http.account_locked():
        return
    http.read_body()
    token, expires = http.sim.files.new_cdn_token()
    http.send_json(200, {"token": token, "token_type": "Bearer", "base_url": http.base_url(),
                         "expires_at": expires.isoformat()})


def cdn_upload(http: Handler) -> None:
    files = http.sim.files
    header = http.headers.get("Authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if not (scheme.lower() == "bearer" and files.cdn_token_valid(credentials.strip())):
        if not http.key_ok():
            return
    file_name = _safe_file_name(http.headers.get("X-Fal-File-Name"))
    content_type = http.headers.get("Content-Type") or "application/octet-stream"
    token = secrets.token_hex(16)
    path = files.upload_path(token)
    size = _save_body(http, path)
    files.store(token, StoredFile(path, content_type, file_name))
    url = f"{http.base_url()}/files/{token}/{quote(file_name)}"
    http.send_json(200, {"access_url": url, "content_type": content_type, "file_name": file_name, "file_size": size})


def _save_body(http: Handler, path: str) -> int:
    size = 0
    partial = path + ".part"
    with open(partial, "wb") as out:
        for chunk in http.iter_body():
            out.write(chunk)
            size += len(chunk)
    os.replace(partial, path)
    return size


def serve_file(http: Handler, token: str, name: str) -> None:
    entry = http.sim.files.get(token)
    if entry is None or (name and name != entry.file_name):
        return http.send_json(404, {"detail": "File not found"})
    try:
        handle = open(entry.path, "rb")
    except OSError:
        return http.send_json(404, {"detail": "File not found"})
    head_only = http.command == "HEAD"
    with handle:
        size = os.fstat(handle.fileno()).st_size
        headers = [("Content-Type", entry.content_type), ("Accept-Ranges", "bytes"),
                   ("ETag", f'"{token}-{size}"'), ("Cache-Control", "public, max-age=3600"),
                   ("Access-Control-Allow-Origin", "*")]
        byte_range = _parse_range(http.headers.get("Range"), size)
        if byte_range == "unsatisfiable":
            return http.write_response(416, headers + [("Content-Range", f"bytes */{size}")], head_only=head_only)
        status, start, end = 200, 0, size - 1
        if byte_range is not None:
            status, (start, end) = 206, byte_range
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        length = end - start + 1 if size else 0
        http.write_response(status, headers, head_only=True, content_length=length)
        if head_only:
            return
        handle.seek(start)
        _send_file(http, handle, length)


def _send_file(http: Handler, handle: BinaryIO, length: int) -> None:
    """Send ``length`` bytes, unless a download fault cuts them short or throttles them."""
    sim = http.sim
    remaining, block = length, 256 * 1024
    if sim.injector.roll("download_truncated"):
        # The full Content-Length was announced; closing early leaves the client short.
        remaining, http.close_connection = length // 2, True
    rate = sim.download_rate_bytes if sim.injector.roll("download_slow") else None
    if rate is not None:
        block = max(1, min(block, rate // 10))  # ~10 writes a second keeps the pace smooth
    started, sent = time.monotonic(), 0
    while remaining > 0:
        chunk = handle.read(min(remaining, block))
        if not chunk:
            break
        sent += len(chunk)
        if rate is not None:
            # Each chunk leaves no earlier than its share of the rate: N bytes take >= N/rate s.
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0 and sim.stopping.wait(ahead):
                http.close_connection = True
                return
        http.wfile.write(chunk)
        remaining -= len(chunk)


def _safe_file_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        return "upload.bin"
    name = os.path.basename(value.strip().replace("\\", "/"))
    return name or "upload.bin"


def _parse_range(header: str | None, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """A single byte range -> (start, end) inclusive; None = serve whole; 'unsatisfiable'."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None  # malformed or multi-range: ignoring Range is allowed
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)
