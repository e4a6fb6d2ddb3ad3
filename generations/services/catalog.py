"""What fal's answers teach the studio about its catalog: endpoints that are gone, and schema drift.

- `endpoint_gone(error)`: whether a submit's refusal means the endpoint no longer exists at fal
  (404 for the app, or 410).
- `endpoint_mark_unavailable(endpoint, error)` records it on the endpoint's `EndpointOverride`, so
  new creates get a 422 naming the model (and its replacement, if the operator set one), pending
  jobs fail without a call, and the dashboard, `/healthz` and `/metrics` say so. Clearing
  `unavailable_since` in the admin offers the endpoint again.
- `schema_mismatches_record(endpoint, error, payload)`: fal's 422 naming a field the catalog holds
  valid (the studio validated every value it sent) is counted as a `SchemaMismatch` for the
  dashboard; the job itself fails with fal's reason, as any rejection does.

The operator's moves (the admin calls these and nothing else; each needs
`generations.change_endpointoverride` or `generations.delete_schemamismatch`, which only superusers
hold, and is told to `events.catalog_changed` in its transaction: the moderation app audits it):
- `endpoint_override_set(endpoint_id, enabled=, retired=, replacement=, price_per_second=, by=)`,
  validated by `endpoint_override_problems` (InputError naming each bad field otherwise);
- `endpoint_mark_available(endpoint_id, by=)`: fal serves it again;
- `schema_mismatch_dismiss(mismatch, by=)`.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fal_protocol import catalog
from fal_protocol.catalog import Endpoint
from fal_protocol.client import FalError, describe_detail
from generations.events import (
    ENDPOINT_AVAILABLE,
    ENDPOINT_OVERRIDE,
    ENDPOINT_UNAVAILABLE,
    SCHEMA_MISMATCH_DISMISS,
    catalog_changed,
)
from generations.ltx import InputError
from generations.models import EndpointOverride, SchemaMismatch
from generations.selectors import short_names_meaning
from generations.services.provider import provider_alert_staff

log = logging.getLogger(__name__)
GONE_STATUSES = (404, 410)
OVERRIDE_PERMISSION = "generations.change_endpointoverride"
DISMISS_PERMISSION = "generations.delete_schemamismatch"
# Where the operator sets overrides (the admin, registered by the moderation app); named in alerts.
OVERRIDES_ADMIN_PATH = "/admin/generations/endpointoverride/"
# A price override: USD per second of output, digits with at most 4 decimals (what cost_usd keeps).
PRICE_PATTERN = re.compile(r"\d{1,6}(\.\d{1,4})?")


def endpoint_gone(error: FalError) -> bool:
    """Whether fal's answer to a submit means the endpoint itself is gone (not this request's fault)."""
    return error.status_code in GONE_STATUSES


def endpoint_mark_unavailable(endpoint: Endpoint, error: FalError) -> bool:
    """Mark `endpoint` unavailable. Idempotent: only the first sighting (compare-and-set on
    `unavailable_since`, so exactly one of concurrent submits) records the time and fal's answer,
    is audited (by the studio itself) and, once committed, emails the superusers; returns whether
    this call was that first sighting."""
    detail = f"fal answered {error.status_code}: {describe_detail(error.detail)}"[:2000]
    with transaction.atomic():
        _override_row(endpoint.id)
        now = timezone.now()
        first = EndpointOverride.objects.filter(endpoint_id=endpoint.id, unavailable_since__isnull=True).update(
            unavailable_since=now, unavailable_detail=detail, updated_at=now) == 1
        if first:
            catalog_changed(actor=None, change=ENDPOINT_UNAVAILABLE, target_type="endpoint", target_id=endpoint.id,
                            reason=detail, before={"unavailable_since": None},
                            after={"unavailable_since": now, "unavailable_detail": detail})
            subject, body = _unavailable_alert(endpoint, detail)
            transaction.on_commit(lambda: provider_alert_staff(subject=subject, body=body))
    if first:
        log.error("%s is gone at fal (%s): new jobs for it are refused until an operator clears it",
                  endpoint.id, detail)
    return first


def _unavailable_alert(endpoint: Endpoint, detail: str) -> tuple[str, str]:
    """The superusers' email when fal first answers `endpoint` as gone: what, fal's answer, what to do."""
    names = short_names_meaning(endpoint)
    version = settings.STUDIO_LTX_VERSION
    meaning = ""
    if names:
        quoted = ", ".join(f'"{name}"' for name in names)
        meaning = (f"\n\nIt is what {quoted} mean{'s' if len(names) == 1 else ''} under STUDIO_LTX_VERSION={version}: "
                   f"every user's {quoted} is refused until you act.")
    others = [e.id for e in catalog.ENDPOINTS if (e.kind, e.tier) == (endpoint.kind, endpoint.tier) and e != endpoint]
    body = (f"fal answered a submit to {endpoint.id} ({endpoint.label}) as if the endpoint no longer exists:\n"
            f"    {detail}\n\n"
            "The studio marked it unavailable: new jobs for it are refused (422 naming the model), and jobs "
            f"waiting for it fail with model_unavailable, uncharged.{meaning}\n\n"
            "What to do:\n"
            f"- set a replacement for it in the admin ({OVERRIDES_ADMIN_PATH}), so users are told what to use "
            f"instead{' (e.g. ' + ', '.join(others) + ')' if others else ''};\n"
            "- if the short names mean it, move STUDIO_LTX_VERSION to a version fal still serves (and restart);\n"
            "- if fal serves it again (a passing outage), clear \"unavailable\" there.")
    return f"Model endpoint gone at fal: {endpoint.id}", body


def _override_row(endpoint_id: str) -> None:
    """Make sure `endpoint_id` has an override row (an endpoint without one is as declared)."""
    try:
        with transaction.atomic():
            EndpointOverride.objects.get_or_create(endpoint_id=endpoint_id)
    except IntegrityError:  # created concurrently
        pass


# --- the operator's moves -----------------------------------------------------------------------

def _require(actor: User, permission: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"needs the {permission} permission")


def endpoint_override_problems(endpoint_id: str, *, replacement: str,
                               price_per_second: Any) -> dict[str, str]:
    """What is wrong with an override ({} when nothing), by field: `endpoint_id` must be a catalog
    endpoint; `replacement` empty or another catalog endpoint's id; `price_per_second` a JSON object
    mapping catalog resolutions to positive prices in USD given as strings ("0.05", at most 4 decimals)."""
    problems: dict[str, str] = {}
    allowed_ids = ", ".join(catalog.BY_ID)
    if endpoint_id not in catalog.BY_ID:
        problems["endpoint_id"] = f"{endpoint_id!r} is not an endpoint of the catalog; allowed: {allowed_ids}"
    if replacement:
        if replacement == endpoint_id:
            problems["replacement"] = "an endpoint cannot replace itself; name another endpoint of the catalog"
        elif replacement not in catalog.BY_ID:
            problems["replacement"] = (f"{replacement!r} is not an endpoint of the catalog; allowed: "
                                       f"{', '.join(i for i in catalog.BY_ID if i != endpoint_id)}")
    if price := _price_problem(price_per_second):
        problems["price_per_second"] = price
    return problems


def _price_problem(prices: Any) -> str:
    resolutions = ", ".join(catalog.RESOLUTIONS)
    if not isinstance(prices, Mapping):
        return (f'must be an object of USD per second by resolution, e.g. {{"1080p": "0.05"}}; '
                f"resolutions: {resolutions}")
    for resolution, price in prices.items():
        if resolution not in catalog.RESOLUTIONS:
            return f"{resolution!r} is not a resolution of the catalog; allowed: {resolutions}"
        if not isinstance(price, str):
            return f'the price for {resolution} must be a string of USD per second, e.g. "0.05" (not {price!r})'
        if not PRICE_PATTERN.fullmatch(price.strip()) or Decimal(price.strip()) <= 0:
            return (f'the price for {resolution} must be a positive number of USD per second with at most 4 '
                    f'decimals, e.g. "0.05" (not {price!r})')
    return ""


def _override_snapshot(override: EndpointOverride) -> dict[str, Any]:
    return {"enabled": override.enabled, "retired": override.retired, "replacement": override.replacement,
            "price_per_second": dict(override.price_per_second)}


def endpoint_override_set(endpoint_id: str, *, enabled: bool, retired: bool, replacement: str,
                          price_per_second: Mapping[str, str], by: User, reason: str = "") -> EndpointOverride:
    """Set the operator's word on catalog endpoint `endpoint_id` (creating its override row when it
    has none): `enabled` False or `retired` True refuse new jobs for it (naming `replacement`, if
    set); `price_per_second` overrides the catalog's price of the resolutions it names ({} = the
    catalog's). Leaves `unavailable_since` alone (see `endpoint_mark_available`).

    Raises InputError naming each bad field (`endpoint_override_problems`) and PermissionDenied
    without `generations.change_endpointoverride`; nothing is saved then. Audited (with `reason`)
    when something changed; returns the saved override."""
    _require(by, OVERRIDE_PERMISSION)
    replacement = (replacement or "").strip()
    problems = endpoint_override_problems(endpoint_id, replacement=replacement, price_per_second=price_per_second)
    if problems:
        raise InputError(problems)
    prices = {resolution: price.strip() for resolution, price in price_per_second.items()}
    with transaction.atomic():
        _override_row(endpoint_id)
        override = EndpointOverride.objects.select_for_update().get(endpoint_id=endpoint_id)
        before = _override_snapshot(override)
        override.enabled, override.retired, override.replacement = enabled, retired, replacement
        override.price_per_second = prices
        after = _override_snapshot(override)
        if after != before:
            override.save(update_fields=["enabled", "retired", "replacement", "price_per_second", "updated_at"])
            catalog_changed(actor=by, change=ENDPOINT_OVERRIDE, target_type="endpoint", target_id=endpoint_id,
                            reason=reason, before=before, after=after)
    return override


def endpoint_mark_available(endpoint_id: str, *, by: User, reason: str = "") -> bool:
    """fal serves `endpoint_id` again: clear the studio's "unavailable" mark, so new jobs may use it
    (unless the operator disabled or retired it). Returns False, changing and recording nothing,
    when it was not marked. Needs `generations.change_endpointoverride`; audited."""
    _require(by, OVERRIDE_PERMISSION)
    with transaction.atomic():
        override = (EndpointOverride.objects.select_for_update()
                    .filter(endpoint_id=endpoint_id, unavailable_since__isnull=False).first())
        if override is None:
            return False
        before = {"unavailable_since": override.unavailable_since, "unavailable_detail": override.unavailable_detail}
        override.unavailable_since, override.unavailable_detail = None, ""
        override.save(update_fields=["unavailable_since", "unavailable_detail", "updated_at"])
        catalog_changed(actor=by, change=ENDPOINT_AVAILABLE, target_type="endpoint", target_id=endpoint_id,
                        reason=reason, before=before, after={"unavailable_since": None, "unavailable_detail": ""})
    return True


def schema_mismatch_dismiss(mismatch: SchemaMismatch, *, by: User, reason: str = "") -> bool:
    """Delete a schema mismatch record (the operator has dealt with it; a new refusal records it
    afresh). Returns False when it was already gone. Needs `generations.delete_schemamismatch`; audited."""
    _require(by, DISMISS_PERMISSION)
    with transaction.atomic():
        row = SchemaMismatch.objects.select_for_update().filter(pk=mismatch.pk).first()
        if row is None:
            return False
        before = {"endpoint_id": row.endpoint_id, "field": row.field, "message": row.message, "value": row.value,
                  "count": row.count, "first_seen": row.first_seen, "last_seen": row.last_seen}
        row.delete()
        catalog_changed(actor=by, change=SCHEMA_MISMATCH_DISMISS, target_type="schema_mismatch",
                        target_id=str(mismatch.pk), reason=reason, before=before, after={})
    return True


def schema_mismatches_record(endpoint: Endpoint, error: FalError, payload: dict[str, Any]) -> list[str]:
    """Count each field of `endpoint` that fal's 422 refused although the catalog holds it valid;
    returns the fields recorded. Other refusals are left alone."""
    if error.status_code != 422 or not isinstance(error.detail, list):
        return []
    recorded = []
    for item in error.detail:
        field = _refused_field(item)
        if field is None or field not in endpoint.fields_by_name:
            continue
        message = str(item.get("msg", ""))[:1000]
        value = payload.get(field)
        shown = value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
        _mismatch_count(endpoint.id, field, message, shown)
        recorded.append(field)
    if recorded:
        log.warning("schema drift on %s: fal refused %s, which the catalog holds valid", endpoint.id,
                    ", ".join(recorded))
    return recorded


def _refused_field(item: Any) -> str | None:
    """The input field a fal (pydantic) error item names: `{"loc": ["body", field, …], …}`."""
    if not isinstance(item, dict):
        return None
    loc = item.get("loc")
    if isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body" and isinstance(loc[1], str):
        return loc[1]
    return None


def _mismatch_count(endpoint_id: str, field: str, message: str, value: Any) -> None:
    updated = SchemaMismatch.objects.filter(endpoint_id=endpoint_id, field=field).update(
        count=F("count") + 1, message=message, value=value, last_seen=timezone.now())
    if updated:
        return
    try:
        with transaction.atomic():
            SchemaMismatch.objects.create(endpoint_id=endpoint_id, field=field, message=message, value=value)
    except IntegrityError:  # recorded concurrently: count this sighting too
        SchemaMismatch.objects.filter(endpoint_id=endpoint_id, field=field).update(
            count=F("count") + 1, message=message, value=value, last_seen=timezone.now())
