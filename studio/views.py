"""Project-wide error pages: JSON in the API's error shape under /api/, Django's pages elsewhere."""
from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return request.path.startswith(("/api/", "/fal/"))


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"code": "not_found", "message": "No such resource.", "details": {}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"code": "server_error", "message": "Something went wrong on our side; it was logged.",
                             "details": {}}, status=500)
    return defaults.server_error(request)
