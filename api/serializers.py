"""Request and response shapes of the REST API. Output follows fal's VideoFile for the video."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from rest_framework import serializers

from accounts.models import ApiKey
from core.jsonbody import json_loads_bounded
from core.netguard import UnsafeURL, check_webhook_url
from generations import ltx
from generations.images import image_to_data_uri
from generations.models import Generation, Project
from generations.payloads import generation_payload


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


class GenerationCreateSerializer(serializers.Serializer):
    model = serializers.CharField(
        help_text="a model id (e.g. fal-ai/ltx-2/text-to-video) or t2v, t2v-fast, i2v, i2v-fast")
    input = BoundedJSONField(help_text="LTX-2 fields: prompt, duration, resolution, aspect_ratio, fps, "
                                       "generate_audio, image_url (image-to-video)")
    project = serializers.UUIDField(required=False, allow_null=True, help_text="default: your Inbox project")
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=1000,
                                       help_text="also receives this generation's events (signed)")
    image = serializers.FileField(required=False, write_only=True,
                                  help_text="image-to-video start image as a multipart upload (PNG, JPEG, WebP, "
                                            "AVIF); the alternative to input.image_url")

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
        """A multipart `image` becomes the input's `image_url` (a data URI of its checked bytes)."""
        if "image" in data:
            if not isinstance(data["input"], dict):
                raise serializers.ValidationError({"input": "must be a JSON object with the LTX-2 fields"})
            image_url = image_to_data_uri(data.pop("image"), max_bytes=settings.STUDIO_MAX_IMAGE_BYTES)
            data["input"] = {**data["input"], "image_url": image_url}
        return data


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
