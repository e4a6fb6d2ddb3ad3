"""Whether new submissions to fal are paused, and the moves that pause and resume them.

While paused, new jobs are accepted as HELD and pending ones are held; jobs already at fal carry on.
Resuming releases held jobs to PENDING and enqueues their submits in fair order (`fair_order`).
A pause is a moderator's (`cause` empty) or the studio's own while fal refuses its account
(`cause` says how; generations/services/provider.py probes and resumes it).

Each move runs in one transaction with the switch row locked, and tells the listeners registered
with `events.provider_listener_add` (the moderation app writes the audit entry) inside it.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from generations.events import provider_changed
from generations.models import Generation, ProviderSwitch
from generations.queue import SUBMIT_TASK, enqueue_on_commit
from generations.services.lease import tracker_ensure
from generations.transitions import transition

Status = Generation.Status
PAUSE_PERMISSION = "generations.pause_provider"


def _switch_locked() -> ProviderSwitch:
    ProviderSwitch.objects.get_or_create(pk=ProviderSwitch.SINGLETON)
    return ProviderSwitch.objects.select_for_update().get(pk=ProviderSwitch.SINGLETON)


def provider_pause(*, actor: User | None, reason: str, cause: str = "") -> int | None:
    """Pause submissions and hold every pending job. `actor=None` is the studio itself, which pauses
    only with a `cause` (one of `ProviderSwitch.Cause`). Returns how many jobs were held, or None (and
    nothing changes or is told) when already paused: a moderator's pause stays a moderator's."""
    if cause and cause not in ProviderSwitch.Cause.values:
        raise ValueError(f"unknown pause cause {cause!r}")
    with transaction.atomic():
        switch = _switch_locked()
        if switch.paused:
            return None
        ProviderSwitch.objects.filter(pk=switch.pk).update(paused=True, reason=reason, cause=cause, changed_by=actor,
                                                           changed_at=timezone.now(), probed_at=None, probe_result="")
        held = 0
        for pk in Generation.objects.filter(status=Status.PENDING).order_by("created_at").values_list("pk", flat=True):
            held += transition(pk, from_=[Status.PENDING], to=Status.HELD, next_poll_at=None)
        provider_changed(actor=actor, paused=True, reason=reason, before={"paused": False},
                         after={"paused": True, "held_jobs": held, **({"cause": cause} if cause else {})})
    return held


def provider_resume(*, actor: User | None, reason: str, automatic_only: bool = False) -> list[str] | None:
    """Resume submissions: held jobs move to PENDING and their submits are enqueued on commit in
    fair order. Returns the released job ids in that order; [] when not paused. With
    `automatic_only` (the studio's own resume) only a pause the studio made is ended: None otherwise."""
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
            if transition(pk, from_=[Status.HELD], to=Status.PENDING, next_poll_at=now):
                enqueue_on_commit(SUBMIT_TASK, str(pk))
                released.append(str(pk))
        if released:
            transaction.on_commit(tracker_ensure)
        provider_changed(actor=actor, paused=False, reason=reason,
                         before={"paused": True, **({"cause": switch.cause} if switch.cause else {})},
                         after={"paused": False, "released_jobs": released})
    return released


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
