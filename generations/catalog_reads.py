"""The catalog as users may use it: every endpoint of `fal_protocol.catalog` with the operator's word on
it (`EndpointOverride`: enabled, retired, prices) and the studio's own mark when fal answered it as gone.

`catalog_models()` is what `GET /api/v1/models/` answers and `manage.py models` prints; it reads all
overrides in one query.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from fal_protocol import catalog
from fal_protocol.catalog import Endpoint
from generations import ltx
from generations.models import EndpointOverride
from generations.quotes import usd_text

EXAMPLE_PROMPT = "A cowboy walking through a dusty town at high noon"
EXAMPLE_IMAGE_URL = "https://example.com/start.png"


@dataclass(frozen=True)
class CatalogModel:
    """One endpoint as offered now."""

    endpoint: Endpoint
    override: EndpointOverride | None
    short_name: str | None  # the short name that means this endpoint under STUDIO_LTX_VERSION
    rates: dict[str, Decimal]  # USD per second by resolution, the operator's overrides applied
    refusal: str  # why new jobs may not use it ("" when they may)
    example_input: dict[str, Any]
    example_cost_usd: Decimal

    @property
    def enabled(self) -> bool:
        """The operator offers it: neither disabled nor retired."""
        return self.override is None or (self.override.enabled and not self.override.retired)

    @property
    def retired(self) -> bool:
        return self.override is not None and self.override.retired

    @property
    def available(self) -> bool:
        """fal has not answered a submit to it as gone (404/410)."""
        return self.override is None or self.override.unavailable_since is None

    @property
    def replacement(self) -> str | None:
        return (self.override.replacement or None) if self.override is not None else None

    @property
    def overridden_resolutions(self) -> list[str]:
        """The resolutions whose price the operator set (replacing the catalog's)."""
        chosen = self.override.price_per_second if self.override is not None else {}
        return [resolution for resolution in self.rates if resolution in chosen]

    def as_json(self) -> dict[str, Any]:
        """The entry as `GET /api/v1/models/` shows it."""
        described = self.endpoint.describe()
        fields = described["fields"]
        if "prompt" in fields:  # the studio's own limit, which validation applies
            fields["prompt"]["max"] = settings.STUDIO_PROMPT_MAX_CHARS
        return {
            "id": self.endpoint.id, "version": self.endpoint.version, "kind": self.endpoint.kind,
            "tier": self.endpoint.tier, "label": self.endpoint.label, "aliases": described["aliases"],
            "enabled": self.enabled, "retired": self.retired, "available": self.available,
            "refusal": self.refusal or None, "replacement": self.replacement, "short_name": self.short_name,
            "fields": fields,
            "price": {
                "unit": "second",
                "per_second": {resolution: usd_text(rate) for resolution, rate in self.rates.items()},
                "confirmed": self.endpoint.price_confirmed,
                "overridden": bool(self.overridden_resolutions),
                "example": {"input": self.example_input, "cost_usd": usd_text(self.example_cost_usd)},
            },
        }


def catalog_models() -> list[CatalogModel]:
    """Every endpoint of the catalog, in its order, as offered now (one query: all overrides)."""
    overrides = {override.endpoint_id: override for override in
                 EndpointOverride.objects.filter(endpoint_id__in=list(catalog.BY_ID))}
    return [catalog_model(endpoint, overrides.get(endpoint.id)) for endpoint in catalog.ENDPOINTS]


def catalog_model(endpoint: Endpoint, override: EndpointOverride | None) -> CatalogModel:
    """`endpoint` with `override` applied (no query)."""
    example = example_input(endpoint)
    return CatalogModel(
        endpoint=endpoint, override=override, short_name=short_name_for(endpoint),
        rates=ltx.rates(endpoint, override), refusal=ltx.endpoint_refusal(endpoint, override),
        example_input=example,
        example_cost_usd=ltx.price_usd(endpoint, ltx.validate_input(endpoint, example), override))


def short_name_for(endpoint: Endpoint) -> str | None:
    """The short name (t2v, i2v-fast, …) that means `endpoint` under STUDIO_LTX_VERSION, if any."""
    if endpoint.version != ltx.version():
        return None
    return next((name for name, kind_tier in catalog.SHORT_NAMES.items()
                 if kind_tier == (endpoint.kind, endpoint.tier)), None)


def example_input(endpoint: Endpoint) -> dict[str, Any]:
    """A minimal valid input: its required fields, everything else left to the defaults."""
    values = {"text": EXAMPLE_PROMPT, "image": EXAMPLE_IMAGE_URL}
    return {field.name: values.get(field.type, field.default) for field in endpoint.fields if field.required}
