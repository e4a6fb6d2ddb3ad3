"""Web forms: the new-generation form (text or image to video) and the project form.

The endpoints and their fields are `fal_protocol.catalog`'s, applied by `generations.ltx`; this form
offers what the operator's version (`STUDIO_LTX_VERSION`) offers and turns the browser's fields
into the service's arguments. `ltx.validate_input` (inside generation_create) stays the authority,
and its errors are mapped back onto the fields here.
"""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.http import QueryDict

from fal_protocol import catalog
from fal_protocol.catalog import Endpoint
from generations import ltx
from generations.images import ACCEPT_ATTRIBUTE, ImageRejected, image_to_data_uri
from generations.media_inputs import END_IMAGE, START_IMAGE, MediaInput
from generations.models import Generation, Project
from generations.selectors import endpoint_states, generation_get_for
from generations.services.create import generation_media_value
from generations.services.projects import NAME_MAX_CHARS

MODE_CHOICES = [("text", "Text to video"), ("image", "Image to video")]
TIER_CHOICES = [("pro", "Pro"), ("fast", "Fast")]
# How each aspect ratio is offered ("auto": image-to-video follows its start image).
ASPECT_LABELS = {catalog.LANDSCAPE: "Landscape 16:9", catalog.PORTRAIT: "Portrait 9:16",
                 catalog.AUTO: "Match the image"}
# Where each input field's error is shown in the form; None: above the form, as the message says it.
INPUT_ERROR_FIELDS: dict[str, str | None] = {
    "prompt": "prompt", "duration": "duration", "resolution": "resolution", "fps": "fps",
    "generate_audio": "generate_audio", "aspect_ratio": "aspect_ratio", "image_url": "image",
    "end_image_url": "end_image", "project": "project", "model": None}
IMAGE_HELP = "PNG, JPEG, WebP, AVIF or HEIF, at most 10 MB."
# The inputs the page's script offers per model, from the catalog's fields.
OFFERED_FIELDS = ("duration", "resolution", "fps", "aspect_ratio")


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


def offered_endpoints() -> dict[str, Endpoint]:
    """The endpoint each short name (t2v, t2v-fast, i2v, i2v-fast) means in the operator's version."""
    return {name: ltx.resolve_model(name) for name in catalog.SHORT_NAMES}


def offered_values(endpoints: Iterable[Endpoint], name: str) -> list[str]:
    """Every value any of `endpoints` allows for field `name`, as form values, in catalog order."""
    values: list[str] = []
    for endpoint in endpoints:
        field = endpoint.fields_by_name.get(name)
        for value in (field.enum or ()) if field else ():
            if str(value) not in values:
                values.append(str(value))
    return values


class GenerationForm(forms.Form):
    prompt = forms.CharField(widget=forms.Textarea(
        attrs={"rows": 4, "placeholder": "Describe the video: subject, action, camera, light, sound"}))
    mode = forms.ChoiceField(label="Type", choices=MODE_CHOICES, initial="text", widget=forms.RadioSelect)
    image = forms.FileField(label="Start image", required=False, help_text=IMAGE_HELP,
                            widget=forms.ClearableFileInput(attrs={"accept": ACCEPT_ATTRIBUTE}))
    reuse_image_of = forms.UUIDField(required=False, widget=forms.HiddenInput)
    end_image = forms.FileField(label="End image (optional)", required=False,
                                help_text=f"The clip ends on this picture. {IMAGE_HELP}",
                                widget=forms.ClearableFileInput(attrs={"accept": ACCEPT_ATTRIBUTE}))
    reuse_end_image_of = forms.UUIDField(required=False, widget=forms.HiddenInput)
    keep_end_image = forms.BooleanField(label="Use the original video's end image", required=False, initial=True)
    aspect_ratio = forms.ChoiceField(label="Aspect ratio", required=False, widget=forms.RadioSelect)
    tier = forms.ChoiceField(label="Quality", choices=TIER_CHOICES, initial="pro", widget=forms.RadioSelect)
    duration = forms.ChoiceField(label="Duration")
    resolution = forms.ChoiceField(label="Resolution")
    fps = forms.ChoiceField(label="Frame rate")
    generate_audio = forms.BooleanField(label="Generate audio", required=False, initial=True)
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, empty_label=Project.DEFAULT_NAME)
    idempotency_key = forms.CharField(max_length=128, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        # What the operator's version offers (STUDIO_LTX_VERSION); the page's script narrows it per model.
        self.endpoints = offered_endpoints()
        defaults = self.endpoints["t2v"].defaults()
        labels = {"duration": "{} s", "fps": "{} fps", "resolution": "{}", "aspect_ratio": "{}"}
        for name in OFFERED_FIELDS:
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            values = offered_values(self.endpoints.values(), name)
            field.choices = [(value, ASPECT_LABELS.get(value) or labels[name].format(value)) for value in values]
            field.initial = str(defaults[name]) if name in defaults else None
            if name == "aspect_ratio" and len(values) < 2:
                del self.fields[name]  # nothing to choose (LTX-2.0: landscape only)
        if not any(END_IMAGE.field in endpoint.fields_by_name for endpoint in self.endpoints.values()):
            for name in ("end_image", "reuse_end_image_of", "keep_end_image"):
                del self.fields[name]
        project = self.fields["project"]
        assert isinstance(project, forms.ModelChoiceField)
        project.queryset = Project.objects.filter(owner=user).exclude(name=Project.DEFAULT_NAME)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", new_idempotency_key())

    @property
    def offers_end_image(self) -> bool:
        return "end_image" in self.fields

    @property
    def reused_start(self) -> uuid.UUID | None:
        """The generation whose start image this form reuses ("edit and re-run"), for its preview."""
        return parse_uuid(self["reuse_image_of"].value())

    @property
    def reused_end(self) -> uuid.UUID | None:
        """The generation whose end image this form reuses, while the user keeps it."""
        if not self.offers_end_image or not self["keep_end_image"].value():
            return None
        return parse_uuid(self["reuse_end_image_of"].value())

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        data["image_url"] = data["end_image_url"] = None
        if data.get("mode") != "image":
            return data
        data["image_url"] = self._image_value(data, "image", data.get("reuse_image_of"), START_IMAGE)
        if not data["image_url"] and "image" not in self.errors:
            self.add_error("image", "Choose a start image for image-to-video.")
        if self.offers_end_image:
            reuse = data.get("reuse_end_image_of") if data.get("keep_end_image") else None
            data["end_image_url"] = self._image_value(data, "end_image", reuse, END_IMAGE)
        return data

    def _image_value(self, data: dict[str, Any], field: str, reuse_of: uuid.UUID | None,
                     medium: MediaInput) -> str | None:
        """The image of `field` as a data URI (checked like every image), else `medium` of the
        generation `reuse_of` ("edit and re-run"), else None."""
        upload = data.get(field)
        if upload:
            try:
                return image_to_data_uri(upload, max_bytes=settings.STUDIO_MAX_IMAGE_BYTES)
            except ImageRejected as exc:
                self.add_error(field, str(exc))
                return None
        source = generation_get_for(self.user, reuse_of) if reuse_of else None
        if source is None:
            return None
        return generation_media_value(source, medium) or None

    def create_kwargs(self) -> dict[str, Any]:
        """Arguments for `generation_create` from the cleaned form."""
        data = self.cleaned_data
        payload = {"prompt": data["prompt"], "duration": data["duration"], "resolution": data["resolution"],
                   "fps": data["fps"], "generate_audio": data["generate_audio"]}
        for name in ("aspect_ratio", "image_url", "end_image_url"):
            if data.get(name):
                payload[name] = data[name]
        return {"model": model_name(data["mode"], data["tier"]), "input": payload, "project": data["project"],
                "idempotency_key": data["idempotency_key"]}

    def add_input_errors(self, errors: dict[str, str]) -> None:
        """Show `generation_create`'s InputError: each message next to its field, the model's above the form."""
        for field, message in errors.items():
            target = INPUT_ERROR_FIELDS.get(field, "")
            if target and target in self.fields:
                self.add_error(target, message)
            else:
                self.add_error(None, message if target is None else f"{field}: {message}")

    def renew_idempotency_key(self) -> None:
        data = cast(QueryDict, self.data).copy()  # bound to request.POST: a QueryDict
        data["idempotency_key"] = new_idempotency_key()
        self.data = data

    def current_values(self) -> dict[str, Any]:
        """The video settings the page shows now (bound data, else initial)."""
        names = ("mode", "tier", *OFFERED_FIELDS)
        return {name: self[name].value() if name in self.fields else None for name in names}

    def price_usd(self) -> Decimal | None:
        """The exact price of what the form says now (None until it names an allowed combination:
        duration, resolution and fps by `ltx.quote_usd`, and an aspect ratio the model offers)."""
        values = self.current_values()
        model = model_name(values["mode"], values["tier"])
        endpoint = self.endpoints.get(model)
        if endpoint is None:
            return None
        aspect = values["aspect_ratio"]
        if aspect and aspect not in offered_values([endpoint], "aspect_ratio"):
            return None
        return ltx.quote_usd(model, values)


def model_name(mode: str, tier: str) -> str:
    return ("i2v" if mode == "image" else "t2v") + ("-fast" if tier == "fast" else "")


def initial_from(generation: Generation) -> dict[str, Any]:
    """Form values that repeat `generation` ("edit and re-run"); its start and end images are
    reused from the generation unless the user chooses others."""
    endpoint = ltx.resolve_model(generation.model_id)
    image_to_video = endpoint.kind == catalog.I2V
    data = generation.input
    return {"prompt": data.get("prompt", ""), "mode": "image" if image_to_video else "text",
            "tier": "fast" if endpoint.tier == catalog.FAST else "pro",
            "duration": data.get("duration"), "resolution": data.get("resolution"), "fps": data.get("fps"),
            "aspect_ratio": data.get("aspect_ratio"), "generate_audio": data.get("generate_audio", True),
            "project": generation.project if generation.project.name != Project.DEFAULT_NAME else None,
            "reuse_image_of": generation.pk if image_to_video else None,
            "reuse_end_image_of": generation.pk if data.get(END_IMAGE.field) else None}


def price_table(endpoints: Mapping[str, Endpoint] | None = None) -> dict[str, Any]:
    """What the page's script needs to offer what each model allows and show the exact price, from
    the catalog: per short name its endpoint, the values of each offered field, whether it takes an
    end image, its rates with the operator's overrides and why it is refused (if it is). One query."""
    endpoints = endpoints or offered_endpoints()
    states = dict(zip(endpoints, endpoint_states(endpoints.values()), strict=True))
    models = {}
    for name, endpoint in endpoints.items():
        state = states[name]
        models[name] = {
            "id": endpoint.id, "label": endpoint.label,
            "fields": {field: offered_values([endpoint], field) for field in OFFERED_FIELDS},
            "defaults": {field: str(value) for field, value in endpoint.defaults().items() if field in OFFERED_FIELDS},
            "end_image": END_IMAGE.field in endpoint.fields_by_name,
            "price_per_second": {res: str(rate) for res, rate in state.rates.items()},
            "refusal": state.refusal,
        }
    return {
        "models": models,
        # Fast videos longer than 10 s exist only at 25 fps and 1080p (mirrors ltx.validate_input).
        "long": {"above": catalog.LONG_AFTER_SECONDS, "fps": str(catalog.LONG_FPS),
                 "resolution": catalog.LONG_RESOLUTION},
        # The long and short side of each resolution, for the preview frame's caption.
        "sides": {res: list(sides) for res, sides in catalog.RESOLUTION_SIDES.items()},
    }


class ProjectForm(forms.Form):
    """A project's name; `project_create` / `project_rename` decide whether it can be used."""

    name = forms.CharField(max_length=NAME_MAX_CHARS)


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
