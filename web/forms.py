"""Web forms: the new-generation form (text or image to video) and the project form.

The LTX-2 rules live in `generations.ltx`; this form only offers its values and turns the
browser's fields into the service's arguments. `ltx.validate_input` (inside generation_create)
stays the authority, and its errors are mapped back onto the fields here.
"""
from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.http import QueryDict

from generations import ltx
from generations.images import ACCEPT_ATTRIBUTE, ImageRejected, image_to_data_uri
from generations.models import Generation, Project
from generations.selectors import generation_get_for
from generations.services.create import generation_start_image_value
from generations.services.projects import NAME_MAX_CHARS

MODE_CHOICES = [("text", "Text to video"), ("image", "Image to video")]
TIER_CHOICES = [("pro", "Pro"), ("fast", "Fast")]
# Where each LTX-2 input field's error is shown in the form.
INPUT_ERROR_FIELDS = {"prompt": "prompt", "duration": "duration", "resolution": "resolution", "fps": "fps",
                      "generate_audio": "generate_audio", "image_url": "image", "model": "tier", "project": "project"}


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


class GenerationForm(forms.Form):
    prompt = forms.CharField(widget=forms.Textarea(
        attrs={"rows": 4, "placeholder": "Describe the video: subject, action, camera, light, sound"}))
    mode = forms.ChoiceField(label="Type", choices=MODE_CHOICES, initial="text", widget=forms.RadioSelect)
    image = forms.FileField(label="Start image", required=False,
                            help_text="PNG, JPEG, WebP or AVIF, at most 10 MB.",
                            widget=forms.ClearableFileInput(attrs={"accept": ACCEPT_ATTRIBUTE}))
    reuse_image_of = forms.UUIDField(required=False, widget=forms.HiddenInput)
    tier = forms.ChoiceField(label="Quality", choices=TIER_CHOICES, initial="pro", widget=forms.RadioSelect)
    duration = forms.ChoiceField(label="Duration", choices=[(d, f"{d} s") for d in ltx.FAST_DURATIONS],
                                 initial=ltx.DEFAULTS["duration"])
    resolution = forms.ChoiceField(label="Resolution", choices=[(r, r) for r in ltx.RESOLUTIONS],
                                   initial=ltx.DEFAULTS["resolution"])
    fps = forms.ChoiceField(label="Frame rate", choices=[(f, f"{f} fps") for f in ltx.FPS_VALUES],
                            initial=ltx.DEFAULTS["fps"])
    generate_audio = forms.BooleanField(label="Generate audio", required=False, initial=ltx.DEFAULTS["generate_audio"])
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, empty_label=Project.DEFAULT_NAME)
    idempotency_key = forms.CharField(max_length=128, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        project = self.fields["project"]
        assert isinstance(project, forms.ModelChoiceField)
        project.queryset = Project.objects.filter(owner=user).exclude(name=Project.DEFAULT_NAME)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", new_idempotency_key())

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean returns cleaned_data
        data["image_url"] = None
        if data.get("mode") != "image":
            return data
        upload = data.get("image")
        if upload:
            try:
                data["image_url"] = image_to_data_uri(upload, max_bytes=settings.STUDIO_MAX_IMAGE_BYTES)
            except ImageRejected as exc:
                self.add_error("image", str(exc))
        elif data.get("reuse_image_of"):
            source = generation_get_for(self.user, data["reuse_image_of"])
            data["image_url"] = generation_start_image_value(source) if source else None
        if not data["image_url"] and "image" not in self.errors:
            self.add_error("image", "Choose a start image for image-to-video.")
        return data

    def create_kwargs(self) -> dict[str, Any]:
        """Arguments for `generation_create` from the cleaned form."""
        data = self.cleaned_data
        payload = {"prompt": data["prompt"], "duration": data["duration"], "resolution": data["resolution"],
                   "fps": data["fps"], "generate_audio": data["generate_audio"]}
        if data["image_url"]:
            payload["image_url"] = data["image_url"]
        return {"model": model_name(data["mode"], data["tier"]), "input": payload, "project": data["project"],
                "idempotency_key": data["idempotency_key"]}

    def add_input_errors(self, errors: dict[str, str]) -> None:
        for field, message in errors.items():
            target = INPUT_ERROR_FIELDS.get(field)
            self.add_error(target, message if target else f"{field}: {message}")

    def renew_idempotency_key(self) -> None:
        data = cast(QueryDict, self.data).copy()  # bound to request.POST: a QueryDict
        data["idempotency_key"] = new_idempotency_key()
        self.data = data

    def current_values(self) -> dict[str, Any]:
        """The tier/duration/resolution the page shows now (bound data, else initial)."""
        return {name: self[name].value() for name in ("mode", "tier", "duration", "resolution", "fps")}

    def price_usd(self) -> Decimal | None:
        """The exact price of what the form says now (None until it names an allowed combination)."""
        values = self.current_values()
        return ltx.quote_usd(model_name(values["mode"], values["tier"]), values)


def model_name(mode: str, tier: str) -> str:
    return ("i2v" if mode == "image" else "t2v") + ("-fast" if tier == "fast" else "")


def initial_from(generation: Generation) -> dict[str, Any]:
    """Form values that repeat `generation` ("edit and re-run")."""
    spec = ltx.resolve_model(generation.model_id)
    data = generation.input
    return {"prompt": data.get("prompt", ""), "mode": "image" if spec.is_image_to_video else "text", "tier": spec.tier,
            "duration": data.get("duration"), "resolution": data.get("resolution"), "fps": data.get("fps"),
            "generate_audio": data.get("generate_audio", True),
            "project": generation.project if generation.project.name != Project.DEFAULT_NAME else None,
            "reuse_image_of": generation.pk if spec.is_image_to_video else None}


def price_table() -> dict[str, Any]:
    """What the page's script needs to offer valid combinations and show the exact price."""
    return {
        "price_per_second": {tier: {res: str(price) for res, price in prices.items()}
                             for tier, prices in ltx.PRICE_PER_SECOND.items()},
        "durations": {"pro": list(ltx.PRO_DURATIONS), "fast": list(ltx.FAST_DURATIONS)},
        # Fast videos longer than 10 s exist only at 25 fps and 1080p (mirrors ltx.validate_input).
        "long": {"above": 10, "fps": "25", "resolution": "1080p"},
    }


class ProjectForm(forms.Form):
    """A project's name; `project_create` / `project_rename` decide whether it can be used."""

    name = forms.CharField(max_length=NAME_MAX_CHARS)


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
