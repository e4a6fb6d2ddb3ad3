"""Signed, expiring studio URLs for a generation's video and poster (for API clients and webhooks).

The link carries no credentials: it is a signed statement that its holder may fetch this file
until it expires. The studio re-checks on every request that the file still exists and is not
hidden, then redirects to storage (S3) or streams it (filesystem), so hiding or deleting takes
effect at once.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils.encoding import iri_to_uri

SALT = "generations.media"
KINDS = ("video", "poster")


def url_base(request: HttpRequest | None = None) -> str:
    """What the studio's absolute URLs start with: `STUDIO_BASE_URL`, else the request's own scheme
    and host."""
    if settings.STUDIO_BASE_URL:
        return settings.STUDIO_BASE_URL
    if request is not None:
        return f"{request.scheme}://{request.get_host()}"
    return "http://127.0.0.1:8000"


def absolute_url(path: str, request: HttpRequest | None = None) -> str:
    """`url_base` + path (an absolute path; characters URLs may not hold are percent-encoded)."""
    return url_base(request) + iri_to_uri(path)


def media_link(generation_id: uuid.UUID | str, kind: str, *, download: bool = False,
               request: HttpRequest | None = None) -> str:
    token = signing.dumps({"g": str(generation_id), "k": kind, "d": int(download)}, salt=SALT, compress=True)
    return absolute_url(reverse("generations:media-link", args=[token]), request)


def media_link_read(token: str) -> tuple[str, str, bool] | None:
    """(generation id, kind, download) of a valid, unexpired link; None otherwise."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.STUDIO_MEDIA_LINK_SECONDS)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("k") not in KINDS:
        return None
    return str(data.get("g")), data["k"], bool(data.get("d"))
