"""One error shape for the whole API: `{"code", "message", "details"}` with the right status code.

Domain errors raised by services are mapped here, in one place, so views stay thin.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.keys import TooManyApiKeys
from api.pagination import InvalidCursor
from core.text import text_shown
from generations.images import ImageRejected, ImageTooLarge
from generations.ltx import InputError
from generations.services.cancel import NotCancelable
from generations.services.create import IdempotencyConflict, NotRetryable, OwnerSuspended, StorageUnavailable
from generations.services.delete import StillActive
from generations.services.projects import ProjectBusy, ProjectNameRefused
from moderation.services import ReportRefused
from storage.quotas import QuotaExceeded

INPUT_FIELDS_OUTSIDE_INPUT = {"model", "project", "input", "webhook_url", "Idempotency-Key", "source"}


class UploadRejected(Exception):
    """A multipart image upload (`field`: `image`, `end_image`) that `generations.images` refused."""

    def __init__(self, field: str, error: ImageRejected) -> None:
        self.field = field
        self.error = error
        super().__init__(str(error))


class ErrorSerializer(serializers.Serializer):
    """Every error the API returns."""

    code = serializers.CharField(help_text="machine-readable: validation_error, quota_exceeded, not_found, …")
    message = serializers.CharField(help_text="a sentence for people")
    details = serializers.JSONField(help_text="per-field messages (validation) or the limit's figures (quota)")


def error(status_code: int, code: str, message: str, details: Any = None, headers: dict | None = None) -> Response:
    """The error answer. Its texts may echo what the client sent (DRF's "\"x\" is not a valid choice"),
    so lone surrogates are escaped: unescaped, they would fail the UTF-8 rendering with a 500."""
    return Response({"code": code, "message": text_shown(message), "details": _shown(details or {})},
                    status=status_code, headers=headers)


def _shown(details: Any) -> Any:
    if isinstance(details, str):
        return text_shown(details)
    if isinstance(details, dict):
        return {_shown(key): _shown(value) for key, value in details.items()}
    if isinstance(details, list):
        return [_shown(item) for item in details]
    return details


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, InputError):
        details = {(f if f in INPUT_FIELDS_OUTSIDE_INPUT else f"input.{f}"): m for f, m in exc.errors.items()}
        return error(422, "validation_error", "The request has invalid fields: " + ", ".join(details) + ".", details)
    if isinstance(exc, UploadRejected):
        status_code, code = (413, "payload_too_large") if isinstance(exc.error, ImageTooLarge) else (
            415, "unsupported_media_type")
        return error(status_code, code, str(exc), {exc.field: str(exc)})
    if isinstance(exc, ImageTooLarge):
        return error(413, "payload_too_large", str(exc), {"image": str(exc)})
    if isinstance(exc, ImageRejected):
        return error(415, "unsupported_media_type", str(exc), {"image": str(exc)})
    if isinstance(exc, QuotaExceeded):
        return error(403, "quota_exceeded", str(exc), exc.as_dict())
    if isinstance(exc, OwnerSuspended):
        return error(403, "account_suspended", str(exc))
    if isinstance(exc, ProjectNameRefused):
        return error(422, "validation_error", "The request has invalid fields: name.", {"name": str(exc)})
    if isinstance(exc, StorageUnavailable):
        return error(503, "storage_unavailable", str(exc), headers={"Retry-After": str(exc.RETRY_AFTER_SECONDS)})
    if isinstance(exc, ReportRefused):
        return error(422, "validation_error", "The request has invalid fields: reason.", {"reason": str(exc)})
    if isinstance(exc, TooManyApiKeys):
        return error(409, "too_many_keys", str(exc), exc.as_dict())
    if isinstance(exc, IdempotencyConflict):
        return error(409, "idempotency_conflict", str(exc), {"generation": str(exc.generation.pk)})
    for domain_error, code in ((NotCancelable, "not_cancelable"), (NotRetryable, "not_retryable"),
                               (StillActive, "still_active"), (ProjectBusy, "project_busy")):
        if isinstance(exc, domain_error):
            return error(409, code, str(exc))
    if isinstance(exc, InvalidCursor):
        return error(400, "invalid_cursor", str(exc.detail), {"cursor": str(exc.detail)})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: let Django report it
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        return error(422, "validation_error", "The request has invalid fields: " + ", ".join(details) + ".", details)
    code = {
        exceptions.ParseError: "parse_error", exceptions.NotAuthenticated: "not_authenticated",
        exceptions.AuthenticationFailed: "authentication_failed", exceptions.PermissionDenied: "permission_denied",
        exceptions.NotFound: "not_found", exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.UnsupportedMediaType: "unsupported_media_type", exceptions.Throttled: "throttled",
        exceptions.NotAcceptable: "not_acceptable",
    }.get(type(exc), getattr(exc, "default_code", "error"))
    detail = getattr(exc, "detail", None)
    message = str(detail) if isinstance(detail, str) else str(exc)
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    return error(response.status_code, code, message, headers=headers)


def _flatten(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error detail as {"a.b": "message"}; non-field errors under "request"."""
    if isinstance(detail, dict):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            name = "request" if key == "non_field_errors" else str(key)
            flat.update(_flatten(value, f"{prefix}{name}." if prefix or name else ""))
        return {k.rstrip("."): v for k, v in flat.items()}
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix.rstrip(".") or "request": " ".join(str(item) for item in detail)}
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_flatten(item, f"{prefix}{index}."))
        return flat
    return {prefix.rstrip(".") or "request": str(detail)}


ERROR_RESPONSES = {
    400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 405: ErrorSerializer,
    409: ErrorSerializer, 413: ErrorSerializer, 415: ErrorSerializer, 422: ErrorSerializer, 429: ErrorSerializer,
}
