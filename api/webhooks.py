"""REST API for webhooks (under /api/v1/): thin views over webhooks.services, scoped to the caller.

Another user's endpoints and deliveries do not exist for you (404). Secrets are shown once: when an
endpoint is created and when a secret is rotated.

Two kinds of secret sign deliveries:

- each endpoint has its own (`webhooks/{id}/rotate-secret/` replaces it);
- deliveries to a generation's own `webhook_url` are signed with your *job webhook secret*, one per
  user. It is created when first needed; `GET webhooks/job-secret/` shows only its prefix, and
  `POST webhooks/job-secret/rotate/` replaces (or first creates) it and shows the new one once —
  so rotate it once before you rely on it.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ERROR_RESPONSES
from api.pagination import NewestFirst
from api.webhook_serializers import (
    JobWebhookSecretCreatedSerializer,
    JobWebhookSecretSerializer,
    WebhookDeliveryFilterSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointInputSerializer,
    WebhookEndpointSerializer,
)
from core.requests import AuthenticatedRequest
from webhooks import services
from webhooks.models import JobWebhookSecret, WebhookDelivery, WebhookEndpoint

TAG = ["webhooks"]


class EndpointInactiveConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "endpoint_inactive"
    default_detail = "The endpoint is inactive."


def _field_error(exc: services.WebhookFieldError) -> exceptions.ValidationError:
    return exceptions.ValidationError({exc.field: [str(exc)]})


def _endpoint(request: AuthenticatedRequest, pk: uuid.UUID) -> WebhookEndpoint:
    return get_object_or_404(services.webhook_endpoints_for(request.user), pk=pk)


# --- endpoints ------------------------------------------------------------------------------------------

class WebhookEndpointListView(APIView):
    @extend_schema(tags=TAG, responses={200: WebhookEndpointSerializer(many=True), **ERROR_RESPONSES},
                   summary="Your webhook endpoints")
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(WebhookEndpointSerializer(services.webhook_endpoints_for(request.user), many=True).data)

    @extend_schema(tags=TAG, request=WebhookEndpointInputSerializer,
                   responses={201: WebhookEndpointCreatedSerializer, **ERROR_RESPONSES},
                   summary="Add a webhook endpoint (its secret is shown only in this response)")
    def post(self, request: AuthenticatedRequest) -> Response:
        body = WebhookEndpointInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            endpoint = services.webhook_endpoint_create(owner=request.user, **body.validated_data)
        except services.WebhookFieldError as exc:
            raise _field_error(exc) from exc
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    @extend_schema(tags=TAG, responses={200: WebhookEndpointSerializer, **ERROR_RESPONSES},
                   summary="One of your webhook endpoints")
    def get(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        return Response(WebhookEndpointSerializer(_endpoint(request, pk)).data)

    @extend_schema(tags=TAG, request=WebhookEndpointInputSerializer,
                   responses={200: WebhookEndpointSerializer, **ERROR_RESPONSES},
                   summary="Replace an endpoint's URL, events and active flag")
    def put(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(tags=TAG, request=WebhookEndpointInputSerializer(partial=True),
                   responses={200: WebhookEndpointSerializer, **ERROR_RESPONSES},
                   summary="Change some of an endpoint's URL, events and active flag")
    def patch(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        return self._update(request, pk, partial=True)

    def _update(self, request: AuthenticatedRequest, pk: uuid.UUID, *, partial: bool) -> Response:
        endpoint = _endpoint(request, pk)
        body = WebhookEndpointInputSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        try:
            endpoint = services.webhook_endpoint_update(endpoint, **body.validated_data)
        except services.WebhookFieldError as exc:
            raise _field_error(exc) from exc
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(tags=TAG, responses={204: None, **ERROR_RESPONSES},
                   summary="Delete an endpoint with its delivery history (pending deliveries are dropped)")
    def delete(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        services.webhook_endpoint_delete(_endpoint(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretView(APIView):
    @extend_schema(tags=TAG, request=None, responses={200: WebhookEndpointCreatedSerializer, **ERROR_RESPONSES},
                   summary="Replace an endpoint's secret (the new one is shown only in this response)",
                   description="Takes effect at once: every later attempt, retries included, is signed with the "
                               "new secret and the old one no longer verifies.")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        endpoint = services.webhook_endpoint_rotate_secret(_endpoint(request, pk))
        return Response(WebhookEndpointCreatedSerializer(endpoint).data)


class WebhookEndpointPingView(APIView):
    @extend_schema(tags=TAG, request=None, responses={202: WebhookDeliverySerializer, **ERROR_RESPONSES},
                   summary="Send a test `ping` event to an endpoint now (one attempt, no retries)",
                   description="Answers at once with the pending delivery; read its outcome from the endpoint's "
                               "deliveries. 409 `endpoint_inactive` if the endpoint is deactivated.")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        try:
            delivery = services.webhook_ping(_endpoint(request, pk))
        except services.EndpointInactive as exc:
            raise EndpointInactiveConflict(str(exc)) from exc
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookEndpointDeliveriesView(generics.ListAPIView):
    request: AuthenticatedRequest  # the API's default permission: IsAuthenticated
    serializer_class = WebhookDeliverySerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        endpoint = _endpoint(self.request, self.kwargs["pk"])
        return services.webhook_deliveries_for(self.request.user).filter(endpoint=endpoint)

    @extend_schema(tags=TAG, parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
                   responses={200: WebhookDeliverySerializer(many=True), **ERROR_RESPONSES},
                   summary="An endpoint's deliveries, newest first, each with its attempts")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- deliveries -----------------------------------------------------------------------------------------

FILTER_LOOKUPS = {"generation": "event__generation_id", "endpoint": "endpoint_id", "status": "status"}


class WebhookDeliveryListView(generics.ListAPIView):
    request: AuthenticatedRequest  # the API's default permission: IsAuthenticated
    serializer_class = WebhookDeliverySerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        query = WebhookDeliveryFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = {FILTER_LOOKUPS[name]: value for name, value in query.validated_data.items()}
        return services.webhook_deliveries_for(self.request.user).filter(**filters)

    @extend_schema(tags=TAG, parameters=[WebhookDeliveryFilterSerializer, OpenApiParameter("cursor", str),
                                         OpenApiParameter("page_size", int)],
                   responses={200: WebhookDeliverySerializer(many=True), **ERROR_RESPONSES},
                   summary="All your webhook deliveries (endpoints and generations' own webhook URLs), newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WebhookDeliveryDetailView(APIView):
    @extend_schema(tags=TAG, responses={200: WebhookDeliverySerializer, **ERROR_RESPONSES},
                   summary="One of your webhook deliveries, with its attempts")
    def get(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        delivery = get_object_or_404(services.webhook_deliveries_for(request.user), pk=pk)
        return Response(WebhookDeliverySerializer(delivery).data)


class WebhookDeliveryRedeliverView(APIView):
    @extend_schema(tags=TAG, request=None, responses={202: WebhookDeliverySerializer, **ERROR_RESPONSES},
                   summary="Attempt a delivery again now",
                   description="Sends the same event (same id and body, freshly signed) once more, whatever the "
                               "delivery's status. A delivered or failed delivery gets exactly one more attempt; a "
                               "pending one keeps its remaining retries. 409 `endpoint_inactive` if its endpoint is "
                               "deactivated.")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        delivery = get_object_or_404(services.webhook_deliveries_for(request.user), pk=pk)
        try:
            delivery = services.webhook_delivery_redeliver(delivery)
        except services.EndpointInactive as exc:
            raise EndpointInactiveConflict(str(exc)) from exc
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


# --- the job webhook secret -----------------------------------------------------------------------------

def _job_secret_payload(job_secret: JobWebhookSecret | None) -> dict:
    if job_secret is None:
        return {"secret_prefix": None, "created_at": None, "rotated_at": None}
    return {"secret_prefix": job_secret.secret_prefix, "created_at": job_secret.created_at,
            "rotated_at": job_secret.rotated_at}


class JobWebhookSecretView(APIView):
    @extend_schema(tags=TAG, responses={200: JobWebhookSecretSerializer, **ERROR_RESPONSES},
                   summary="Your job webhook secret (its prefix only)",
                   description="Deliveries to a generation's own `webhook_url` are signed with this secret. It is "
                               "shown only by a rotation, so rotate it once before relying on it. All fields are "
                               "null until it exists (the first delivery or rotation creates it).")
    def get(self, request: AuthenticatedRequest) -> Response:
        job_secret = JobWebhookSecret.objects.filter(owner=request.user).first()
        return Response(JobWebhookSecretSerializer(_job_secret_payload(job_secret)).data)


class JobWebhookSecretRotateView(APIView):
    @extend_schema(tags=TAG, request=None, responses={200: JobWebhookSecretCreatedSerializer, **ERROR_RESPONSES},
                   summary="Replace (or first create) your job webhook secret; the new one is shown only here",
                   description="Takes effect at once for every later attempt, retries included.")
    def post(self, request: AuthenticatedRequest) -> Response:
        job_secret = services.job_webhook_secret_rotate(owner_id=request.user.pk)
        payload = {**_job_secret_payload(job_secret), "secret": job_secret.secret}
        return Response(JobWebhookSecretCreatedSerializer(payload).data)
