"""DRF authentication by API key: `Authorization: Bearer <key>` or `Authorization: Key <key>`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.keys import api_key_authenticate, api_key_in

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.request import Request

    from accounts.models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        raw = api_key_in(request)
        if raw is None:
            return None
        if not raw:
            raise exceptions.AuthenticationFailed("The Authorization header has no key after the scheme.")
        key = api_key_authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or suspended API key.")
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes API-key auth in the OpenAPI schema (HTTP bearer; `Key <key>` works the same)."""

    target_class = "api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "An API key: `Authorization: Bearer <key>` (or `Authorization: Key <key>`)."}
