"""The one place that hears about every status change of a generation (called by `transition`),
and about every pause and resume of submissions to fal (called by provider_switch.py).

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
