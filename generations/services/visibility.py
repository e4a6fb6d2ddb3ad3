"""What staff may change about a finished or running generation besides its status: hidden or not,
waiting for review or not, and a refund of its spend. Each is one transaction with the row locked,
idempotent (a second hide changes nothing), and returns what changed for the caller to record
(the moderation app's staff actions audit each one by whom and why). Each runs in a transaction of
its own, or in a savepoint of the caller's, so the record can commit with the change."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from generations.models import Generation
from storage.models import UsageEntry
from storage.quotas import quota_refund


class NotRefundable(Exception):
    """Only finished generations can be refunded (an active one still holds a reservation)."""


class Change(NamedTuple):
    """A generation's moderation state before and after a change, and the generation as it is now."""

    generation: Generation
    before: dict[str, Any]
    after: dict[str, Any]


def generation_snapshot(generation: Generation) -> dict[str, Any]:
    """The fields a moderation change can move (what audit entries show as before → after)."""
    return {"status": generation.status, "is_hidden": generation.is_hidden, "hidden_reason": generation.hidden_reason,
            "flagged_at": generation.flagged_at, "flag_reason": generation.flag_reason}


def _change(generation: Generation, applies: Callable[[Generation], bool], **fields: Any) -> Change | None:
    """Set `fields` on `generation` if `applies(current row)`, with the row locked (a transaction of its
    own, or a savepoint of the caller's)."""
    with transaction.atomic():
        current = Generation.objects.select_for_update().get(pk=generation.pk)
        if not applies(current):
            return None
        before = generation_snapshot(current)
        Generation.objects.filter(pk=current.pk).update(**fields)
        current.refresh_from_db()
        return Change(current, before, generation_snapshot(current))


def generation_hide(generation: Generation, *, reason: str) -> Change | None:
    """Hide a generation from everyone but staff, at once: its pages stop playing it, signed links
    and download URLs answer 404, the API shows no video; the owner sees that it was hidden and why.
    None when it was already hidden."""
    return _change(generation, lambda current: not current.is_hidden,
                   is_hidden=True, hidden_reason=reason, hidden_at=timezone.now())


def generation_unhide(generation: Generation) -> Change | None:
    """Make a hidden generation visible to its owner again. None when it was not hidden."""
    return _change(generation, lambda current: current.is_hidden, is_hidden=False, hidden_reason="", hidden_at=None)


def generation_flag(generation: Generation, *, reason: str) -> Change | None:
    """Put a generation in the review queue. None when it was already there."""
    return _change(generation, lambda current: current.flagged_at is None,
                   flagged_at=timezone.now(), flag_reason=reason)


def generation_review(generation: Generation) -> Change | None:
    """Take a flagged generation out of the review queue (hidden or not stays as decided). None when
    it was not flagged."""
    return _change(generation, lambda current: current.flagged_at is not None,
                   flagged_at=None, reviewed_at=timezone.now())


def generation_refund(generation: Generation, *, note: str) -> UsageEntry | None:
    """Give the owner back the spend a finished generation still counts: a `refund` ledger line with
    `note` (bytes unchanged). Idempotent: None when nothing is left to refund (refunded before, or
    never charged). Raises NotRefundable for an active generation."""
    with transaction.atomic():
        current = Generation.objects.select_for_update().get(pk=generation.pk)  # serialises refunds of this job
        if current.status not in Generation.TERMINAL:
            raise NotRefundable(f"the generation is still {current.status}; cancel it or wait until it finishes")
        entry = quota_refund(job=current.pk, note=note)
        if entry is not None:
            Generation.objects.filter(pk=current.pk).update(refunded_at=timezone.now())
        return entry
