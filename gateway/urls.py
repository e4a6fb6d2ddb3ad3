"""Routes under /fal/ (README, "The fal-compatible gateway"). Included at `fal/`; the proxy resolves
targets against these same patterns, so a queue URL's path (`/fal-ai/ltx-2/requests/…`) maps
straight onto them."""
from django.urls import path, re_path

from gateway import proxy, views

REQUEST = r"^(?P<app>.+?)/requests/(?P<request_id>[^/]+)"

app_name = "gateway"
urlpatterns = [
    path("proxy", proxy.proxy, name="proxy"),
    path("proxy/", proxy.proxy),
    path(".well-known/jwks.json", views.jwks, name="jwks"),
    path("storage/upload/initiate", views.upload_start, name="upload-initiate"),
    path("storage/upload/initiate-multipart", views.upload_start_multipart),
    path("storage/upload/put/<str:token>", views.upload_put, name="upload-put"),
    path("files/<uuid:upload_id>/<str:file_name>", views.upload_file, name="upload-file"),
    re_path(REQUEST + r"/status/stream/?$", views.status_stream, name="status-stream"),
    re_path(REQUEST + r"/status/?$", views.status, name="status"),
    re_path(REQUEST + r"/cancel/?$", views.cancel, name="cancel"),
    re_path(REQUEST + r"/?$", views.result, name="result"),
    re_path(r"^(?P<model_id>.+)$", views.submit, name="submit"),
]
