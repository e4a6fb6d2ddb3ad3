"""The one place that hears about every status change of a generation (called by `transition`).

It runs inside the transition's transaction, so whatever it records commits with the new status
or not at all; anything that does network I/O must be enqueued on commit from here.
"""
from __future__ import annotations

from generations.models import Generation, GenerationEvent
from webhooks.services import webhook_events_for_generation


def generation_event_record(generation: Generation) -> None:
    """Append `generation`'s current status to its history (one INSERT)."""
    GenerationEvent.objects.create(generation_id=generation.pk, status=generation.status,
                                   error_code=generation.error_code, at=generation.updated_at)


def generation_status_changed(generation: Generation) -> None:
    """`generation` (freshly read) has just moved to `generation.status`."""
    generation_event_record(generation)
    webhook_events_for_generation(generation)
