"""Webhook routes; the project includes them under /api/v1/."""
from django.urls import path

from api import webhooks as api

urlpatterns = [
    path("webhooks/", api.WebhookEndpointListView.as_view(), name="api-webhooks"),
    path("webhooks/job-secret/", api.JobWebhookSecretView.as_view(), name="api-webhook-job-secret"),
    path("webhooks/job-secret/rotate/", api.JobWebhookSecretRotateView.as_view(), name="api-webhook-job-secret-rotate"),
    path("webhooks/<uuid:pk>/", api.WebhookEndpointDetailView.as_view(), name="api-webhook"),
    path("webhooks/<uuid:pk>/rotate-secret/", api.WebhookEndpointRotateSecretView.as_view(),
         name="api-webhook-rotate-secret"),
    path("webhooks/<uuid:pk>/ping/", api.WebhookEndpointPingView.as_view(), name="api-webhook-ping"),
    path("webhooks/<uuid:pk>/deliveries/", api.WebhookEndpointDeliveriesView.as_view(), name="api-webhook-deliveries"),
    path("webhook-deliveries/", api.WebhookDeliveryListView.as_view(), name="api-webhook-deliveries-all"),
    path("webhook-deliveries/<uuid:pk>/", api.WebhookDeliveryDetailView.as_view(), name="api-webhook-delivery"),
    path("webhook-deliveries/<uuid:pk>/redeliver/", api.WebhookDeliveryRedeliverView.as_view(),
         name="api-webhook-delivery-redeliver"),
]
