"""The address a request came from, as far as the studio can trust it."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """REMOTE_ADDR; behind a trusted proxy (STUDIO_TRUST_FORWARDED_HEADERS), the last address in
    X-Forwarded-For, the one that proxy saw. (Earlier entries are whatever the client sent.)"""
    if settings.STUDIO_TRUST_FORWARDED_HEADERS:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
