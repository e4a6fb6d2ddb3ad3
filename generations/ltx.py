"""The LTX family as the studio offers it: fal_protocol.catalog's endpoints, the operator's chosen
version and overrides (`EndpointOverride`), input validation and prices.

The declaration of every endpoint is the catalog; this module applies it. `resolve_model` finds
the endpoint a user named (an id, an alias, or a short name meaning `STUDIO_LTX_VERSION`'s
endpoint); `endpoint_check_usable` refuses one the operator disabled or retired, or that fal
answered as gone; `validate_input` turns what a user sent (numbers as ints or digit strings) into
the exact body the endpoint expects (2.0: enum strings, 2.3: integers), or raises `InputError`
naming every bad field and what is allowed; `price_usd` prices it (an operator's price overrides
the catalog's).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from core.text import json_text_problem, text_problem
from fal_protocol import catalog
from fal_protocol.catalog import Endpoint, Field
from generations.models import EndpointOverride


class InputError(Exception):
    """Invalid generation input. `errors` maps each bad field to a sentence saying what is allowed."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


def version() -> str:
    """The LTX version the short names (t2v, i2v, …) mean: `STUDIO_LTX_VERSION`."""
    return str(settings.STUDIO_LTX_VERSION)


def model_names() -> list[str]:
    """Every name `resolve_model` accepts: ids, aliases, short names."""
    return [*catalog.BY_ID, *catalog.BY_ALIAS, *catalog.SHORT_NAMES]


def resolve_model(name: Any) -> Endpoint:
    """The endpoint `name` means: an id (itself), an alias, or a short name (t2v, t2v-fast, i2v,
    i2v-fast: that endpoint in `STUDIO_LTX_VERSION`). Raises InputError naming `model`."""
    endpoint = catalog.endpoint_for(name, version=version()) if isinstance(name, str) else None
    if endpoint is None:
        raise InputError({"model": f"unknown model {_shown(name)}; allowed: {', '.join(model_names())}"})
    return endpoint


def endpoint_override(endpoint: Endpoint) -> EndpointOverride | None:
    return EndpointOverride.objects.filter(endpoint_id=endpoint.id).first()


def endpoint_refusal(endpoint: Endpoint, override: EndpointOverride | None) -> str:
    """Why new jobs may not use `endpoint` ("" when they may): disabled or retired by the operator, or
    answered by fal as gone. Names the replacement when the operator set one."""
    if override is None:
        return ""
    if override.retired:
        why = f"{endpoint.id} has been retired"
    elif override.unavailable_since is not None:
        why = f"{endpoint.id} is no longer available at fal"
    elif not override.enabled:
        why = f"{endpoint.id} is disabled on this studio"
    else:
        return ""
    return f"{why}; use {override.replacement} instead" if override.replacement else why


def endpoint_check_usable(endpoint: Endpoint) -> EndpointOverride | None:
    """Raise InputError naming `model` when new jobs may not use `endpoint`; return its override."""
    override = endpoint_override(endpoint)
    refusal = endpoint_refusal(endpoint, override)
    if refusal:
        raise InputError({"model": refusal})
    return override


def upstream_id(endpoint: Endpoint) -> str:
    """The endpoint id sent to fal. 2.0's ids follow `STUDIO_UPSTREAM_MODEL_PREFIX` (an operator can
    follow a rename of the `fal-ai/ltx-2` app without a code change); the others are themselves."""
    prefix = "fal-ai/ltx-2/"
    if endpoint.version == "2.0" and endpoint.id.startswith(prefix):
        return f"{settings.STUDIO_UPSTREAM_MODEL_PREFIX}/{endpoint.id[len(prefix):]}"
    return endpoint.id


def validate_input(endpoint: Endpoint, raw: Any) -> dict[str, Any]:
    """Return the body fal expects for `endpoint` (defaults applied, numbers in the endpoint's wire
    type), or raise InputError naming every bad field and what is allowed.

    As in fal's schema, a field set to null is an error (leave it out to get the default), and so is
    text anywhere in the input that cannot be stored or sent (`core.text`: NUL, lone surrogates)."""
    if not isinstance(raw, dict):
        raise InputError({"input": "must be a JSON object with the LTX-2 fields"})
    errors: dict[str, str] = {}
    given: dict[str, Any] = {}
    allowed = ", ".join(endpoint.fields_by_name)
    for name, value in raw.items():
        name_problem = text_problem(name) if isinstance(name, str) else "must be text"
        if name_problem:
            errors["input"] = f"has a field name that {name_problem}"
        elif problem := json_text_problem(value):
            errors[name] = problem
        elif name not in endpoint.fields_by_name:
            errors[name] = f"unknown field for {endpoint.id}; allowed fields: {allowed}"
        elif value is None:
            errors[name] = _null_message(endpoint.fields_by_name[name])
        else:
            given[name] = value
    data: dict[str, Any] = {}
    for field in endpoint.fields:
        if field.name in errors:
            continue
        if field.name not in given:
            if field.required:
                errors[field.name] = _required_message(endpoint, field)
            elif field.default is not None:
                data[field.name] = field.as_wire(field.default)
            continue
        value, problem = _checked(field, given[field.name])
        if problem:
            errors[field.name] = problem
        else:
            data[field.name] = field.as_wire(value)
    _check_long_fast(endpoint, data, errors)
    if errors:
        raise InputError(errors)
    return data


def _checked(field: Field, value: Any) -> tuple[Any, str]:
    """`value` as the field's type (a number for "integer"), or a sentence saying what is allowed."""
    if field.type == "text":
        return _checked_text(field, value)
    if field.type == "boolean":
        return (value, "") if isinstance(value, bool) else (None, "must be true or false")
    if field.type == "image":
        if not isinstance(value, str) or not value.strip():
            return None, "must be an http(s) URL or a data:image/… URI"
        if not value.startswith(("http://", "https://", "data:image/")):
            return None, "must be an http(s) URL or a data:image/… URI"
        return value, ""
    if field.type == "integer":
        number = _integer(value)
        if number is not None and _in_range(field, number):
            return number, ""
        return None, f"{_shown(value)} is not allowed; allowed values: {_allowed(field)}"
    # "choice": a string from the enum
    if isinstance(value, str) and field.enum is not None and value.strip() in field.enum:
        return value.strip(), ""
    return None, f"{_shown(value)} is not allowed; allowed values: {_allowed(field)}"


def _checked_text(field: Field, value: Any) -> tuple[Any, str]:
    if not isinstance(value, str) or not value.strip():
        return None, "is required: a non-empty text describing the video"
    text = value.strip()
    max_chars = settings.STUDIO_PROMPT_MAX_CHARS if field.name == "prompt" else int(field.max or 0)
    if max_chars and len(text) > max_chars:
        return None, f"is {len(text)} characters long; at most {max_chars} are allowed"
    return text, ""


def _integer(value: Any) -> int | None:
    """An int, or a string of digits (users send both); booleans and floats are not numbers here."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _in_range(field: Field, number: int) -> bool:
    if field.enum is not None:
        return number in field.enum
    return (field.min is None or number >= field.min) and (field.max is None or number <= field.max)


def _allowed(field: Field) -> str:
    unit = " seconds" if field.name == "duration" else ""
    if field.enum is not None:
        return ", ".join(str(value) for value in field.enum) + unit
    return f"{field.min:g} to {field.max:g}{unit}"


def _check_long_fast(endpoint: Endpoint, data: Mapping[str, Any], errors: dict[str, str]) -> None:
    """The fast tiers: a video longer than 10 s only at 25 fps and 1080p."""
    if not endpoint.long_only_at_25_1080p or errors.keys() & {"duration", "fps", "resolution"}:
        return
    if int(data["duration"]) > catalog.LONG_AFTER_SECONDS and (
            int(data["fps"]) != catalog.LONG_FPS or data["resolution"] != catalog.LONG_RESOLUTION):
        short = [str(d) for d in endpoint.fields_by_name["duration"].enum or () if d <= catalog.LONG_AFTER_SECONDS]
        errors["duration"] = (f"{data['duration']} seconds is only available at {catalog.LONG_FPS} fps and "
                              f"{catalog.LONG_RESOLUTION}; use {', '.join(short[:-1])} or {short[-1]} seconds "
                              "for other settings")


def _required_message(endpoint: Endpoint, field: Field) -> str:
    if field.type == "text":
        return "is required: a non-empty text describing the video"
    if field.type == "image":
        return f"is required for {endpoint.id}: an https URL or a data: URI of the start image"
    return "is required"


def _null_message(field: Field) -> str:
    if field.default is None:
        return "must not be null; it is required" if field.required else "must not be null; leave it out"
    shown = json.dumps(field.default) if isinstance(field.default, bool) else field.default  # JSON's true
    return f"must not be null; leave it out to use the default {shown}"


def _shown(value: Any) -> str:
    """A short rendering of a refused value (never the whole of a large list or object)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def rates(endpoint: Endpoint, override: EndpointOverride | None = None) -> dict[str, Decimal]:
    """USD per second of output by resolution: the catalog's, with the operator's overrides."""
    chosen = dict(endpoint.price_per_second)
    if override is not None and isinstance(override.price_per_second, dict):
        for resolution, rate in override.price_per_second.items():
            if resolution in chosen and (price := _positive_decimal(rate)) is not None:
                chosen[resolution] = price
    return chosen


def _positive_decimal(value: Any) -> Decimal | None:
    """`value` as a positive Decimal, or None (the admin checks overrides; a row edited by hand
    with a bad price keeps the catalog's instead of breaking every create)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def price_usd(endpoint: Endpoint, data: Mapping[str, Any], override: EndpointOverride | None = None) -> Decimal:
    """Exact fal price of one generation with validated input `data` (duration × its resolution's rate)."""
    return rates(endpoint, override)[data["resolution"]] * int(data["duration"])


def quote_usd(model: str, settings_chosen: Mapping[str, Any]) -> Decimal | None:
    """The price of `model` (an id or short name) with the video settings in `settings_chosen`
    (duration, resolution, fps; the defaults for those left out), before anything else of a request
    is known; None when they are not an allowed combination for that model."""
    try:
        endpoint = resolve_model(model)
    except InputError:
        return None
    chosen: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in ("duration", "resolution", "fps"):
        field = endpoint.fields_by_name[name]
        value = settings_chosen.get(name)
        checked, problem = _checked(field, field.default if value is None else value)
        if problem:
            return None
        chosen[name] = checked
    _check_long_fast(endpoint, chosen, errors)
    return None if errors else price_usd(endpoint, chosen, endpoint_override(endpoint))
