"""REST API v1 (README, "The REST API"): thin views over services and selectors, scoped to the caller."""
from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts.keys import api_key_create, api_key_in, api_key_revoke
from accounts.models import ApiKey
from api.errors import ERROR_RESPONSES, error
from api.pagination import NewestFirst
from api.prefer import MAX_WAIT_SECONDS, preferred_wait
from api.renderers import EventStreamRenderer
from api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeySerializer,
    CatalogModelSerializer,
    GenerationCreateSerializer,
    GenerationFilterSerializer,
    GenerationSerializer,
    PriceRequestSerializer,
    PriceSerializer,
    ProjectSerializer,
    ReportCreateSerializer,
    ReportSerializer,
    generation_payload,
)
from api.throttling import ApiThrottle, CreateThrottle
from core.requests import AuthenticatedRequest
from core.streaming import event_stream_response
from fal_protocol import catalog
from generations import status_reads
from generations.catalog_reads import catalog_model_json, catalog_models
from generations.event_streams import change_events, each
from generations.fair_share import waits_for_a_slot
from generations.models import Generation, Project
from generations.quotes import quote_for
from generations.selectors import endpoint_state, generation_get_for, generation_list_for, generation_viewable_for
from generations.services.cancel import generation_cancel
from generations.services.create import generation_create, generation_retry
from generations.services.delete import generation_delete
from generations.services.projects import project_create, project_delete, project_rename
from generations.services.streams import TooManyStreams, stream_slot_release, stream_slot_take
from generations.status_reads import generation_status_get_for, status_row_for_key
from generations.watch import Reading, marker_of, wait_for_end
from moderation.services import report_create
from storage.quotas import usage_for

# --- projects -----------------------------------------------------------------------------------

class ProjectListView(generics.ListCreateAPIView):
    request: AuthenticatedRequest  # the API's default permission: IsAuthenticated
    serializer_class = ProjectSerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.filter(owner=self.request.user)

    def perform_create(self, serializer: BaseSerializer[Project]) -> None:
        serializer.instance = project_create(self.request.user, serializer.validated_data["name"])


class ProjectDetailView(generics.RetrieveUpdateDestroyAPIView):
    request: AuthenticatedRequest  # the API's default permission: IsAuthenticated
    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return Project.objects.filter(owner=self.request.user)

    @extend_schema(summary="Delete a project with its finished generations and their videos",
                   responses={204: None, **ERROR_RESPONSES})
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().delete(request, *args, **kwargs)

    def perform_update(self, serializer: BaseSerializer[Project]) -> None:
        assert serializer.instance is not None  # an update has its instance
        if "name" in serializer.validated_data:
            project_rename(serializer.instance, serializer.validated_data["name"])

    def perform_destroy(self, instance: Project) -> None:
        project_delete(instance)


# --- generations --------------------------------------------------------------------------------

CREATE_EXAMPLE = OpenApiExample("Text to video", request_only=True, value={
    "model": "fal-ai/ltx-2/text-to-video",
    "input": {"prompt": "A cowboy walking through a dusty town at high noon", "duration": 8, "resolution": "1080p",
              "fps": 25, "generate_audio": True},
})
PORTRAIT_EXAMPLE = OpenApiExample("Portrait text to video (LTX-2.3)", request_only=True, value={
    "model": "fal-ai/ltx-2.3/text-to-video",
    "input": {"prompt": "A lighthouse keeper climbs the stairs at dusk", "duration": 6, "aspect_ratio": "9:16",
              "fps": 24},
})
ERROR_EXAMPLE = OpenApiExample("Invalid field", response_only=True, status_codes=["422"], value={
    "code": "validation_error", "message": "The request has invalid fields: input.duration.",
    "details": {"input.duration": "7 is not allowed; allowed values: 6, 8, 10 seconds"}})


PREFER_WAIT = OpenApiParameter(
    "Prefer", str, OpenApiParameter.HEADER,
    description=f"`wait=N` (1 to {MAX_WAIT_SECONDS}; `wait` alone: {MAX_WAIT_SECONDS}): answer when the generation "
                "is terminal or N seconds have passed, whichever comes first. The answer then has "
                "`Preference-Applied: wait=N`.")


def _answer_after_waiting(request: AuthenticatedRequest, pk: uuid.UUID, seconds: int,
                          status_code: int = status.HTTP_200_OK) -> Response:
    """The generation as it is once terminal or after `seconds` (Prefer: wait); 404 if it went."""
    generation = wait_for_end(lambda: generation_status_get_for(request.user, pk), seconds)
    if generation is None:
        raise Http404
    return Response(generation_payload(generation, request), status=status_code,
                    headers={"Preference-Applied": f"wait={seconds}"})


class GenerationListView(generics.ListAPIView):
    request: AuthenticatedRequest  # the API's default permission: IsAuthenticated
    serializer_class = GenerationSerializer
    pagination_class = NewestFirst
    throttle_classes = [ApiThrottle, CreateThrottle]

    def get_queryset(self) -> QuerySet[Generation]:
        filters = GenerationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        return generation_list_for(self.request.user, project=wanted.get("project"), statuses=wanted.get("status"),
                                   model=wanted.get("model"), created_after=wanted.get("created_after"),
                                   created_before=wanted.get("created_before"))

    @extend_schema(parameters=[GenerationFilterSerializer], responses={200: GenerationSerializer(many=True),
                                                                       **ERROR_RESPONSES},
                   summary="Your generations, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=GenerationCreateSerializer, examples=[CREATE_EXAMPLE, PORTRAIT_EXAMPLE, ERROR_EXAMPLE],
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                                description="replays return the original job; another body is 409"),
                               PREFER_WAIT],
                   responses={201: GenerationSerializer, 200: GenerationSerializer, **ERROR_RESPONSES},
                   summary="Create a generation (its price and bytes are reserved against your quota)")
    def post(self, request: AuthenticatedRequest) -> Response:
        wait = preferred_wait(request)  # checked before anything is created
        body = GenerationCreateSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        generation, created = generation_create(
            owner=request.user, model=body.validated_data["model"], input=body.validated_data["input"],
            project=body.validated_data.get("project"),
            idempotency_key=request.headers.get("Idempotency-Key", "").strip() or None,
            webhook_url=body.validated_data.get("webhook_url", ""))
        status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        if wait is None:
            return Response(GenerationSerializer(generation, context={"request": request}).data, status=status_code)
        return _answer_after_waiting(request, generation.pk, wait, status_code)


def _accepts_json_only(request: HttpRequest) -> bool:
    """What DRF's content negotiation would answer with JSON, in the forms HTTP clients send."""
    return request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", "application/json") and "format" not in request.GET


def _own_generation(request: AuthenticatedRequest, pk: uuid.UUID) -> Generation:
    generation = generation_get_for(request.user, pk)
    if generation is None:
        raise Http404
    return generation


class GenerationDetailView(APIView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return self.poll_answer(request, kwargs["pk"]) or super().dispatch(request, *args, **kwargs)

    def poll_answer(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse | None:
        """The answer to what clients poll, a GET of their own job with an API key within their rate,
        given without DRF's request handling, which cost as much as the rest of the request: one
        query, then the body and headers DRF would send. None for anything else (a session, another
        method, a key that is not live, an id that is not the caller's, a throttled key, the
        browsable API), which DRF then answers as always."""
        raw = api_key_in(request)
        if request.method != "GET" or not raw or not _accepts_json_only(request) or "HTTP_PREFER" in request.META:
            return None
        key, row = status_row_for_key(raw, pk)
        if key is None or row is None or not ApiThrottle().allow_key(key):
            return None
        response = HttpResponse(status_reads.rest_body(row, request), content_type=JSONRenderer.media_type)
        for name, value in self.default_response_headers.items():
            response[name] = value
        return response

    @extend_schema(parameters=[PREFER_WAIT], responses={200: GenerationSerializer, **ERROR_RESPONSES},
                   summary="One of your generations")
    def get(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        wait = preferred_wait(request)
        if wait is not None:
            return _answer_after_waiting(request, pk, wait)
        generation = generation_status_get_for(request.user, pk)
        if generation is None:
            raise Http404
        return Response(generation_payload(generation, request))  # GenerationSerializer's shape, built directly

    @extend_schema(responses={204: None, **ERROR_RESPONSES},
                   summary="Delete a finished generation and its video (frees storage)")
    def delete(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        generation_delete(_own_generation(request, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GenerationEventsView(APIView):
    # EventSource asks for text/event-stream: accepted, though errors are still answered as JSON.
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        return self._as_json(super().handle_exception(exc))

    def _as_json(self, response: Response) -> Response:
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return response

    @extend_schema(responses={(200, "text/event-stream"): OpenApiResponse(
                       description="One `data:` event per change, each the generation as GET returns it; a "
                                   "`: keep-alive` comment when quiet. The stream ends after the event with a "
                                   "terminal status (or after STUDIO_SSE_MAX_SECONDS)."),
                       **{(code, JSONRenderer.media_type): answer for code, answer in ERROR_RESPONSES.items()}},
                   summary="Follow one of your generations as server-sent events",
                   description="Each open stream takes one of your STUDIO_MAX_STREAMS_PER_USER stream slots "
                               "(429 with Retry-After when none is free).")
    def get(self, request: AuthenticatedRequest, pk: uuid.UUID) -> HttpResponseBase:
        generation = _own_generation(request, pk)
        try:
            slot = stream_slot_take(request.user)
        except TooManyStreams as exc:
            refusal = error(429, "too_many_streams", str(exc), headers={"Retry-After": str(exc.retry_after)})
            return self._as_json(refusal)

        def read(pk: uuid.UUID) -> Reading | None:
            current = generation_status_get_for(request.user, pk)
            if current is None:
                return None
            return Reading(marker_of(current), generation_payload(current, request), soon=waits_for_a_slot(current))

        events = change_events([generation.pk], each(read), slot=slot,
                               ended=lambda body: body["status"] in Generation.TERMINAL)
        return event_stream_response(request._request, events, on_close=lambda: stream_slot_release(slot))


class GenerationCancelView(APIView):
    @extend_schema(request=None, responses={200: GenerationSerializer, **ERROR_RESPONSES},
                   summary="Cancel an active generation")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        generation = generation_cancel(_own_generation(request, pk))
        return Response(GenerationSerializer(generation, context={"request": request}).data)


class GenerationRetryView(APIView):
    throttle_classes = [ApiThrottle, CreateThrottle]

    @extend_schema(request=None, responses={201: GenerationSerializer, **ERROR_RESPONSES},
                   summary="Run a failed or canceled generation again as a new generation")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        generation = generation_retry(_own_generation(request, pk))
        return Response(GenerationSerializer(generation, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class GenerationReportView(APIView):
    @extend_schema(request=ReportCreateSerializer, responses={201: ReportSerializer, 200: ReportSerializer,
                                                              **ERROR_RESPONSES},
                   summary="Report a generation to the studio's moderators",
                   description="One report per user and generation: repeating it returns the first report "
                               "(200). After STUDIO_REPORTS_TO_HIDE distinct users reported a video it is hidden "
                               "until a moderator reviews it.")
    def post(self, request: AuthenticatedRequest, pk: uuid.UUID) -> Response:
        body = ReportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        generation = generation_viewable_for(request.user, pk)
        if generation is None:
            raise Http404
        report, created = report_create(generation=generation, reporter=request.user,
                                        reason=body.validated_data["reason"])
        return Response(ReportSerializer(report).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


# --- the catalog and prices ---------------------------------------------------------------------

# One entry: drf-spectacular shows it inside the list.
MODELS_EXAMPLE = OpenApiExample("One endpoint", response_only=True,
                                value=catalog_model_json(
                                    endpoint_state(catalog.BY_ID["fal-ai/ltx-2.3/text-to-video"], None)))
PRICE_EXAMPLE = OpenApiExample("A portrait LTX-2.3 video", request_only=True, value={
    "model": "t2v", "input": {"prompt": "A lighthouse keeper climbs the stairs at dusk", "aspect_ratio": "9:16"}})
PRICE_ANSWER_EXAMPLE = OpenApiExample("Its price", response_only=True, status_codes=["200"], value={
    "model": "fal-ai/ltx-2.3/text-to-video", "cost_usd": "0.48", "currency": "USD",
    "input": {"prompt": "A lighthouse keeper climbs the stairs at dusk", "duration": 6, "resolution": "1080p",
              "fps": 25, "generate_audio": True, "aspect_ratio": "9:16"},
    "per_second": "0.08", "seconds": 6})
PRICE_REFUSED_EXAMPLE = OpenApiExample("A retired model", response_only=True, status_codes=["422"], value={
    "code": "validation_error", "message": "The request has invalid fields: model.",
    "details": {"model": "fal-ai/ltx-2/text-to-video has been retired; use fal-ai/ltx-2.3/text-to-video instead"}})


class ModelListView(APIView):
    @extend_schema(responses={200: CatalogModelSerializer(many=True), **ERROR_RESPONSES}, examples=[MODELS_EXAMPLE],
                   summary="The models you can use: every endpoint, its input fields, prices and state",
                   description="Every endpoint of the studio's catalog (LTX-2.0 and LTX-2.3; aliases listed on "
                               "their endpoint) with the operator's prices. An endpoint with a `refusal` takes no "
                               "new generations (disabled, retired — see `replacement` — or gone at fal).")
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response([catalog_model_json(state) for state in catalog_models()])


class PriceView(APIView):
    @extend_schema(request=PriceRequestSerializer, responses={200: PriceSerializer, **ERROR_RESPONSES},
                   examples=[PRICE_EXAMPLE, PRICE_ANSWER_EXAMPLE, PRICE_REFUSED_EXAMPLE],
                   summary="What a generation would cost (nothing is created or reserved)",
                   description="Validated exactly like a create (422 naming every bad field; a model that takes "
                               "no new generations is a 422 naming `model` and its replacement), priced with the "
                               "operator's prices. Nothing is written, reserved or sent to fal, and image URLs are "
                               "not fetched (only their form is checked).")
    def post(self, request: AuthenticatedRequest) -> Response:
        body = PriceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        quote = quote_for(body.validated_data["model"], body.validated_data["input"], owner=request.user,
                          source=body.validated_data.get("source"))
        return Response(quote.as_json())


# --- API keys -----------------------------------------------------------------------------------

class ApiKeyListView(APIView):
    @extend_schema(responses={200: ApiKeySerializer(many=True), **ERROR_RESPONSES}, summary="Your API keys")
    def get(self, request: AuthenticatedRequest) -> Response:
        keys = ApiKey.objects.filter(user=request.user)
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(request=ApiKeySerializer, responses={201: ApiKeyCreatedSerializer, **ERROR_RESPONSES},
                   summary="Create an API key (the key is shown only in this response)")
    def post(self, request: AuthenticatedRequest) -> Response:
        body = ApiKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, raw = api_key_create(user=request.user, name=body.validated_data["name"])
        return Response({**ApiKeySerializer(key).data, "key": raw}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    @extend_schema(responses={204: None, **ERROR_RESPONSES}, summary="Revoke an API key")
    def delete(self, request: AuthenticatedRequest, pk: int) -> Response:
        key = ApiKey.objects.filter(user=request.user, pk=pk).first()
        if key is None:
            raise Http404
        api_key_revoke(key)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- usage --------------------------------------------------------------------------------------

class CountLimitSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField()


class MoneyLimitSerializer(serializers.Serializer):
    used = serializers.CharField(help_text="USD, two decimals")
    limit = serializers.CharField(help_text="USD, two decimals")


class UsageSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="the calendar month (UTC) that spend is counted in, YYYY-MM")
    storage_bytes = CountLimitSerializer()
    monthly_spend_usd = MoneyLimitSerializer()
    active_jobs = CountLimitSerializer()


def usage_payload(user: User) -> dict[str, Any]:
    usage = usage_for(user)
    return {
        "month": usage.month.strftime("%Y-%m"),
        "storage_bytes": {"used": usage.bytes, "limit": usage.limits.storage_bytes},
        "monthly_spend_usd": {"used": f"{usage.spend_usd:.2f}", "limit": f"{usage.limits.monthly_spend_usd:.2f}"},
        "active_jobs": {"used": usage.active_jobs, "limit": usage.limits.active_jobs},
    }


class UsageView(APIView):
    @extend_schema(responses={200: UsageSerializer, **ERROR_RESPONSES}, summary="Your usage against your limits")
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(usage_payload(request.user))
