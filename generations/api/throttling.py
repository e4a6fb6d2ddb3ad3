"""Throttling per API key (or per signed-in user, or per address for anonymous calls); rates in settings."""
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey


class _PerCaller(SimpleRateThrottle):
    def get_rate(self):
        # Read at call time (DRF reads it at import), so a settings change takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


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
