"""Throttling per user (all of a user's API keys and their session share one budget), or per address
for anonymous calls; rates in settings.

Per user, not per key: keys are free to create, so a rate per key would be multiplied by however
many keys a user made. A rate "N/period" allows a burst of N calls, then one call every period/N
(the generic cell rate algorithm). Its state is one number per caller, so checking it costs the
same however busy the caller is; DRF's default keeps every call's timestamp of the last period and
re-pickles that list on every call, which made a busy poller's every request slower. Where the
number lives (this process, or Redis for all of them) is throttle_store's business.
"""
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey
from generations.api.throttle_store import throttle_take


class _PerCaller(SimpleRateThrottle):
    def get_rate(self):
        # Read at call time (DRF reads it at import), so a settings change takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return self._user_key(request.user.pk)
        return self.cache_format % {"scope": self.scope, "ident": f"ip:{self.get_ident(request)}"}

    def allow_request(self, request, view) -> bool:
        return self._allow(self.get_cache_key(request, view))

    def allow_key(self, key: ApiKey) -> bool:
        """`allow_request` for a call made with `key` (counted against its user), for answers given
        without DRF's Request."""
        return self.allow_user(key.user_id)

    def allow_user(self, user_id: int) -> bool:
        """`allow_request` for a call by user `user_id`, however it authenticated (the gateway's routes)."""
        return self._allow(self._user_key(user_id))

    def _user_key(self, user_id: int) -> str:
        return self.cache_format % {"scope": self.scope, "ident": f"user:{user_id}"}

    def _allow(self, cache_key: str | None) -> bool:
        if self.rate is None or cache_key is None:
            return True
        self._wait = throttle_take(cache_key, interval=self.duration / self.num_requests, period=self.duration)
        return self._wait == 0

    def wait(self) -> float | None:
        """Seconds until the next call is allowed (after allow_request said no)."""
        return max(self._wait, 0.0)


class ApiThrottle(_PerCaller):
    """Every API call."""

    scope = "api"


class CreateThrottle(_PerCaller):
    """Creating generations (each one costs money)."""

    scope = "create"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class UploadThrottle(_PerCaller):
    """The gateway's storage upload flow: each initiate and each PUT."""

    scope = "upload"
