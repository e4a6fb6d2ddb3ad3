"""The endpoints the simulator serves, and their input validation, read from ``fal_protocol.catalog``.

The catalog declares every LTX endpoint once (its fields, their types, enums, ranges, defaults, how
fal wants a number on the wire, the fast tier's rule); this module turns that into what fal answers:
``ROUTES`` maps each served model id (every catalog id and every alias) to its ``Route``, and
``validate_input`` checks a submitted body against the endpoint's fields. Nothing here repeats the
catalog's data: a new catalog endpoint is a new route, with its validation, without a change here.

Status, result and cancel URLs are under the route's ``owner/app`` (e.g. ``fal-ai/ltx-2``,
``fal-ai/ltx-2.3``); the full model id is accepted in its place (``KNOWN_PREFIXES``).

A refused input is a 422 ``{"detail": [item, ...]}``, each item as fal (pydantic) writes it:
``{"loc": ["body", field], "msg", "type"}`` plus ``"input"`` (the value sent) for most errors, in
the order of the endpoint's fields, then the fast tier's rule. How each field type is checked:

    text     a string, not blank, at most ``max`` characters (kept as sent)
    integer  ``wire == "string"`` (LTX-2.0's string enums): the string "6", and also 6 or 6.0 (not
             booleans), stripped; ``wire == "integer"`` (LTX-2.3): a JSON integer only, so "6", 6.0
             and true are refused as pydantic's strict int enums refuse them. Then one of ``enum``
             ("enum" error) and within ``min``..``max``. Normalised to an int either way.
    choice   exactly one of ``enum`` (a one-value enum is a pydantic Literal in fal's schema, so its
             error type is "literal_error"; otherwise "enum")
    boolean  true/false, 0/1 and "true"/"false"/"yes"/"no"/"1"/"0"
    image    an http(s) URL or a ``data:image/...`` URI

Fields left out take their default; a left-out field without a default is absent from the
parameters (an optional image: ``end_image_url``). ``null`` is "left out" for images and for
optional fields without a default; for a field with a default it is refused (fal's fields there are
not Optional). Fields the endpoint does not declare are ignored, as fal's input models ignore them
(so ``end_image_url`` sent to an LTX-2.0 endpoint is accepted and has no effect).

Fast tiers (``long_only_at_25_1080p``): a duration above 10 s is refused unless fps is 25 and the
resolution 1080p, the error naming fps or resolution.

A valid input becomes the normalised parameters the runner renders from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fal_protocol.catalog import (
    ENDPOINTS,
    LONG_AFTER_SECONDS,
    LONG_FPS,
    LONG_RESOLUTION,
    Endpoint,
    Field,
)

_IMAGE_URL = re.compile(r"^(data:image/[\w.+-]+(;[\w=.+-]+)*,|https?://\S+$)")
_LEFT_OUT = object()  # a field absent from the body, whose value is absent from the parameters


def error_item(field_name: str | None, msg: str, type_: str, value: Any = None) -> dict[str, Any]:
    """One item of fal's 422 ``detail`` list (``value``, when not None, is echoed as ``input``)."""
    loc = ["body", field_name] if field_name is not None else ["body"]
    entry: dict[str, Any] = {"loc": loc, "msg": msg, "type": type_}
    if value is not None:
        entry["input"] = value
    return entry


def enum_message(values: Iterable[object]) -> str:
    """pydantic's wording: strings quoted ('1080p'), numbers bare (6), the last after "or"."""
    shown = [f"'{v}'" if isinstance(v, str) else str(v) for v in values]
    return "Input should be " + (", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0])


# --- the routes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One model id the simulator serves: a catalog endpoint's id, or one of its aliases."""

    model_id: str
    endpoint: Endpoint

    @property
    def app(self) -> str:
        """owner/app of the id as sent: the prefix of the request's status, result and cancel URLs."""
        return "/".join(self.model_id.split("/")[:2])


ROUTES: Mapping[str, Route] = {
    model_id: Route(model_id, endpoint)
    for endpoint in ENDPOINTS
    for model_id in (endpoint.id, *endpoint.aliases)
}
APPS = frozenset(route.app for route in ROUTES.values())
# Prefixes accepted before /requests/: owner/app and the full model ids.
KNOWN_PREFIXES = APPS | frozenset(ROUTES)


# --- one field -------------------------------------------------------------------------------------


def _check_text(field: Field, body: Mapping[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    if field.name not in body or (body[field.name] is None and not field.required):
        if field.required:
            return None, error_item(field.name, "Field required", "missing")
        return (field.default if field.default is not None else _LEFT_OUT), None
    value = body[field.name]
    if not isinstance(value, str):
        return None, error_item(field.name, "Input should be a valid string", "string_type", value)
    if not value.strip():
        return None, error_item(field.name, "String should have at least 1 character", "string_too_short", value)
    if field.max is not None and len(value) > field.max:
        return None, error_item(field.name, f"String should have at most {int(field.max)} characters",
                                "string_too_long")
    return value, None


def _check_integer(field: Field, sent: Any) -> tuple[Any, dict[str, Any] | None]:
    lenient = field.wire == "string"
    number = _as_lenient_int(sent) if lenient else _as_strict_int(sent)
    if field.enum is not None:
        allowed = [str(v) for v in field.enum] if lenient else list(field.enum)
        if number is None or number not in field.enum:
            return None, error_item(field.name, enum_message(allowed), "enum", sent)
        return number, None
    if number is None:
        return None, error_item(field.name, "Input should be a valid integer", "int_type", sent)
    if field.min is not None and number < field.min:
        return None, error_item(field.name, f"Input should be greater than or equal to {_bare(field.min)}",
                                "greater_than_equal", sent)
    if field.max is not None and number > field.max:
        return None, error_item(field.name, f"Input should be less than or equal to {_bare(field.max)}",
                                "less_than_equal", sent)
    return number, None


def _check_choice(field: Field, sent: Any) -> tuple[Any, dict[str, Any] | None]:
    allowed = tuple(field.enum or ())
    if isinstance(sent, str) and sent in allowed:
        return sent, None
    return None, error_item(field.name, enum_message(allowed), "literal_error" if len(allowed) == 1 else "enum", sent)


def _check_boolean(field: Field, sent: Any) -> tuple[Any, dict[str, Any] | None]:
    value = _as_bool(sent)
    if value is None:
        return None, error_item(field.name, "Input should be a valid boolean", "bool_type", sent)
    return value, None


def _check_image(field: Field, body: Mapping[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    value = body.get(field.name)
    if value is None:  # left out or null
        return (None, error_item(field.name, "Field required", "missing")) if field.required else (_LEFT_OUT, None)
    if not isinstance(value, str):
        return None, error_item(field.name, "Input should be a valid string", "string_type", value)
    if not _IMAGE_URL.match(value):
        return None, error_item(field.name, "Input should be a valid URL or a data URI of an image", "url_parsing")
    return value, None


_VALUE_CHECKS = {"integer": _check_integer, "choice": _check_choice, "boolean": _check_boolean}
FIELD_TYPES = frozenset(_VALUE_CHECKS) | {"text", "image"}
# A new kind of catalog field needs its check here: fail at import, not with a 500 at submit.
_UNCHECKED = sorted({f"{e.id}: {f.name} ({f.type})" for e in ENDPOINTS for f in e.fields if f.type not in FIELD_TYPES})
if _UNCHECKED:
    raise ImportError(f"falsim.schema cannot check these catalog fields: {', '.join(_UNCHECKED)}")


def check_field(field: Field, body: Mapping[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """(normalised value, None), (``_LEFT_OUT``, None) for a left-out optional field, or (None, error)."""
    if field.type == "text":
        return _check_text(field, body)
    if field.type == "image":
        return _check_image(field, body)
    if field.name not in body:
        if field.default is not None:
            return _VALUE_CHECKS[field.type](field, field.default)
        return (None, error_item(field.name, "Field required", "missing")) if field.required else (_LEFT_OUT, None)
    if body[field.name] is None and field.default is None and not field.required:
        return _LEFT_OUT, None
    return _VALUE_CHECKS[field.type](field, body[field.name])


def _as_lenient_int(value: object) -> int | None:
    """LTX-2.0's string enums: "6" (stripped), and 6 or 6.0 too; never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)", value.strip()):
        return int(value.strip())  # as its enum string is written: "6", not "06" or "+6"
    return None


def _as_strict_int(value: object) -> int | None:
    """LTX-2.3's integer enums: a JSON integer only (pydantic's strict int: not "6", 6.0 or true)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return None


def _bare(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# --- the fast tier's rule ----------------------------------------------------------------------------


def _long_video_errors(params: Mapping[str, Any], body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Fast tiers: a duration above LONG_AFTER_SECONDS needs LONG_FPS and LONG_RESOLUTION (each checked
    only when it and the duration are themselves valid)."""
    if "duration" not in params or params["duration"] <= LONG_AFTER_SECONDS:
        return []
    errors = []
    if "fps" in params and params["fps"] != LONG_FPS:
        errors.append(error_item("fps", f"Durations longer than {LONG_AFTER_SECONDS} seconds require {LONG_FPS} fps",
                                 "value_error", body.get("fps")))
    if "resolution" in params and params["resolution"] != LONG_RESOLUTION:
        errors.append(error_item("resolution",
                                 f"Durations longer than {LONG_AFTER_SECONDS} seconds require {LONG_RESOLUTION}",
                                 "value_error", body.get("resolution")))
    return errors


def validate_input(endpoint: Endpoint, body: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Validate a submitted body like fal does. Returns (normalised params, []) or (None, errors)."""
    if not isinstance(body, dict):
        return None, [
            error_item(None, "Input should be a valid dictionary or object to extract fields from",
                       "model_attributes_type")
        ]
    params: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field in endpoint.fields:
        value, error = check_field(field, body)
        if error is not None:
            errors.append(error)
        elif value is not _LEFT_OUT:
            params[field.name] = value
    if endpoint.long_only_at_25_1080p:
        errors += _long_video_errors(params, body)
    return (None, errors) if errors else (params, [])
