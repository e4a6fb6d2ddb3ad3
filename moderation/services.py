"""Moderation and operations services: suspensions, user reports with auto-hide, the "pause
provider" switch by hand (and the audit of every pause, the studio's own included), quota overrides
and blocklist edits. Each writes its audit entry in the same transaction as the change; admin
actions, web views and the API call these and nothing else."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from core.text import text_problem
from generations.models import Generation
from generations.services.provider_switch import PAUSE_PERMISSION
from generations.services.provider_switch import provider_pause as switch_pause
from generations.services.provider_switch import provider_resume as switch_resume
from generations.transitions import transition
from moderation.audit import audit_record
from moderation.blocklist import blocklist_invalidate
from moderation.generation_actions import generation_flag, generation_hide
from moderation.models import AuditEntry, BlockedTerm, Suspension, VideoReport
from storage.models import UserQuota

Action = AuditEntry.Action
Status = Generation.Status
SUSPEND_PERMISSION = "moderation.suspend_user"
QUOTA_PERMISSION = "storage.change_userquota"


class SuspendRefused(Exception):
    """This actor may not suspend this user (themselves, or a superuser without being one)."""


class ReportRefused(Exception):
    """A report without a reason."""


def _require(actor: User, permission: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"needs the {permission} permission")


# --- suspension ---------------------------------------------------------------------------------

def user_suspend(user: User, *, actor: User, reason: str) -> list[str] | None:
    """Suspend `user`: they cannot sign in (their sessions end), their API keys (and so gateway
    calls) stop working, and their jobs that have not reached fal (pending, held) are canceled
    with error code `suspended` (spend and bytes released). Jobs already at fal run to the end
    and are kept (paid for); the user can act on them again once reinstated.

    Returns the ids of the canceled jobs; None (nothing recorded) when already suspended. Needs
    `moderation.suspend_user`; refuses to suspend the actor or, for non-superusers, a superuser.
    """
    _require(actor, SUSPEND_PERMISSION)
    if user.pk == actor.pk:
        raise SuspendRefused("you cannot suspend yourself")
    if user.is_superuser and not actor.is_superuser:
        raise SuspendRefused("only a superuser can suspend a superuser")
    with transaction.atomic():
        # The quota row lock orders this against `generation_create` (which re-checks is_active under it).
        UserQuota.objects.get_or_create(user_id=user.pk)
        UserQuota.objects.select_for_update().get(user_id=user.pk)
        if not User.objects.filter(pk=user.pk, is_active=True).update(is_active=False):
            return None
        Suspension.objects.create(user_id=user.pk, reason=reason, suspended_by=actor)
        canceled = []
        waiting = Generation.objects.filter(owner_id=user.pk, status__in=[Status.PENDING, Status.HELD])
        for pk in waiting.order_by("created_at").values_list("pk", flat=True):
            if transition(pk, from_=[Status.PENDING, Status.HELD], to=Status.CANCELED, error_code="suspended",
                          error_message="canceled because the account was suspended"):
                canceled.append(str(pk))
        audit_record(actor=actor, action=Action.SUSPEND, target_type="user", target_id=user.pk, reason=reason,
                     before={"is_active": True}, after={"is_active": False, "canceled_jobs": canceled})
    user.is_active = False
    return canceled


def user_reinstate(user: User, *, actor: User, reason: str) -> bool:
    """Lift a suspension: the user can sign in and use their API keys again. False when not suspended."""
    _require(actor, SUSPEND_PERMISSION)
    with transaction.atomic():
        if not User.objects.filter(pk=user.pk, is_active=False).update(is_active=True):
            return False
        Suspension.objects.filter(user_id=user.pk, lifted_at__isnull=True).update(
            lifted_at=timezone.now(), lifted_by=actor, lifted_reason=reason)
        audit_record(actor=actor, action=Action.REINSTATE, target_type="user", target_id=user.pk, reason=reason,
                     before={"is_active": False}, after={"is_active": True})
    user.is_active = True
    return True


# --- reports ------------------------------------------------------------------------------------

def report_create(*, generation: Generation, reporter: User, reason: str) -> tuple[VideoReport, bool]:
    """Record `reporter`'s report of a generation they can view (the caller checks that).

    One report per user and generation: a repeat returns the first report and `created=False`,
    changing nothing. A new report puts the generation in the review queue (flagged by "system")
    and, once STUDIO_REPORTS_TO_HIDE distinct users reported it, hides it (audit: `auto_hide`).
    Raises ReportRefused for a blank reason or one that cannot be stored (`core.text`).
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReportRefused("say what is wrong with this video")
    if problem := text_problem(reason):
        raise ReportRefused(f"the reason {problem}")
    with transaction.atomic():
        current = Generation.objects.select_for_update().get(pk=generation.pk)  # counts reports one at a time
        existing = VideoReport.objects.filter(generation=current, reporter_id=reporter.pk).first()
        if existing is not None:
            return existing, False
        report = VideoReport.objects.create(generation=current, reporter_id=reporter.pk, reason=reason[:2000])
        count = VideoReport.objects.filter(generation=current).count()
        audit_record(actor=reporter, action=Action.REPORT, target_type="generation", target_id=current.pk,
                     reason=reason[:2000], after={"reports": count})
        generation_flag(current, actor=None, reason=f"reported by users ({count})")
        threshold = settings.STUDIO_REPORTS_TO_HIDE
        if threshold and count >= threshold:
            generation_hide(current, actor=None, action=Action.AUTO_HIDE,
                            reason=f"hidden automatically after {count} reports; waiting for review")
    return report, True


# --- pause provider -----------------------------------------------------------------------------

def provider_pause(*, actor: User, reason: str) -> int:
    """A moderator holds every new submission to fal (generations' `provider_pause`: new jobs are
    accepted as HELD, pending ones move to HELD, jobs at fal carry on). Returns how many pending jobs
    were held; 0 and nothing recorded when already paused. Needs `generations.pause_provider`."""
    _require(actor, PAUSE_PERMISSION)
    return switch_pause(actor=actor, reason=reason) or 0


def provider_resume(*, actor: User, reason: str) -> list[str]:
    """A moderator lets submissions go again (generations' `provider_resume`: held jobs are
    submitted in fair order); ends an automatic pause too. Returns the released job ids; [] and
    nothing recorded when not paused. Needs `generations.pause_provider`."""
    _require(actor, PAUSE_PERMISSION)
    return switch_resume(actor=actor, reason=reason) or []


def provider_change_audit(*, actor: User | None, paused: bool, reason: str, before: dict[str, Any],
                          after: dict[str, Any]) -> None:
    """The audit entry of a pause or resume, by a moderator or the studio itself (a listener of
    generations.events, registered in ModerationConfig.ready: in the change's own transaction)."""
    audit_record(actor=actor, action=Action.PROVIDER_PAUSE if paused else Action.PROVIDER_RESUME,
                 target_type="provider", target_id="fal", reason=reason, before=before, after=after)


def catalog_change_audit(*, actor: User | None, change: str, target_type: str, target_id: str, reason: str,
                         before: dict[str, Any], after: dict[str, Any]) -> None:
    """The audit entry of a change to the catalog's overrides or schema-drift records, by an operator
    or the studio itself (a listener of generations.events, registered in ModerationConfig.ready: in
    the change's own transaction). `change` names the action (one of `events.CATALOG_CHANGES`)."""
    audit_record(actor=actor, action=Action(change), target_type=target_type, target_id=target_id, reason=reason,
                 before=before, after=after)


# --- quotas and blocklist -----------------------------------------------------------------------

QUOTA_FIELDS = ("storage_bytes", "monthly_spend_usd", "active_jobs")


def quota_override_set(*, user: User, actor: User, reason: str = "",
                       **limits: int | Decimal | None) -> UserQuota:
    """Set `user`'s limit overrides (`None` = the default from settings). Only the fields given
    change; records nothing when nothing changed. Needs `storage.change_userquota`."""
    _require(actor, QUOTA_PERMISSION)
    unknown = set(limits) - set(QUOTA_FIELDS)
    if unknown:
        raise TypeError(f"unknown quota fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        UserQuota.objects.get_or_create(user_id=user.pk)
        quota = UserQuota.objects.select_for_update().get(user_id=user.pk)
        before = {field: getattr(quota, field) for field in QUOTA_FIELDS}
        for field, value in limits.items():
            setattr(quota, field, value)
        quota.full_clean(exclude=["user"])
        after = {field: getattr(quota, field) for field in QUOTA_FIELDS}
        if after != before:
            quota.save(update_fields=list(limits))
            audit_record(actor=actor, action=Action.QUOTA_CHANGE, target_type="user", target_id=user.pk,
                         reason=reason, before=before, after=after)
    return quota


BLOCKED_TERM_FIELDS = ["term", "kind", "is_active", "note"]


def blocked_term_save(term: BlockedTerm, *, actor: User, reason: str = "") -> BlockedTerm:
    """Create or change a blocked term (validated), effective for the next create in every process."""
    with transaction.atomic():
        before = model_to_dict(BlockedTerm.objects.get(pk=term.pk), BLOCKED_TERM_FIELDS) if term.pk else {}
        term.full_clean()
        if term.pk is None:
            term.created_by = actor
        term.save()
        audit_record(actor=actor, action=Action.BLOCKLIST_CHANGE, target_type="blocked_term", target_id=term.pk,
                     reason=reason or term.note, before=before, after=model_to_dict(term, BLOCKED_TERM_FIELDS))
    blocklist_invalidate()
    return term


def blocked_term_delete(term: BlockedTerm, *, actor: User, reason: str = "") -> None:
    with transaction.atomic():
        pk = term.pk
        before = model_to_dict(term, BLOCKED_TERM_FIELDS)
        term.delete()
        audit_record(actor=actor, action=Action.BLOCKLIST_CHANGE, target_type="blocked_term", target_id=pk,
                     reason=reason, before=before, after={"deleted": True})
    blocklist_invalidate()
