"""Moderation and operations services: suspensions, user reports with auto-hide, the "pause
provider" switch (by hand, or by the studio itself while fal refuses its account), quota overrides
and blocklist edits. Each writes its audit entry in the same
transaction as the change; admin actions, web views and the API call these and nothing else."""
from __future__ import annotations

import logging
from collections import OrderedDict, deque
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.forms.models import model_to_dict
from django.utils import timezone

from generations.models import Generation
from generations.queue import SUBMIT_TASK, enqueue_on_commit
from generations.services.create import PENDING_REDRIVE_AFTER
from generations.services.lease import tracker_ensure
from generations.services.moderate import generation_flag, generation_hide
from generations.transitions import transition
from moderation.audit import audit_record
from moderation.blocklist import blocklist_invalidate
from moderation.models import AuditEntry, BlockedTerm, ProviderSwitch, Suspension, VideoReport
from storage.models import UserQuota
from studio.text import text_problem

log = logging.getLogger(__name__)
Action = AuditEntry.Action
Status = Generation.Status
SUSPEND_PERMISSION = "moderation.suspend_user"
QUOTA_PERMISSION = "storage.change_userquota"
PAUSE_PERMISSION = "moderation.pause_provider"


class SuspendRefused(Exception):
    """This actor may not suspend this user (themselves, or a superuser without being one)."""


class ReportRefused(Exception):
    """A report without a reason."""


def _require(actor: AbstractBaseUser, permission: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"needs the {permission} permission")


# --- suspension ---------------------------------------------------------------------------------

def user_suspend(user: AbstractBaseUser, *, actor: AbstractBaseUser, reason: str) -> list[str] | None:
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
    User = get_user_model()
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


def user_reinstate(user: AbstractBaseUser, *, actor: AbstractBaseUser, reason: str) -> bool:
    """Lift a suspension: the user can sign in and use their API keys again. False when not suspended."""
    _require(actor, SUSPEND_PERMISSION)
    User = get_user_model()
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

def report_create(*, generation: Generation, reporter: AbstractBaseUser, reason: str) -> tuple[VideoReport, bool]:
    """Record `reporter`'s report of a generation they can view (the caller checks that).

    One report per user and generation: a repeat returns the first report and `created=False`,
    changing nothing. A new report puts the generation in the review queue (flagged by "system")
    and, once STUDIO_REPORTS_TO_HIDE distinct users reported it, hides it (audit: `auto_hide`).
    Raises ReportRefused for a blank reason or one that cannot be stored (`studio.text`).
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

def _switch_locked() -> ProviderSwitch:
    ProviderSwitch.objects.get_or_create(pk=ProviderSwitch.SINGLETON)
    return ProviderSwitch.objects.select_for_update().get(pk=ProviderSwitch.SINGLETON)


def provider_pause(*, actor: AbstractBaseUser, reason: str) -> int:
    """Hold every new submission to fal: new jobs are accepted as HELD, pending ones move to HELD.
    Jobs already at fal carry on. Returns how many pending jobs were held; 0 and nothing recorded
    when already paused. Needs `moderation.pause_provider`."""
    _require(actor, PAUSE_PERMISSION)
    return _pause(actor=actor, reason=reason, cause="") or 0


def provider_pause_automatic(*, cause: str, detail: str) -> bool:
    """The studio pauses itself because fal refuses its account (`cause`: one of
    `ProviderSwitch.Cause`; `detail`: what fal said). As `provider_pause`, audited as "system", and the
    staff are told by email once the pause commits. True only for the call that paused: repeats, and
    a pause already in place (a moderator's stays a moderator's), change nothing."""
    if cause not in ProviderSwitch.Cause.values:
        raise ValueError(f"unknown pause cause {cause!r}")
    reason = f"paused automatically: {ProviderSwitch.Cause(cause).label} ({detail[:500]})"
    if _pause(actor=None, reason=reason, cause=cause) is None:
        return False
    transaction.on_commit(lambda: provider_alert_staff(
        subject=f"Video generation paused: {ProviderSwitch.Cause(cause).label}",
        body=f"The studio paused submissions to fal by itself: {reason}.\n\nNew and pending jobs are held, "
             f"not failed and not charged. The studio asks fal every {settings.STUDIO_PROVIDER_PROBE_SECONDS:g} s "
             "whether the account works again and then resumes by itself; a superuser can also resume on the "
             "operations dashboard (/admin/dashboard/)."))
    return True


def _pause(*, actor: AbstractBaseUser | None, reason: str, cause: str) -> int | None:
    """Pause (held jobs counted) or None when already paused."""
    with transaction.atomic():
        switch = _switch_locked()
        if switch.paused:
            return None
        ProviderSwitch.objects.filter(pk=switch.pk).update(paused=True, reason=reason, cause=cause, changed_by=actor,
                                                           changed_at=timezone.now(), probed_at=None, probe_result="")
        held = 0
        for pk in Generation.objects.filter(status=Status.PENDING).order_by("created_at").values_list("pk", flat=True):
            held += transition(pk, from_=[Status.PENDING], to=Status.HELD, next_poll_at=None)
        audit_record(actor=actor, action=Action.PROVIDER_PAUSE, target_type="provider", target_id="fal",
                     reason=reason, before={"paused": False},
                     after={"paused": True, "held_jobs": held, **({"cause": cause} if cause else {})})
    return held


def fair_order(rows: list[tuple[Any, Any]]) -> list[Any]:
    """Job ids from (id, owner) rows sorted oldest first, interleaved round-robin per owner (in the
    order of each owner's oldest job), so one user's backlog cannot starve the others."""
    per_owner: OrderedDict[Any, deque] = OrderedDict()
    for pk, owner in rows:
        per_owner.setdefault(owner, deque()).append(pk)
    ordered = []
    while per_owner:
        for owner in list(per_owner):
            ordered.append(per_owner[owner].popleft())
            if not per_owner[owner]:
                del per_owner[owner]
    return ordered


def provider_resume(*, actor: AbstractBaseUser, reason: str) -> list[str]:
    """Submit again: held jobs move to PENDING and their submits are enqueued on commit in fair
    order (`fair_order`). Returns the released job ids in that order; [] and nothing recorded when
    not paused. Needs `moderation.pause_provider`. Ends an automatic pause too."""
    _require(actor, PAUSE_PERMISSION)
    return _resume(actor=actor, reason=reason, automatic_only=False)


def provider_resume_automatic(*, detail: str) -> list[str] | None:
    """End a pause the studio made itself (`provider_pause_automatic`) once fal accepts the account
    again: as `provider_resume`, audited as "system", the staff told by email. A moderator's pause is
    left alone. Returns the released job ids, or None when there was no automatic pause to end."""
    released = _resume(actor=None, reason=f"resumed automatically: {detail[:500]}", automatic_only=True)
    if released is not None:
        transaction.on_commit(lambda: provider_alert_staff(
            subject="Video generation resumed",
            body=f"fal accepts the studio's account again ({detail[:500]}); {len(released)} held job(s) "
                 "were submitted in fair order."))
    return released


def _resume(*, actor: AbstractBaseUser | None, reason: str, automatic_only: bool) -> list[str] | None:
    """Resume and release held jobs; with `automatic_only`, None when there is no automatic pause."""
    with transaction.atomic():
        switch = _switch_locked()
        if not switch.paused or (automatic_only and not switch.cause):
            return None if automatic_only else []
        now = timezone.now()
        ProviderSwitch.objects.filter(pk=switch.pk).update(paused=False, reason=reason, cause="", changed_by=actor,
                                                           changed_at=now)
        rows = list(Generation.objects.filter(status=Status.HELD).order_by("created_at", "pk")
                    .values_list("pk", "owner_id"))
        released = []
        for pk in fair_order(rows):
            if transition(pk, from_=[Status.HELD], to=Status.PENDING, next_poll_at=now + PENDING_REDRIVE_AFTER):
                enqueue_on_commit(SUBMIT_TASK, str(pk))
                released.append(str(pk))
        if released:
            transaction.on_commit(tracker_ensure)
        audit_record(actor=actor, action=Action.PROVIDER_RESUME, target_type="provider", target_id="fal",
                     reason=reason, before={"paused": True, **({"cause": switch.cause} if switch.cause else {})},
                     after={"paused": False, "released_jobs": released})
    return released


def provider_probe_claim(*, every_seconds: float) -> bool:
    """Claim the next probe of an automatic pause: True for exactly one caller once `every_seconds`
    have passed since the last probe (compare-and-set on `probed_at`), False while not due or not
    paused automatically."""
    now = timezone.now()
    due = Q(probed_at__isnull=True) | Q(probed_at__lte=now - timedelta(seconds=every_seconds))
    return ProviderSwitch.objects.filter(due, pk=ProviderSwitch.SINGLETON, paused=True).exclude(cause="").update(
        probed_at=now) == 1


def provider_probe_record(*, result: str, cause: str | None = None) -> None:
    """Note what the last probe of an automatic pause learnt (and fal's current refusal, if it changed)."""
    fields: dict[str, Any] = {"probe_result": result[:1000]}
    if cause:
        fields["cause"] = cause
    ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON, paused=True).exclude(cause="").update(**fields)


def provider_alert_staff(*, subject: str, body: str) -> int:
    """Email every active superuser that has an address (the people who can resume by hand); returns
    how many were written to. Never raises: an alert that cannot be sent is logged."""
    recipients = list(get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
                      .values_list("email", flat=True))
    if not recipients:
        return 0
    try:
        send_mail(f"[LTX Studio] {subject}", body, None, recipients)
    except Exception:  # the mail server is not our outage to report: log and carry on
        log.exception("could not email the staff: %s", subject)
        return 0
    return len(recipients)


# --- quotas and blocklist -----------------------------------------------------------------------

QUOTA_FIELDS = ("storage_bytes", "monthly_spend_usd", "active_jobs")


def quota_override_set(*, user: AbstractBaseUser, actor: AbstractBaseUser, reason: str = "",
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


def blocked_term_save(term: BlockedTerm, *, actor: AbstractBaseUser, reason: str = "") -> BlockedTerm:
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


def blocked_term_delete(term: BlockedTerm, *, actor: AbstractBaseUser, reason: str = "") -> None:
    with transaction.atomic():
        pk = term.pk
        before = model_to_dict(term, BLOCKED_TERM_FIELDS)
        term.delete()
        audit_record(actor=actor, action=Action.BLOCKLIST_CHANGE, target_type="blocked_term", target_id=pk,
                     reason=reason, before=before, after={"deleted": True})
    blocklist_invalidate()
