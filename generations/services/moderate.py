"""What staff do to one generation from the admin: hide, unhide, flag, review, refund, cancel, retry,
delete. Each call takes the acting user and a reason, and writes its audit entry in the same
transaction as the change; each is idempotent where the action allows (a second hide changes and
records nothing)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from generations.models import Generation
from generations.services.cancel import generation_cancel
from generations.services.create import generation_retry
from generations.services.delete import generation_delete
from moderation.audit import audit_record
from moderation.models import AuditEntry
from storage.models import UsageEntry
from storage.quotas import quota_refund

Action = AuditEntry.Action
REFUND_PERMISSION = "generations.refund_generation"


class NotRefundable(Exception):
    """Only finished generations can be refunded (an active one still holds a reservation)."""


def _snapshot(generation: Generation) -> dict[str, Any]:
    return {"status": generation.status, "is_hidden": generation.is_hidden, "hidden_reason": generation.hidden_reason,
            "flagged_at": generation.flagged_at, "flag_reason": generation.flag_reason}


def _locked(generation: Generation) -> Generation:
    return Generation.objects.select_for_update().get(pk=generation.pk)


def _audit(actor, action: str, generation: Generation, reason: str, before: dict, after: dict) -> AuditEntry:
    return audit_record(actor=actor, action=action, target_type="generation", target_id=generation.pk,
                        reason=reason, before=before, after=after)


def generation_hide(generation: Generation, *, actor: AbstractBaseUser | None, reason: str,
                    action: str = Action.HIDE) -> bool:
    """Hide a generation from everyone but staff, at once: its pages stop playing it, signed links and
    download URLs answer 404, the API shows no video. The owner sees that it was hidden. Returns
    False (and records nothing) if it was already hidden. `actor=None` is the studio itself."""
    with transaction.atomic():
        current = _locked(generation)
        if current.is_hidden:
            return False
        before = _snapshot(current)
        now = timezone.now()
        Generation.objects.filter(pk=current.pk).update(is_hidden=True, hidden_reason=reason, hidden_at=now)
        current.refresh_from_db()
        _audit(actor, action, current, reason, before, _snapshot(current))
    return True


def generation_unhide(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> bool:
    """Make a hidden generation visible to its owner again. False if it was not hidden."""
    with transaction.atomic():
        current = _locked(generation)
        if not current.is_hidden:
            return False
        before = _snapshot(current)
        Generation.objects.filter(pk=current.pk).update(is_hidden=False, hidden_reason="", hidden_at=None)
        current.refresh_from_db()
        _audit(actor, Action.UNHIDE, current, reason, before, _snapshot(current))
    return True


def generation_flag(generation: Generation, *, actor: AbstractBaseUser | None, reason: str) -> bool:
    """Put a generation in the review queue (the admin's "needs review" filter). False if already there."""
    with transaction.atomic():
        current = _locked(generation)
        if current.flagged_at is not None:
            return False
        before = _snapshot(current)
        Generation.objects.filter(pk=current.pk).update(flagged_at=timezone.now(), flag_reason=reason)
        current.refresh_from_db()
        _audit(actor, Action.FLAG, current, reason, before, _snapshot(current))
    return True


def generation_review(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> bool:
    """Take a flagged generation out of the review queue (hidden or not stays as decided). False if not flagged."""
    with transaction.atomic():
        current = _locked(generation)
        if current.flagged_at is None:
            return False
        before = _snapshot(current)
        Generation.objects.filter(pk=current.pk).update(flagged_at=None, reviewed_at=timezone.now())
        current.refresh_from_db()
        _audit(actor, Action.REVIEW, current, reason, before, _snapshot(current))
    return True


def generation_refund(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> UsageEntry | None:
    """Give the owner back the spend a finished generation still counts, as a `refund` ledger line
    carrying the admin's reason (bytes unchanged, design.md §4). Idempotent: returns None when
    nothing is left to refund (refunded before, or never charged), and records nothing then.
    Needs the `generations.refund_generation` permission (PermissionDenied otherwise); raises
    NotRefundable for an active generation."""
    if not actor.has_perm(REFUND_PERMISSION):
        raise PermissionDenied("refunds need the refund_generation permission")
    with transaction.atomic():
        current = _locked(generation)  # serialises refunds of this job
        if current.status not in Generation.TERMINAL:
            raise NotRefundable(f"the generation is still {current.status}; cancel it or wait until it finishes")
        entry = quota_refund(job=current.pk, note=f"refunded by {actor.get_username()}: {reason}")
        if entry is None:
            return None
        Generation.objects.filter(pk=current.pk).update(refunded_at=timezone.now())
        _audit(actor, Action.REFUND, current, reason, {"net_spend_usd": -entry.usd},
               {"net_spend_usd": 0, "refunded_usd": -entry.usd, "ledger_entry": entry.pk, "month": entry.month})
    return entry


def generation_admin_cancel(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> Generation:
    """Cancel an active generation for its owner (`generation_cancel`: billed as the outcome table
    says), recording who and why. Raises NotCancelable for a finished one."""
    with transaction.atomic():
        before = _snapshot(Generation.objects.get(pk=generation.pk))
        canceled = generation_cancel(generation, message=f"canceled by the studio's staff: {reason}")
        _audit(actor, Action.CANCEL, canceled, reason, before, _snapshot(canceled))
    return canceled


def generation_admin_retry(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> Generation:
    """Run a failed or canceled generation again for its owner (`generation_retry`: priced and
    reserved against the owner's quota). Returns the new generation."""
    with transaction.atomic():
        new = generation_retry(generation)
        _audit(actor, Action.RETRY, generation, reason, {"status": generation.status},
               {"new_generation": new.pk, "new_status": new.status})
    return new


def generation_admin_delete(generation: Generation, *, actor: AbstractBaseUser, reason: str) -> None:
    """Delete a finished generation with its files, freeing the owner's bytes (`generation_delete`).
    Raises StillActive for an active one."""
    with transaction.atomic():
        before = {**_snapshot(Generation.objects.get(pk=generation.pk)), "owner": generation.owner_id,
                  "prompt": generation.prompt[:500], "model": generation.model_id}
        generation_delete(generation)
        _audit(actor, Action.DELETE, generation, reason, before, {"deleted": True})
