"""The endpoints the simulator serves, and their input validation, as data.

``ENDPOINTS`` is a table: each ``Endpoint`` lists its input fields in the order fal reports their
errors, and the cross-field rules that apply to it; ``validate_input`` interprets any entry. Adding
an endpoint is adding an entry (a new field kind is only needed for a new kind of value).

Served today: ``fal-ai/ltx-2/text-to-video[/fast]``, ``fal-ai/ltx-2/image-to-video[/fast]`` and
the aliases ``fal-ai/ltxv-2/text-to-video``, ``fal-ai/ltxv-2/image-to-video``. Status, result and
cancel URLs are under the endpoint's ``owner/app`` (e.g. ``fal-ai/ltx-2``); the full endpoint id
is accepted in its place.

A refused input is a 422 ``{"detail": [item, ...]}``, each item as fal (pydantic) writes it:
``{"loc": ["body", field], "msg", "type"}`` plus ``"input"`` (the value sent) for most errors.
Defaults apply to fields left out; a valid input becomes the normalised parameters the runner
renders from (``duration`` and ``fps`` as ints).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PROMPT_MAX_CHARS = 2500
# The output resolutions and their pixel size (the runner renders at 1/scale of it).
RESOLUTIONS = {"1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160)}
_IMAGE_URL = re.compile(r"^(data:image/[\w.+-]+(;[\w=.+-]+)*,|https?://\S+$)")


def error_item(field_name: str | None, msg: str, type_: str, value: Any = None) -> dict[str, Any]:
    """One item of fal's 422 ``detail`` list (``value``, when not None, is echoed as ``input``)."""
    loc = ["body", field_name] if field_name is not None else ["body"]
    entry = {"loc": loc, "msg": msg, "type": type_}
    if value is not None:
        entry["input"] = value
    return entry


def enum_message(values: Iterable[object]) -> str:
    quoted = [f"'{v}'" for v in values]
    return "Input should be " + (", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0])


# --- field kinds: each checks its field of a body -> (normalised value, None) or (None, error item) ---


@dataclass(frozen=True)
class Text:
    """A required string that is not blank and at most ``max_chars`` long (kept as sent)."""

    name: str
    max_chars: int

    def check(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        value = body.get(self.name)
        if self.name not in body:
            return None, error_item(self.name, "Field required", "missing")
        if not isinstance(value, str):
            return None, error_item(self.name, "Input should be a valid string", "string_type", value)
        if not value.strip():
            return None, error_item(self.name, "String should have at least 1 character", "string_too_short", value)
        if len(value) > self.max_chars:
            return None, error_item(self.name, f"String should have at most {self.max_chars} characters",
                                    "string_too_long")
        return value, None


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (fal's enums are strings), ``default`` when left out.

    ``lenient``: ints and whole floats are accepted for their string (bools are not) and strings
    are stripped, and the value is normalised to an int. Otherwise only the exact string passes.
    """

    name: str
    values: tuple[str, ...]
    default: str
    lenient: bool = False
    error_type: str = "enum"

    def check(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        sent = body.get(self.name, self.default)
        value = _as_enum_string(sent) if self.lenient else sent
        if not (isinstance(value, str) and value in self.values):
            return None, error_item(self.name, enum_message(self.values), self.error_type, sent)
        return (int(value) if self.lenient else value), None


@dataclass(frozen=True)
class Flag:
    """A boolean, ``default`` when left out; 0/1 and "true"/"false"/"yes"/"no"/"1"/"0" are accepted."""

    name: str
    default: bool

    def check(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        sent = body.get(self.name, self.default)
        value = _as_bool(sent)
        if value is None:
            return None, error_item(self.name, "Input should be a valid boolean", "bool_type", sent)
        return value, None


@dataclass(frozen=True)
class ImageUrl:
    """A required image: an http(s) URL or a ``data:image/...`` URI (null counts as left out)."""

    name: str

    def check(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        value = body.get(self.name)
        if value is None:
            return None, error_item(self.name, "Field required", "missing")
        if not isinstance(value, str):
            return None, error_item(self.name, "Input should be a valid string", "string_type", value)
        if not _IMAGE_URL.match(value):
            return None, error_item(self.name, "Input should be a valid URL or a data URI of an image", "url_parsing")
        return value, None


@dataclass(frozen=True)
class Requires:
    """When ``when`` is valid and above ``above``, ``field`` (if valid) must be ``value``."""

    field: str
    value: object
    when: str
    above: int
    message: str

    def check(self, params: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if self.when not in params or params[self.when] <= self.above:
            return None
        if self.field not in params or params[self.field] == self.value:
            return None
        return error_item(self.field, self.message, "value_error", body.get(self.field))


def _as_enum_string(value: object) -> str | None:
    """fal's schema uses string enums; ints are accepted too (but not bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return None


# --- the endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    model_id: str
    fields: tuple
    rules: tuple[Requires, ...] = ()

    @property
    def app(self) -> str:
        """owner/app: the prefix of the request's status, result and cancel URLs."""
        return "/".join(self.model_id.split("/")[:2])


PRO_DURATIONS = ("6", "8", "10")
FAST_DURATIONS = PRO_DURATIONS + tuple(str(n) for n in range(12, 21, 2))

PROMPT = Text("prompt", max_chars=PROMPT_MAX_CHARS)
PRO_DURATION = Choice("duration", PRO_DURATIONS, default="6", lenient=True)
FAST_DURATION = Choice("duration", FAST_DURATIONS, default="6", lenient=True)
RESOLUTION = Choice("resolution", tuple(RESOLUTIONS), default="1080p")
FPS = Choice("fps", ("25", "50"), default="25", lenient=True)
GENERATE_AUDIO = Flag("generate_audio", default=True)
ASPECT_RATIO = Choice("aspect_ratio", ("16:9",), default="16:9", error_type="literal_error")
IMAGE_URL = ImageUrl("image_url")

LTX2_PRO = (PROMPT, PRO_DURATION, RESOLUTION, FPS, GENERATE_AUDIO, ASPECT_RATIO)
LTX2_FAST = (PROMPT, FAST_DURATION, RESOLUTION, FPS, GENERATE_AUDIO, ASPECT_RATIO)
# fal: Fast durations above 10 s are only offered at 25 fps and 1080p.
LTX2_FAST_RULES = (
    Requires("fps", 25, when="duration", above=10, message="Durations longer than 10 seconds require 25 fps"),
    Requires("resolution", "1080p", when="duration", above=10,
             message="Durations longer than 10 seconds require 1080p"),
)

ENDPOINTS = {
    endpoint.model_id: endpoint
    for endpoint in (
        Endpoint("fal-ai/ltx-2/text-to-video", LTX2_PRO),
        Endpoint("fal-ai/ltx-2/text-to-video/fast", LTX2_FAST, LTX2_FAST_RULES),
        Endpoint("fal-ai/ltx-2/image-to-video", LTX2_PRO + (IMAGE_URL,)),
        Endpoint("fal-ai/ltx-2/image-to-video/fast", LTX2_FAST + (IMAGE_URL,), LTX2_FAST_RULES),
        Endpoint("fal-ai/ltxv-2/text-to-video", LTX2_PRO),
        Endpoint("fal-ai/ltxv-2/image-to-video", LTX2_PRO + (IMAGE_URL,)),
    )
}
# Prefixes accepted before /requests/: owner/app and the full endpoint ids.
KNOWN_PREFIXES = {endpoint.app for endpoint in ENDPOINTS.values()} | set(ENDPOINTS)


def validate_input(endpoint: Endpoint, body: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Validate a submitted body like fal does. Returns (normalised params, []) or (None, errors)."""
    if not isinstance(body, dict):
        return None, [
            error_item(None, "Input should be a valid dictionary or object to extract fields from",
                       "model_attributes_type")
        ]
    params, errors = {}, []
    for field in endpoint.fields:
        value, error = field.check(body)
        if error is None:
            params[field.name] = value
        else:
            errors.append(error)
    errors += [error for rule in endpoint.rules if (error := rule.check(params, body)) is not None]
    return (None, errors) if errors else (params, [])
