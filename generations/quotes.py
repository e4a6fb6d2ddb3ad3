"""Price quotes: what a generation would cost, validated exactly like a create, with no side effect.

`quote_for(model, input)` resolves the model, validates the input as `generation_create` does
(`ltx.validate_input`: every bad field named, with what is allowed), refuses a model new jobs may
not use (disabled, retired or gone: `model` is named, with the replacement), and prices it with the
operator's override. It writes no row, reserves no quota, calls nothing at fal and fetches no image:
image fields are checked for their shape only (an http(s) URL or a data URI), so a quote can
succeed where the create would later refuse the image itself. The moderation prompt checks, which
may record a refusal, do not run either. `POST /api/v1/price/` and `manage.py generate --dry-run`
both answer with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User

from fal_protocol.catalog import Endpoint
from generations import ltx
from generations.media_inputs import MEDIA_INPUTS
from generations.selectors import generation_get_for


@dataclass(frozen=True)
class Quote:
    """The price of one generation: `cost_usd` = `seconds` × `per_second` (the rate at `resolution`)."""

    endpoint: Endpoint
    input: dict[str, Any]  # normalised: defaults applied, numbers in the endpoint's wire type
    resolution: str
    seconds: int
    per_second: Decimal
    cost_usd: Decimal

    def as_json(self) -> dict[str, Any]:
        """The quote as `POST /api/v1/price/` answers it."""
        return {"model": self.endpoint.id, "cost_usd": usd_text(self.cost_usd), "currency": "USD",
                "input": self.input, "per_second": usd_text(self.per_second), "seconds": self.seconds}


def quote_for(model: Any, input: Any, *, owner: User | None = None, source: Any = None) -> Quote:
    """The price of a generation of `model` (an id, alias or short name) with `input`.

    Raises `ltx.InputError` naming every bad field: `model` (unknown, or one new jobs may not use,
    naming its replacement), each bad input field, and `source`. `source` (for taking a generation
    further; it does not change the price) must be the id of one of `owner`'s generations. Runs
    at most two queries (the endpoint's override, the source) and writes nothing.

    The normalised input shows a data URI as the reference a created job would store (e.g.
    "studio:start-image"), not the bytes; an http(s) URL stays as given (it is not fetched)."""
    errors: dict[str, str] = {}
    if source is not None and (owner is None or generation_get_for(owner, str(source)) is None):
        errors["source"] = "no generation of yours has this id"
    try:
        endpoint = ltx.resolve_model(model)
    except ltx.InputError as exc:
        raise ltx.InputError({**exc.errors, **errors}) from None
    try:
        data = ltx.validate_input(endpoint, input)
    except ltx.InputError as exc:
        errors.update(exc.errors)
        data = {}
    override = ltx.endpoint_override(endpoint)
    refusal = ltx.endpoint_refusal(endpoint, override)
    if refusal:
        errors = {"model": refusal, **errors}
    if errors:
        raise ltx.InputError(errors)
    rate = ltx.rates(endpoint, override)[data["resolution"]]
    shown = {**data, **{medium.field: medium.ref for medium in MEDIA_INPUTS
                        if str(data.get(medium.field, "")).startswith("data:")}}
    return Quote(endpoint=endpoint, input=shown, resolution=str(data["resolution"]), seconds=int(data["duration"]),
                 per_second=rate, cost_usd=ltx.price_usd(endpoint, data, override))


def usd_text(amount: Decimal) -> str:
    """A USD amount as text, exact and with at least two decimals: "0.48", "0.045", "12.00"."""
    whole, _, fraction = format(amount.normalize(), "f").partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
