"""LTX Video 2.0 on fal: the four endpoints, their aliases, input validation and prices.

This is the one place that knows the LTX-2 schema.
`validate_input` turns what a user sent (numbers as ints or strings) into the exact body fal
expects (enum strings), or raises `InputError` naming every bad field and what is allowed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from core.text import json_text_problem, text_problem

RESOLUTIONS = ("1080p", "1440p", "2160p")
FPS_VALUES = ("25", "50")
ASPECT_RATIOS = ("16:9",)
PRO_DURATIONS = ("6", "8", "10")
FAST_DURATIONS = ("6", "8", "10", "12", "14", "16", "18", "20")
DEFAULTS = {"duration": "6", "resolution": "1080p", "aspect_ratio": "16:9", "fps": "25", "generate_audio": True}

# USD per second of output video, by tier and resolution (fal bills fps and audio the same).
PRICE_PER_SECOND = {
    "pro": {"1080p": Decimal("0.06"), "1440p": Decimal("0.12"), "2160p": Decimal("0.24")},
    "fast": {"1080p": Decimal("0.04"), "1440p": Decimal("0.08"), "2160p": Decimal("0.16")},
}


@dataclass(frozen=True)
class ModelSpec:
    """One LTX-2 endpoint. `id` is the canonical public id; `path` follows the upstream prefix."""

    id: str
    path: str
    short_name: str
    is_image_to_video: bool
    is_fast: bool

    @property
    def tier(self) -> str:
        return "fast" if self.is_fast else "pro"

    @property
    def upstream_id(self) -> str:
        """The endpoint id sent to fal (`STUDIO_UPSTREAM_MODEL_PREFIX` lets operators follow a rename)."""
        return f"{settings.STUDIO_UPSTREAM_MODEL_PREFIX}/{self.path}"

    @property
    def durations(self) -> tuple[str, ...]:
        return FAST_DURATIONS if self.is_fast else PRO_DURATIONS

    @property
    def allowed_fields(self) -> tuple[str, ...]:
        fields = ("prompt", "duration", "resolution", "aspect_ratio", "fps", "generate_audio")
        return fields + ("image_url",) if self.is_image_to_video else fields


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec("fal-ai/ltx-2/text-to-video", "text-to-video", "t2v", False, False),
        ModelSpec("fal-ai/ltx-2/text-to-video/fast", "text-to-video/fast", "t2v-fast", False, True),
        ModelSpec("fal-ai/ltx-2/image-to-video", "image-to-video", "i2v", True, False),
        ModelSpec("fal-ai/ltx-2/image-to-video/fast", "image-to-video/fast", "i2v-fast", True, True),
    )
}
ALIASES: dict[str, str] = {
    **{spec.short_name: spec.id for spec in MODELS.values()},
    "fal-ai/ltxv-2/text-to-video": "fal-ai/ltx-2/text-to-video",
    "fal-ai/ltxv-2/image-to-video": "fal-ai/ltx-2/image-to-video",
}


class InputError(Exception):
    """Invalid generation input. `errors` maps each bad field to a sentence saying what is allowed."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


def resolve_model(name: Any) -> ModelSpec:
    """Find the endpoint for a canonical id, an `ltxv-2` alias or a short name (t2v, t2v-fast, i2v, i2v-fast)."""
    if isinstance(name, str):
        spec = MODELS.get(name) or MODELS.get(ALIASES.get(name, ""))
        if spec:
            return spec
    allowed = ", ".join([*MODELS, *ALIASES])
    raise InputError({"model": f"unknown model {name!r}; allowed: {allowed}"})


def validate_input(spec: ModelSpec, raw: Any) -> dict[str, Any]:
    """Return the normalised fal input for `spec`, with defaults applied, or raise InputError.

    As in fal's schema, a field set to null is an error (leave it out to get the default), and so
    is text anywhere in the input that cannot be stored or sent (`core.text`: NUL, lone surrogates)."""
    if not isinstance(raw, dict):
        raise InputError({"input": "must be a JSON object with the LTX-2 fields"})
    errors: dict[str, str] = {}
    given: dict[str, Any] = {}
    for field, value in raw.items():
        name_problem = text_problem(field) if isinstance(field, str) else "must be text"
        if name_problem:
            errors["input"] = f"has a field name that {name_problem}"
        elif problem := json_text_problem(value):
            errors[field] = problem
        elif field not in spec.allowed_fields:
            errors[field] = f"unknown field for {spec.id}; allowed fields: {', '.join(spec.allowed_fields)}"
        elif value is None:
            errors[field] = _null_message(field)
        else:
            given[field] = value
    data = {**DEFAULTS, **given}

    if "prompt" not in errors:  # not already refused as null or as text that cannot be stored
        _check_prompt(data, errors)

    _check_video_settings(spec, data, errors)
    _check_choice(data, errors, "aspect_ratio", ASPECT_RATIOS)
    if not isinstance(data["generate_audio"], bool):
        errors["generate_audio"] = "must be true or false"

    if spec.is_image_to_video and "image_url" not in errors:
        image_url = data.get("image_url")
        if not isinstance(image_url, str) or not image_url.strip():
            errors["image_url"] = "is required for image-to-video: an https URL or a data: URI of the start image"
        elif not image_url.startswith(("http://", "https://", "data:image/")):
            errors["image_url"] = "must be an http(s) URL or a data:image/… URI"

    if errors:
        raise InputError(errors)
    return data


def _check_video_settings(spec: ModelSpec, data: dict[str, Any], errors: dict[str, str]) -> None:
    """Duration, resolution and fps (what the price depends on), normalised in `data` when allowed."""
    _check_choice(data, errors, "duration", spec.durations, unit=" seconds")
    _check_choice(data, errors, "resolution", RESOLUTIONS)
    _check_choice(data, errors, "fps", FPS_VALUES)
    if spec.is_fast and "duration" not in errors and int(data["duration"]) > 10:
        if data.get("fps") != "25" or data.get("resolution") != "1080p":
            errors["duration"] = (
                f"{data['duration']} seconds is only available at 25 fps and 1080p; "
                "use 6, 8 or 10 seconds for other settings"
            )


def quote_usd(model: str, settings_chosen: dict[str, Any]) -> Decimal | None:
    """The price of `model` (an id or short name) with the video settings in `settings_chosen`
    (duration, resolution, fps; the defaults for those left out), before anything else of a request
    is known; None when they are not an allowed combination for that model."""
    try:
        spec = resolve_model(model)
    except InputError:
        return None
    data = {**DEFAULTS, **{name: settings_chosen[name] for name in ("duration", "resolution", "fps")
                           if settings_chosen.get(name) is not None}}
    errors: dict[str, str] = {}
    _check_video_settings(spec, data, errors)
    return None if errors else price_usd(spec, data)


def _check_prompt(data: dict[str, Any], errors: dict[str, str]) -> None:
    prompt = data.get("prompt")
    max_chars = settings.STUDIO_PROMPT_MAX_CHARS
    if not isinstance(prompt, str) or not prompt.strip():
        errors["prompt"] = "is required: a non-empty text describing the video"
    elif len(prompt.strip()) > max_chars:
        errors["prompt"] = f"is {len(prompt.strip())} characters long; at most {max_chars} are allowed"
    else:
        data["prompt"] = prompt.strip()


def _null_message(field: str) -> str:
    if field not in DEFAULTS:
        return "must not be null; it is required"
    default = DEFAULTS[field]
    shown = json.dumps(default) if isinstance(default, bool) else default  # JSON's spelling: true, not True
    return f"must not be null; leave it out to use the default {shown}"


def _check_choice(data: dict[str, Any], errors: dict[str, str], field: str, allowed: tuple[str, ...],
                  unit: str = "") -> None:
    value = data.get(field)
    # Integers are accepted for numeric enums; booleans are ints in Python, so exclude them explicitly.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() in allowed:
        data[field] = value.strip()
        return
    errors[field] = f"{_shown(value)} is not allowed; allowed values: {', '.join(allowed)}{unit}"


def _shown(value: Any) -> str:
    """A short rendering of a refused value (never the whole of a large list or object)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def price_usd(spec: ModelSpec, data: dict[str, Any]) -> Decimal:
    """Exact fal price of one generation with validated input `data`."""
    return PRICE_PER_SECOND[spec.tier][data["resolution"]] * int(data["duration"])
