"""Which waiting job goes to fal next: round-robin across users, oldest first within each.

A job's *turn* is its owner's number of jobs at fal (submitting, queued or running) plus its rank
among the owner's waiting jobs. Jobs are sent in order of turn, then age: the user with the fewest
jobs at fal goes first, users alternate, and one user's batch of 500 does not put another user's
single job behind it. `STUDIO_FAL_MAX_IN_FLIGHT` (unset: no limit) caps the jobs at fal at once.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Value, Window
from django.db.models.functions import Coalesce, RowNumber

from generations.models import Generation

Status = Generation.Status
AT_FAL = (Status.SUBMITTING, Status.QUEUED, Status.RUNNING)


def in_flight_cap() -> int | None:
    """STUDIO_FAL_MAX_IN_FLIGHT: the most jobs at fal at once, or None for no limit."""
    return settings.STUDIO_FAL_MAX_IN_FLIGHT


def at_fal_count(starting: Collection[str] = ()) -> int:
    """Jobs at fal now, counting `starting` (rows being sent, which may still read PENDING) once."""
    return Generation.objects.filter(status__in=AT_FAL).exclude(pk__in=list(starting)).count() + len(starting)


def _in_turn_order(waiting: QuerySet[Generation]) -> QuerySet[Generation]:
    at_fal = (Generation.objects.filter(owner=OuterRef("owner"), status__in=AT_FAL)
              .order_by().values("owner").annotate(n=Count("pk")).values("n"))
    rank = Window(RowNumber(), partition_by=[F("owner")], order_by=[F("created_at").asc(), F("pk").asc()])
    return (waiting.annotate(turn=Coalesce(Subquery(at_fal), Value(0)) + rank)
            .order_by("turn", "created_at", "pk"))


def next_to_submit(now: datetime, limit: int) -> list[tuple[uuid.UUID, datetime | None]]:
    """Up to `limit` PENDING rows due at `now` and not claimed, in turn order: (pk, next_poll_at)."""
    if limit <= 0:
        return []
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    due = Generation.objects.filter(free, status=Status.PENDING, next_poll_at__lte=now)
    return list(_in_turn_order(due).values_list("pk", "next_poll_at")[:limit])


def waits_for_a_slot(generation: Generation) -> bool:
    """Whether `generation` waits for a slot under STUDIO_FAL_MAX_IN_FLIGHT: its place in the line
    then changes as other jobs are sent, while its own row stays the same."""
    return generation.status == Status.PENDING and in_flight_cap() is not None


def slots_ahead(generation: Generation) -> int | None:
    """How many waiting jobs will be sent before this PENDING one while a cap is set (else None)."""
    if not waits_for_a_slot(generation):
        return None
    order = list(_in_turn_order(Generation.objects.filter(status=Status.PENDING)).values_list("pk", flat=True))
    return order.index(generation.pk) if generation.pk in order else 0
