from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api.fal_webhooks import fal_webhook
from moderation.dashboard import dashboard_view
from studio import health, metrics

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("livez", health.livez, name="livez"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/", include("web.account_urls")),
    path("api/v1/fal-webhooks/<str:token>", fal_webhook, name="fal-webhook"),
    path("api/v1/", include("api.urls")),
    path("api/v1/", include("api.webhook_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("fal/", include("gateway.urls")),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("web.urls")),
]

handler400 = "studio.views.bad_request"
handler404 = "studio.views.page_not_found"
handler500 = "studio.views.server_error"
