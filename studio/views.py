"""Project-wide error pages: JSON under /api/ (the API's error shape) and /fal/ (fal's
`{"detail": …}`), Django's pages elsewhere."""
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views import defaults


def _json_error(request: HttpRequest, status: int, code: str, message: str) -> JsonResponse | None:
    if request.path.startswith("/fal/"):
        return JsonResponse({"detail": message}, status=status)
    if request.path.startswith("/api/"):
        return JsonResponse({"code": code, "message": message, "details": {}}, status=status)
    return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    """Django's own refusals (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a bad Host header)."""
    return (_json_error(request, 400, "bad_request", "The request could not be read: it is malformed or too large.")
            or defaults.bad_request(request, exception))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    return _json_error(request, 404, "not_found", "No such resource.") or defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponseBase:
    return (_json_error(request, 500, "server_error", "Something went wrong on our side; it was logged.")
            or defaults.server_error(request))
