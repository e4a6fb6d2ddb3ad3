"""Request and response shapes of the REST API. Output follows fal's VideoFile for the video."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import ApiKey
from api.errors import UploadRejected
from api.schema import ltx_input_schema, model_name_schema
from core.jsonbody import json_loads_bounded
from core.netguard import UnsafeURL, check_webhook_url
from fal_protocol.catalog import RESOLUTIONS
from generations import ltx
from generations.images import ImageRejected, image_to_data_uri
from generations.media_inputs import END_IMAGE, START_IMAGE
from generations.models import Generation, Project
from generations.payloads import generation_payload

# Multipart uploads a create accepts, and the input field each one becomes (a data URI of its checked bytes).
IMAGE_UPLOADS = {"image": START_IMAGE.field, "end_image": END_IMAGE.field}


class ProjectSerializer(serializers.ModelSerializer):
    """A project; its name is checked (unique per owner) by the project services the views call."""

    class Meta:
        model = Project
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]


class BoundedJSONField(serializers.JSONField):
    """DRF's JSONField, loading JSON text (the `input` part of a multipart or form body) through
    `core.jsonbody`, so nesting deeper than its limit is a 422 on the field, not a RecursionError."""

    def to_internal_value(self, data: Any) -> Any:
        if getattr(data, "is_json_string", False):
            try:
                return json_loads_bounded(data)
            except ValueError as exc:
                raise serializers.ValidationError(f"Value must be valid JSON: {exc}") from None
        return super().to_internal_value(data)


@extend_schema_field(model_name_schema())
class ModelNameField(serializers.CharField):
    """A model name; checked (with a message listing every allowed name) by `ltx.resolve_model`."""


@extend_schema_field(ltx_input_schema(), component_name="LtxInput")
class LtxInputField(BoundedJSONField):
    """A generation's input; checked against the chosen endpoint by `ltx.validate_input`."""


class GenerationCreateSerializer(serializers.Serializer):
    model = ModelNameField()
    input = LtxInputField()
    project = serializers.UUIDField(required=False, allow_null=True, help_text="default: your Inbox project")
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=1000,
                                       help_text="also receives this generation's events (signed)")
    image = serializers.FileField(required=False, write_only=True,
                                  help_text="image-to-video start image as a multipart upload (PNG, JPEG, WebP, "
                                            "AVIF, HEIF); the alternative to input.image_url")
    end_image = serializers.FileField(required=False, write_only=True,
                                      help_text="LTX-2.3 image-to-video end image (the clip's last frame) as a "
                                                "multipart upload; the alternative to input.end_image_url")

    def validate_project(self, value: uuid.UUID | None) -> Project | None:
        if value is None:
            return None
        project = Project.objects.filter(owner=self.context["request"].user, pk=value).first()
        if project is None:
            raise serializers.ValidationError("no such project")
        return project

    def validate_webhook_url(self, value: str) -> str:
        try:
            return check_webhook_url(value) if value else value
        except UnsafeURL as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Each multipart upload (`image`, `end_image`) becomes its input field (`image_url`,
        `end_image_url`): a data URI of its checked bytes. A refused upload is an UploadRejected naming it."""
        uploads = {name: data.pop(name) for name in IMAGE_UPLOADS if name in data}
        if uploads and not isinstance(data["input"], dict):
            raise serializers.ValidationError({"input": "must be a JSON object with the LTX fields"})
        for name, uploaded in uploads.items():
            try:
                data_uri = image_to_data_uri(uploaded, max_bytes=settings.STUDIO_MAX_IMAGE_BYTES)
            except ImageRejected as exc:
                raise UploadRejected(name, exc) from None
            data["input"] = {**data["input"], IMAGE_UPLOADS[name]: data_uri}
        return data


class PriceRequestSerializer(serializers.Serializer):
    model = ModelNameField()
    input = LtxInputField()
    # `source`, `required`, `label`, `fields`: fields named like DRF attributes, which the metaclass keeps apart.
    source = serializers.UUIDField(  # type: ignore[assignment]
        required=False, allow_null=True,
        help_text="one of your generations this one would take further (accepted for what comes next; it does not "
                  "change the price now)")


class PriceSerializer(serializers.Serializer):
    """What a generation would cost (`POST /api/v1/price/`)."""

    model = serializers.CharField(help_text="the exact endpoint id the generation would run on")
    cost_usd = serializers.CharField(help_text="USD: seconds × per_second")
    currency = serializers.ChoiceField(choices=["USD"])
    input = serializers.DictField(help_text="the input as the generation would record it: defaults applied, "
                                            "numbers in the endpoint's type, data URIs as their studio reference")
    per_second = serializers.CharField(help_text="USD per second of video at the chosen resolution")
    seconds = serializers.IntegerField()


class CatalogFieldSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["text", "integer", "choice", "boolean", "image"])
    required = serializers.BooleanField()  # type: ignore[assignment]  # see PriceRequestSerializer.source
    enum = serializers.ListField(child=serializers.JSONField(), required=False,
                                 help_text="the allowed values (integers for integer fields)")
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False, help_text="text: the most characters")
    default = serializers.JSONField(required=False, help_text="used when the field is left out")
    description = serializers.CharField(required=False)


class CatalogExampleSerializer(serializers.Serializer):
    input = serializers.DictField(help_text="a valid minimal input (everything else at its default)")
    cost_usd = serializers.CharField(help_text="its price, USD")


@extend_schema_field({"type": "object", "properties": {r: {"type": "string"} for r in RESOLUTIONS},
                      "required": list(RESOLUTIONS), "description": "USD per second of video by resolution"})
class RatesField(serializers.DictField):
    pass


class CatalogPriceSerializer(serializers.Serializer):
    unit = serializers.ChoiceField(choices=["second"])
    per_second = RatesField()
    confirmed = serializers.BooleanField(help_text="false: fal's pages did not confirm the catalog's price")
    overridden = serializers.BooleanField(help_text="the operator set this endpoint's price (for some resolution)")
    example = CatalogExampleSerializer()


class CatalogModelSerializer(serializers.Serializer):
    """One endpoint of the catalog as offered now (`GET /api/v1/models/`)."""

    id = serializers.CharField(help_text="the endpoint id: what generations record as their model")
    version = serializers.CharField(help_text="the LTX version: 2.0 or 2.3")
    kind = serializers.ChoiceField(choices=["t2v", "i2v"])
    tier = serializers.ChoiceField(choices=["standard", "fast"])
    label = serializers.CharField()  # type: ignore[assignment]  # see PriceRequestSerializer.source
    aliases = serializers.ListField(child=serializers.CharField(), help_text="other ids meaning this endpoint")
    enabled = serializers.BooleanField(help_text="the operator offers it (not disabled, not retired)")
    retired = serializers.BooleanField()
    available = serializers.BooleanField(help_text="fal has not answered it as gone")
    refusal = serializers.CharField(allow_null=True, help_text="why new generations are refused (null: accepted)")
    replacement = serializers.CharField(allow_null=True, help_text="the endpoint the operator says to use instead")
    short_name = serializers.CharField(allow_null=True,
                                       help_text="the short name meaning this endpoint under STUDIO_LTX_VERSION")
    fields = serializers.DictField(  # type: ignore[assignment]  # see PriceRequestSerializer.source
        child=CatalogFieldSerializer(), help_text="the input fields by name")
    price = CatalogPriceSerializer()


class VideoFileSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="a signed studio link, valid for STUDIO_MEDIA_LINK_SECONDS")
    download_url = serializers.URLField()
    poster_url = serializers.URLField(allow_null=True)
    content_type = serializers.CharField()
    file_name = serializers.CharField()
    file_size = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    fps = serializers.FloatField()
    duration = serializers.FloatField()
    num_frames = serializers.IntegerField()
    has_audio = serializers.BooleanField()


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class GenerationSerializer(serializers.Serializer):
    """What the API (and integrator webhooks) say about a generation."""

    id = serializers.UUIDField()
    project = serializers.UUIDField()
    model = serializers.CharField()
    status = serializers.ChoiceField(choices=Generation.Status.choices)
    fal_status = serializers.CharField(allow_blank=True)
    queue_position = serializers.IntegerField(allow_null=True)
    slots_ahead = serializers.IntegerField(
        allow_null=True, help_text="While STUDIO_FAL_MAX_IN_FLIGHT holds the job back (status pending): how many "
                                   "waiting jobs will be sent to fal before it. Null otherwise.")
    logs = serializers.ListField(child=serializers.DictField())
    input = serializers.DictField()
    cost_usd = serializers.CharField()
    error = GenerationErrorSerializer(allow_null=True)
    video = VideoFileSerializer(allow_null=True)
    is_hidden = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, generation: Generation) -> dict[str, Any]:
        return generation_payload(generation, request=self.context.get("request"))


class GenerationFilterSerializer(serializers.Serializer):
    project = serializers.UUIDField(required=False)
    status = serializers.CharField(required=False, help_text="one status or several, comma-separated")
    model = serializers.CharField(required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)

    def validate_status(self, value: str) -> list[str]:
        statuses = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [s for s in statuses if s not in Generation.Status.values]
        if unknown or not statuses:
            raise serializers.ValidationError(f"unknown status {', '.join(unknown) or value!r}; allowed: "
                                              + ", ".join(Generation.Status.values))
        return statuses

    def validate_model(self, value: str) -> str:
        try:
            return ltx.resolve_model(value).id
        except ltx.InputError as exc:
            raise serializers.ValidationError(exc.errors["model"]) from None


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="the key itself: shown only in this response")

    class Meta(ApiKeySerializer.Meta):
        fields = ApiKeySerializer.Meta.fields + ["key"]


class ReportCreateSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="what is wrong with this video, for the moderators")


class ReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    generation = serializers.UUIDField(source="generation_id")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
