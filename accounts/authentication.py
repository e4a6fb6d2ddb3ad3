"""DRF authentication by API key: `Authorization: Bearer <key>` or `Authorization: Key <key>`."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.keys import api_key_authenticate

SCHEMES = ("bearer", "key")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() not in SCHEMES:
            return None
        if not raw.strip():
            raise exceptions.AuthenticationFailed("The Authorization header has no key after the scheme.")
        view = request.parser_context.get("view")
        if hasattr(view, "check_api_key"):  # reads what it needs in the key check's own query
            key = view.check_api_key(request, raw)
        else:
            key = api_key_authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or suspended API key.")
        return key.user, key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API-key auth in the OpenAPI schema (HTTP bearer; `Key <key>` works the same)."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API key: `Authorization: Bearer <key>` (or `Authorization: Key <key>`)."}
