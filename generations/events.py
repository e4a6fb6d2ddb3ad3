"""The one place that hears about every status change of a generation (called by `transition`),
about every pause and resume of submissions to fal (called by provider_switch.py), and about every
change to the catalog's overrides and schema-drift records (called by services/catalog.py).

It runs inside the change's transaction, so whatever it records — the status history here, and
whatever the listeners record (integrator webhooks' outbox, registered by the webhooks app; the
audit log, registered by the moderation app, each in its `AppConfig.ready`) — commits with the
change or not at all; anything that does network I/O must be enqueued on commit by the listener.
Listeners sit above generations: generations never imports them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from django.contrib.auth.models import User

from generations.models import Generation, GenerationEvent

StatusListener = Callable[[Generation], None]
_listeners: list[StatusListener] = []


class ProviderListener(Protocol):
    def __call__(self, *, actor: User | None, paused: bool, reason: str, before: dict[str, Any],
                 after: dict[str, Any]) -> None: ...


_provider_listeners: list[ProviderListener] = []


def status_listener_add(listener: StatusListener) -> None:
    """Call `listener(generation)` on every status change, inside its transaction (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


def generation_event_record(generation: Generation) -> None:
    """Append `generation`'s current status to its history (one INSERT)."""
    GenerationEvent.objects.create(generation_id=generation.pk, status=generation.status,
                                   error_code=generation.error_code, at=generation.updated_at)


def generation_status_changed(generation: Generation) -> None:
    """`generation` (freshly read) has just moved to `generation.status`."""
    generation_event_record(generation)
    for listener in _listeners:
        listener(generation)


def provider_listener_add(listener: ProviderListener) -> None:
    """Call `listener(actor=…, paused=…, reason=…, before=…, after=…)` on every pause and resume of
    submissions (`actor` None: the studio itself), inside its transaction (idempotent)."""
    if listener not in _provider_listeners:
        _provider_listeners.append(listener)


def provider_changed(*, actor: User | None, paused: bool, reason: str, before: dict[str, Any],
                     after: dict[str, Any]) -> None:
    """Submissions to fal were just paused (`paused`) or resumed."""
    for listener in _provider_listeners:
        listener(actor=actor, paused=paused, reason=reason, before=before, after=after)


class CatalogListener(Protocol):
    def __call__(self, *, actor: User | None, change: str, target_type: str, target_id: str, reason: str,
                 before: dict[str, Any], after: dict[str, Any]) -> None: ...


_catalog_listeners: list[CatalogListener] = []

# What `catalog_changed` reports (`change`): an operator's override of an endpoint, the studio marking
# an endpoint gone at fal, an operator saying fal serves it again, an operator dismissing schema drift.
ENDPOINT_OVERRIDE = "endpoint_override"
ENDPOINT_UNAVAILABLE = "endpoint_unavailable"
ENDPOINT_AVAILABLE = "endpoint_available"
SCHEMA_MISMATCH_DISMISS = "schema_mismatch_dismiss"
CATALOG_CHANGES = (ENDPOINT_OVERRIDE, ENDPOINT_UNAVAILABLE, ENDPOINT_AVAILABLE, SCHEMA_MISMATCH_DISMISS)


def catalog_listener_add(listener: CatalogListener) -> None:
    """Call `listener(actor=…, change=…, target_type=…, target_id=…, reason=…, before=…, after=…)` on
    every change of an endpoint's override or a schema mismatch record (`actor` None: the studio
    itself), inside its transaction (idempotent)."""
    if listener not in _catalog_listeners:
        _catalog_listeners.append(listener)


def catalog_changed(*, actor: User | None, change: str, target_type: str, target_id: str, reason: str,
                    before: dict[str, Any], after: dict[str, Any]) -> None:
    """An endpoint's override or a schema mismatch record just changed (`change`: one of CATALOG_CHANGES)."""
    for listener in _catalog_listeners:
        listener(actor=actor, change=change, target_type=target_type, target_id=target_id, reason=reason,
                 before=before, after=after)
