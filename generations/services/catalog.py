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
"""
from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fal_protocol.catalog import Endpoint
from fal_protocol.client import FalError, describe_detail
from generations.models import EndpointOverride, SchemaMismatch

log = logging.getLogger(__name__)
GONE_STATUSES = (404, 410)


def endpoint_gone(error: FalError) -> bool:
    """Whether fal's answer to a submit means the endpoint itself is gone (not this request's fault)."""
    return error.status_code in GONE_STATUSES


def endpoint_mark_unavailable(endpoint: Endpoint, error: FalError) -> None:
    """Mark `endpoint` unavailable (idempotent: the first sighting's time is kept)."""
    detail = f"fal answered {error.status_code}: {describe_detail(error.detail)}"
    override, _ = _override_for_update(endpoint)
    if override.unavailable_since is None:
        override.unavailable_since = timezone.now()
        override.unavailable_detail = detail[:2000]
        override.save(update_fields=["unavailable_since", "unavailable_detail", "updated_at"])
        log.error("%s is gone at fal (%s): new jobs for it are refused until an operator clears it",
                  endpoint.id, detail)


def _override_for_update(endpoint: Endpoint) -> tuple[EndpointOverride, bool]:
    try:
        with transaction.atomic():
            return EndpointOverride.objects.get_or_create(endpoint_id=endpoint.id)
    except IntegrityError:  # created concurrently
        return EndpointOverride.objects.get(endpoint_id=endpoint.id), False


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
