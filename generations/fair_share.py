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
from typing import NamedTuple

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet, Window
from django.db.models.functions import RowNumber

from generations.models import Generation

Status = Generation.Status
AT_FAL = (Status.SUBMITTING, Status.QUEUED, Status.RUNNING)


class Waiting(NamedTuple):
    pk: uuid.UUID
    owner_id: int
    created_at: datetime
    next_poll_at: datetime | None
    rank: int  # among its owner's waiting jobs, oldest first


def in_flight_cap() -> int | None:
    """STUDIO_FAL_MAX_IN_FLIGHT: the most jobs at fal at once, or None for no limit."""
    return settings.STUDIO_FAL_MAX_IN_FLIGHT


def at_fal_count(starting: Collection[str] = ()) -> int:
    """Jobs at fal now, counting `starting` (rows being sent, which may still read PENDING) once."""
    return Generation.objects.filter(status__in=AT_FAL).exclude(pk__in=list(starting)).count() + len(starting)


def _in_turn_order(waiting: QuerySet[Generation], *, first: int | None = None) -> list[Waiting]:
    """`waiting` rows in turn order; with `first`, only rows that can be among the first `first`.

    Two plain queries: each owner's waiting jobs ranked (at most `first` of each, as no owner's
    later job can come before its own earlier ones), and the jobs at fal counted per owner. A count
    per waiting row, as a correlated subquery, reads the owner's whole history for every row: a
    second and more per look with a thousand jobs waiting."""
    rank = Window(RowNumber(), partition_by=[F("owner")], order_by=[F("created_at").asc(), F("pk").asc()])
    ranked = waiting.order_by().annotate(rank=rank)
    if first is not None:
        ranked = ranked.filter(rank__lte=first)
    rows = [Waiting(*row) for row in ranked.values_list("pk", "owner_id", "created_at", "next_poll_at", "rank")]
    if not rows:
        return []
    at_fal = dict(Generation.objects.filter(status__in=AT_FAL, owner__in={row.owner_id for row in rows})
                  .order_by().values_list("owner").annotate(n=Count("pk")))
    return sorted(rows, key=lambda row: (at_fal.get(row.owner_id, 0) + row.rank, row.created_at, row.pk))


def next_to_submit(now: datetime, limit: int) -> list[tuple[uuid.UUID, datetime | None]]:
    """Up to `limit` PENDING rows due at `now` and not claimed, in turn order: (pk, next_poll_at)."""
    if limit <= 0:
        return []
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    due = Generation.objects.filter(free, status=Status.PENDING, next_poll_at__lte=now)
    return [(row.pk, row.next_poll_at) for row in _in_turn_order(due, first=limit)[:limit]]


def waits_for_a_slot(generation: Generation) -> bool:
    """Whether `generation` waits for a slot under STUDIO_FAL_MAX_IN_FLIGHT: its place in the line
    then changes as other jobs are sent, while its own row stays the same."""
    return generation.status == Status.PENDING and in_flight_cap() is not None


def slots_ahead(generation: Generation) -> int | None:
    """How many waiting jobs will be sent before this PENDING one while a cap is set (else None)."""
    if not waits_for_a_slot(generation):
        return None
    order = [row.pk for row in _in_turn_order(Generation.objects.filter(status=Status.PENDING))]
    return order.index(generation.pk) if generation.pk in order else 0
