"""What staff do to one generation from the admin: hide, unhide, flag, review, refund, cancel, retry,
delete. Each call takes the acting user and a reason and writes its audit entry in the same
transaction as the change (the change itself is a generations service); each is idempotent where
the action allows (a second hide changes and records nothing)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction

from generations.models import Generation
from generations.services import visibility
from generations.services.cancel import generation_cancel
from generations.services.create import generation_retry
from generations.services.delete import generation_delete
from generations.services.visibility import Change, NotRefundable, generation_snapshot
from moderation.audit import audit_record
from moderation.models import AuditEntry
from storage.models import UsageEntry

__all__ = ["NotRefundable", "generation_hide", "generation_unhide", "generation_flag", "generation_review",
           "generation_refund", "generation_admin_cancel", "generation_admin_retry", "generation_admin_delete"]

Action = AuditEntry.Action
REFUND_PERMISSION = "generations.refund_generation"


def _audit(actor: User | None, action: str, generation: Generation, reason: str, before: dict[str, Any],
           after: dict[str, Any]) -> AuditEntry:
    return audit_record(actor=actor, action=action, target_type="generation", target_id=generation.pk,
                        reason=reason, before=before, after=after)


def _recorded(change: Change | None, actor: User | None, action: str, reason: str) -> bool:
    if change is None:
        return False
    _audit(actor, action, change.generation, reason, change.before, change.after)
    return True


def generation_hide(generation: Generation, *, actor: User | None, reason: str,
                    action: str = Action.HIDE) -> bool:
    """Hide a generation from everyone but staff (`visibility.generation_hide`). False (and nothing
    recorded) when it was already hidden. `actor=None` is the studio itself."""
    with transaction.atomic():
        return _recorded(visibility.generation_hide(generation, reason=reason), actor, action, reason)


def generation_unhide(generation: Generation, *, actor: User, reason: str) -> bool:
    """Make a hidden generation visible to its owner again. False if it was not hidden."""
    with transaction.atomic():
        return _recorded(visibility.generation_unhide(generation), actor, Action.UNHIDE, reason)


def generation_flag(generation: Generation, *, actor: User | None, reason: str) -> bool:
    """Put a generation in the review queue (the admin's "needs review" filter). False if already there."""
    with transaction.atomic():
        return _recorded(visibility.generation_flag(generation, reason=reason), actor, Action.FLAG, reason)


def generation_review(generation: Generation, *, actor: User, reason: str) -> bool:
    """Take a flagged generation out of the review queue (hidden or not stays as decided). False if not flagged."""
    with transaction.atomic():
        return _recorded(visibility.generation_review(generation), actor, Action.REVIEW, reason)


def generation_refund(generation: Generation, *, actor: User, reason: str) -> UsageEntry | None:
    """Give the owner back the spend a finished generation still counts, as a `refund` ledger line
    carrying the admin's reason (bytes unchanged). Idempotent: returns None when nothing is left to
    refund (refunded before, or never charged), and records nothing then. Needs the
    `generations.refund_generation` permission (PermissionDenied otherwise); raises NotRefundable for
    an active generation."""
    if not actor.has_perm(REFUND_PERMISSION):
        raise PermissionDenied("refunds need the refund_generation permission")
    with transaction.atomic():
        entry = visibility.generation_refund(generation, note=f"refunded by {actor.get_username()}: {reason}")
        if entry is not None:
            _audit(actor, Action.REFUND, generation, reason, {"net_spend_usd": -entry.usd},
                   {"net_spend_usd": 0, "refunded_usd": -entry.usd, "ledger_entry": entry.pk, "month": entry.month})
    return entry


def generation_admin_cancel(generation: Generation, *, actor: User, reason: str) -> Generation:
    """Cancel an active generation for its owner (`generation_cancel`: billed as the outcome table
    says), recording who and why. Raises NotCancelable for a finished one."""
    with transaction.atomic():
        before = generation_snapshot(Generation.objects.get(pk=generation.pk))
        canceled = generation_cancel(generation, message=f"canceled by the studio's staff: {reason}")
        _audit(actor, Action.CANCEL, canceled, reason, before, generation_snapshot(canceled))
    return canceled


def generation_admin_retry(generation: Generation, *, actor: User, reason: str) -> Generation:
    """Run a failed or canceled generation again for its owner (`generation_retry`: priced and
    reserved against the owner's quota). Returns the new generation."""
    with transaction.atomic():
        new = generation_retry(generation)
        _audit(actor, Action.RETRY, generation, reason, {"status": generation.status},
               {"new_generation": new.pk, "new_status": new.status})
    return new


def generation_admin_delete(generation: Generation, *, actor: User, reason: str) -> None:
    """Delete a finished generation with its files, freeing the owner's bytes (`generation_delete`).
    Raises StillActive for an active one."""
    with transaction.atomic():
        before = {**generation_snapshot(Generation.objects.get(pk=generation.pk)), "owner": generation.owner_id,
                  "prompt": generation.prompt[:500], "model": generation.model_id}
        generation_delete(generation)
        _audit(actor, Action.DELETE, generation, reason, before, {"deleted": True})
