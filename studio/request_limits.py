"""Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE, answered in the shapes of /api/ and /fal/.

Django raises RequestDataTooBig when a view reads a body over the limit and turns it into an HTML
400 page (with DEBUG, a traceback page). Under /api/ it is a 413 `payload_too_large` in the REST
API's error shape, under /fal/ a 413 in fal's `{"detail": …}` shape; other paths keep Django's answer.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RequestDataTooBig):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than {limit:,} bytes, the most this studio accepts."
        if request.path.startswith("/fal/"):
            return JsonResponse({"detail": message, "message": message}, status=413)
        if request.path.startswith("/api/"):
            return JsonResponse({"code": "payload_too_large", "message": message, "details": {"max_bytes": limit}},
                                status=413)
        return None
