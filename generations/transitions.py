"""The one way a generation changes status: a compare-and-set UPDATE."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from generations.billing import generation_settle
from generations.events import generation_status_changed
from generations.media_inputs import MEDIA_ATTRIBUTES
from generations.models import Generation


def transition(pk: uuid.UUID | str, *, from_: Iterable[str], to: str, **fields: Any) -> bool:
    """Move generation `pk` from any status in `from_` to `to`, setting `fields` in the same UPDATE.

    Returns True only for the caller whose UPDATE moved the row; False means someone else moved
    it first (normal under concurrency: log and return). Terminal moves stamp `finished_at` and
    settle the owner's quota in the same transaction, so a job can never end unsettled. Every move
    is announced to `events.generation_status_changed` in the same transaction.
    """
    from_ = tuple(from_)
    illegal = [status for status in from_ if to not in Generation.TRANSITIONS[status]]
    if illegal:
        raise ValueError(f"illegal transition {illegal} -> {to}")
    now = timezone.now()
    if to in Generation.TERMINAL:
        fields.setdefault("finished_at", now)
        fields.setdefault("next_poll_at", None)
    with transaction.atomic():
        moved = Generation.objects.filter(pk=pk, status__in=from_).update(status=to, updated_at=now, **fields) == 1
        if moved:
            generation = Generation.objects.select_related("video__file", "video__poster", *MEDIA_ATTRIBUTES).get(pk=pk)
            if to in Generation.TERMINAL:
                generation_settle(generation)
            generation_status_changed(generation)
    return moved


def update_while(pk: uuid.UUID | str, statuses: Iterable[str], **fields: Any) -> bool:
    """Set `fields` on generation `pk` only while its status is one of `statuses` (no status change)."""
    return Generation.objects.filter(pk=pk, status__in=tuple(statuses)).update(updated_at=timezone.now(), **fields) == 1
