"""The catalog as users may use it: every endpoint of `fal_protocol.catalog` with the operator's word on
it (`EndpointOverride`: enabled, retired, prices) and the studio's own mark when fal answered it as gone.

`catalog_models()` is what `GET /api/v1/models/` answers and `manage.py models` prints; it reads all
overrides in one query.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings

from fal_protocol.catalog import Endpoint
from generations import ltx
from generations.quotes import usd_text
from generations.selectors import EndpointState, endpoint_states

EXAMPLE_PROMPT = "A cowboy walking through a dusty town at high noon"
EXAMPLE_IMAGE_URL = "https://example.com/start.png"


def catalog_models() -> list[EndpointState]:
    """Every endpoint of the catalog, in its order, as offered now (one query: all overrides)."""
    return endpoint_states()


def catalog_model_json(state: EndpointState) -> dict[str, Any]:
    """One endpoint as `GET /api/v1/models/` shows it (and `manage.py models --json` prints it)."""
    endpoint, override = state.endpoint, state.override
    described = endpoint.describe()
    fields = described["fields"]
    if "prompt" in fields:  # the studio's own limit, which validation applies
        fields["prompt"]["max"] = settings.STUDIO_PROMPT_MAX_CHARS
    example = example_input(endpoint)
    example_cost = ltx.price_usd(endpoint, ltx.validate_input(endpoint, example), override)
    return {
        "id": endpoint.id, "version": endpoint.version, "kind": endpoint.kind,
        "tier": endpoint.tier, "label": endpoint.label, "aliases": described["aliases"],
        "enabled": state.enabled, "retired": state.retired, "available": state.available,
        "refusal": state.refusal or None, "replacement": state.replacement, "short_name": state.short_name,
        "fields": fields,
        "price": {
            "unit": "second",
            "per_second": {resolution: usd_text(rate) for resolution, rate in state.rates.items()},
            "confirmed": endpoint.price_confirmed,
            "overridden": bool(state.overridden_resolutions),
            "example": {"input": example, "cost_usd": usd_text(example_cost)},
        },
    }


def example_input(endpoint: Endpoint) -> dict[str, Any]:
    """A minimal valid input: its required fields, everything else left to the defaults."""
    values = {"text": EXAMPLE_PROMPT, "image": EXAMPLE_IMAGE_URL}
    return {field.name: values.get(field.type, field.default) for field in endpoint.fields if field.required}
