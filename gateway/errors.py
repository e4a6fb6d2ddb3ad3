"""The gateway's error bodies, in fal's shapes (fal's 422 detail list, or a flat `detail`)."""
from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def fal_error(http_status: int, detail: Any, **extra: Any) -> JsonResponse:
    """fal's error body. A text `detail` is repeated as `message`, which fal's JS client shows."""
    message = {"message": detail} if isinstance(detail, str) else {}
    return JsonResponse({"detail": detail, **message, **extra}, status=http_status)


def validation_error(errors: dict[str, str], *, where: str = "body") -> JsonResponse:
    """fal's 422: one `{loc, msg, type}` per bad field, plus a one-line `message` for the JS client."""
    detail = [{"loc": [where, field], "msg": message, "type": "value_error"} for field, message in errors.items()]
    message = "; ".join(f"{field}: {text}" for field, text in errors.items())
    return JsonResponse({"detail": detail, "message": message}, status=422)
