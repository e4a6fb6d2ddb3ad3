"""DRF authentication by API key: `Authorization: Bearer <key>` or `Authorization: Key <key>`."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.keys import api_key_authenticate, api_key_in


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = api_key_in(request)
        if raw is None:
            return None
        if not raw:
            raise exceptions.AuthenticationFailed("The Authorization header has no key after the scheme.")
        key = api_key_authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or suspended API key.")
        return key.user, key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API-key auth in the OpenAPI schema (HTTP bearer; `Key <key>` works the same)."""

    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API key: `Authorization: Bearer <key>` (or `Authorization: Key <key>`)."}
