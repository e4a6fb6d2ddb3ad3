"""Who is calling the gateway: a studio API key (`Authorization: Key …`, as fal's clients send it),
or — for the server-proxy route only — the signed-in session with Django's CSRF header."""
from __future__ import annotations

from typing import NamedTuple

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from accounts.keys import api_key_authenticate, api_key_in, digest
from accounts.models import ApiKey
from gateway.errors import fal_error
from generations.status_reads import StatusRow, status_row_for, status_row_for_key

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Set in request.META by the server-proxy route (gateway/proxy.py): its callers may use their session.
VIA_PROXY = "studio.via_proxy"


class GatewayAuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail
        super().__init__(detail)

    def response(self) -> HttpResponse:
        return fal_error(self.status, self.detail)


class Caller(NamedTuple):
    user: User
    # With `request_id`: the caller's generation of that id as the status endpoints read it, or None.
    row: StatusRow | None = None


def gateway_caller(request: HttpRequest, *, allow_session: bool = False, request_id: str | None = None) -> Caller:
    """The caller, or GatewayAuthError (401 no or bad key, 403 suspended account or failed CSRF
    check); with `request_id` also the caller's generation of that id as the status endpoints read
    it (None when it is not theirs or does not exist), in the key check's own query."""
    raw = api_key_in(request)
    if raw:
        if request_id is None:
            key, row = api_key_authenticate(raw), None
        else:
            key, row = status_row_for_key(raw, request_id)
        if key is not None:
            return Caller(key.user, row)
        if ApiKey.objects.filter(digest=digest(raw), revoked_at__isnull=True, user__is_active=False).exists():
            raise GatewayAuthError(403, "This studio account is suspended; its API keys do not work. "
                                        "Contact the studio's administrators.")
        raise GatewayAuthError(401, "Invalid or revoked studio API key.")
    if allow_session and request.user.is_authenticated:
        if request.method not in SAFE_METHODS:
            _enforce_csrf(request)
        return Caller(request.user, None if request_id is None else status_row_for(request.user, request_id))
    raise GatewayAuthError(401, "Missing credentials: send `Authorization: Key <your studio API key>`.")


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # the reason, not a 403 response
        return reason


def _not_called(request: HttpRequest) -> HttpResponse:
    """The next handler and the view a bare CSRF check is given; it never calls them."""
    raise AssertionError("a CSRF check does not call the view")


def _enforce_csrf(request: HttpRequest) -> None:
    check = _CsrfCheck(_not_called)
    check.process_request(request)
    reason = check.process_view(request, _not_called, (), {})
    if reason:
        raise GatewayAuthError(403, f"CSRF check failed ({reason}): a session-authenticated call must send "
                                    "Django's CSRF token in the X-CSRFToken header.")
