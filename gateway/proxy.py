"""`/fal/proxy`: the server-proxy protocol of `@fal-ai/server-proxy` (README, "The fal-compatible gateway").

fal's JS client with `proxyUrl` sends every call here, same method and body, with the URL it
meant in `x-fal-target-url`. The studio does not forward anything to fal (that would need FAL_KEY
and bypass users and quotas): it maps the target onto its own gateway routes and answers the
call itself. Targets outside fal's queue host and storage upload routes are refused.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from gateway.auth import VIA_PROXY
from gateway.errors import fal_error

TARGET_HEADER = "x-fal-target-url"
QUEUE_HOSTS = ("queue.fal.run", "queue.falrun.com")
STORAGE_HOSTS = ("rest.fal.ai", "rest.alpha.fal.ai")
STORAGE_PATHS = ("/storage/upload/initiate", "/storage/upload/initiate-multipart")
URLCONF = "gateway.urls"


@csrf_exempt
def proxy(request: HttpRequest) -> HttpResponse:
    target = request.headers.get(TARGET_HEADER, "").strip()
    if not target:
        return fal_error(400, f"Invalid request: the {TARGET_HEADER} header is missing.")
    parts = urlsplit(target)
    host = (parts.hostname or "").lower()
    allowed = (host in QUEUE_HOSTS or (host in STORAGE_HOSTS and parts.path in STORAGE_PATHS))
    if parts.scheme != "https" or not allowed:
        return fal_error(400, f"Target {target!r} is not allowed: this studio serves fal's queue "
                              f"(https://queue.fal.run/…) and storage uploads "
                              f"(https://rest.fal.ai/storage/upload/initiate) only.")
    try:
        match = resolve(parts.path, urlconf=URLCONF)
    except Resolver404:
        return fal_error(404, f"Nothing is served at {parts.path!r}.")
    if match.url_name == "proxy":
        return fal_error(400, "The proxy cannot target itself.")
    request.GET = QueryDict(parts.query)
    # The proxy's callers may also use their signed-in session (with the CSRF header).
    request.META[VIA_PROXY] = True
    return match.func(request, *match.args, **match.kwargs)
