"""The REST API's throttle classes: DRF's hooks onto core/throttle.py (rates per user, shared by all
of a user's keys, their session and the gateway; per address for anonymous calls)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import BaseThrottle

from core.throttle import rate_take, user_rate_take

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from accounts.models import ApiKey


class _PerCaller(BaseThrottle):
    scope = ""

    def allow_request(self, request: Request, view: APIView) -> bool:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self._allowed(rate_take(self.scope, ident))

    def allow_key(self, key: ApiKey) -> bool:
        """`allow_request` for a call made with `key` (counted against its user), for answers given
        without DRF's Request."""
        return self._allowed(user_rate_take(self.scope, key.user_id))

    def _allowed(self, wait: float) -> bool:
        self._wait = wait
        return wait == 0

    def wait(self) -> float | None:
        """Seconds until the next call is allowed (after allow_request said no)."""
        return self._wait


class ApiThrottle(_PerCaller):
    """Every API call."""

    scope = "api"


class CreateThrottle(_PerCaller):
    """Creating generations (each one costs money)."""

    scope = "create"

    def allow_request(self, request: Request, view: APIView) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
