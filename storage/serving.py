"""Serving stored objects to a user who was already allowed to see them.

S3: a redirect to a short-lived presigned URL (S3 answers Range requests itself). Filesystem: a
streamed response with single-range support so browsers can seek, read a chunk at a time under
either server (core/streaming.py), so a video never sits whole in memory.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal, cast

from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.utils.http import content_disposition_header

from core.streaming import streamed_response
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
    start, end = (0, size - 1) if byte_range is None else byte_range
    response = streamed_response(request, _read(path, start, end), status=200 if byte_range is None else 206,
                                 content_type=stored.content_type)
    if byte_range is not None:
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
