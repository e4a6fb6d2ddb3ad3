"""The one place that hears about every status change of a generation (called by `transition`).

It runs inside the transition's transaction, so whatever it records — the status history here,
and whatever the listeners record (integrator webhooks' outbox, registered by the webhooks app in
its `AppConfig.ready`) — commits with the new status or not at all; anything that does network I/O
must be enqueued on commit by the listener. Listeners sit above generations: generations never
imports them.
"""
from __future__ import annotations

from collections.abc import Callable

from generations.models import Generation, GenerationEvent

StatusListener = Callable[[Generation], None]
_listeners: list[StatusListener] = []


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
