"""Serving stored objects to a user who was already allowed to see them.

S3: a redirect to a short-lived presigned URL (S3 answers Range requests itself). Filesystem: a
streamed response with single-range support so browsers can seek.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, cast

from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.utils.http import content_disposition_header

from storage.backend import is_filesystem
from storage.models import StoredObject

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


def serve_object(request: HttpRequest, stored: StoredObject, *, file_name: str,
                 as_attachment: bool) -> HttpResponseBase:
    disposition = content_disposition_header(as_attachment, file_name)
    assert disposition is not None  # None only without a file name
    if not is_filesystem():
        params = {"ResponseContentType": stored.content_type, "ResponseContentDisposition": disposition}
        return HttpResponseRedirect(cast("S3Storage", default_storage).url(stored.key, parameters=params))
    path = default_storage.path(stored.key)
    size = os.path.getsize(path)
    response: HttpResponseBase
    byte_range = _parse_range(request.headers.get("Range", ""), size)
    if byte_range == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if byte_range is None:
        response = FileResponse(open(path, "rb"), content_type=stored.content_type)
    else:
        start, end = byte_range
        response = StreamingHttpResponse(_read(path, start, end), status=206, content_type=stored.content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = disposition
    response["Cache-Control"] = "private, max-age=0"
    return response


def _parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # absent or multi-range: send the whole file (allowed by RFC 9110)
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


def _read(path: str, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
