"""Throttling per API key (or per signed-in user, or per address for anonymous calls); rates in settings.

A rate "N/period" allows a burst of N calls, then one call every period/N (the generic cell rate
algorithm). Its state is one number per caller, so checking it costs the same however busy the
caller is; DRF's default keeps every call's timestamp of the last period and re-pickles that
list on every call, which made a busy poller's every request slower. Where the number lives
(this process, or Redis for all of them) is throttle_store's business.
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
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"  # as allow_key has it
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        return self._allow(self.get_cache_key(request, view))

    def allow_key(self, key: ApiKey) -> bool:
        """`allow_request` for a call made with `key`, for answers given without DRF's Request."""
        return self._allow(self.cache_format % {"scope": self.scope, "ident": f"key:{key.pk}"})

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
