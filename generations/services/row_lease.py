"""A running task's claim on a generation, kept alive by a heartbeat (shared by submit and store).

A task that works on a row for a while (a submit: building the payload, uploading a start image, the
POST; a store: fetching, copying, probing) claims it with `Generation.lease_expires_at` and renews
the claim every RENEW_EVERY seconds from a thread while it works. A task that dies stops renewing, so
its claim lapses within LEASE seconds and the tracker re-drives the row at once — instead of
waiting out a worst-case lease of django-q2's task timeout. A live claim also tells a second copy of
the same task (at-least-once delivery, or a re-drive that raced a slow start) to leave the row alone.

The heartbeat writes only `lease_expires_at`, compare-and-set on the value it wrote last: a claim
someone else took over (after a lapse) is never extended, and nothing the task itself writes
(status, `next_poll_at`) is touched.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from generations.models import Generation

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=15)
RENEW_EVERY = 5.0


def row_lease_claim(pk: uuid.UUID | str, statuses: Iterable[str]) -> datetime | None:
    """Claim generation `pk` while its status is one of `statuses` and no live claim holds it.

    Returns the claim's expiry (pass it to `row_lease_held`), or None: the row moved on, or another
    task is working on it right now. Also schedules the tracker's next look for when the claim would
    lapse, so a task that dies before its first heartbeat is re-driven too.
    """
    now = timezone.now()
    until = now + LEASE
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    claimed = Generation.objects.filter(free, pk=pk, status__in=tuple(statuses)).update(
        lease_expires_at=until, next_poll_at=until, updated_at=now)
    return until if claimed else None


def row_lease_live(lease_expires_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether a row's claim (its `lease_expires_at`) still holds at `now` (default: the present)."""
    return lease_expires_at is not None and lease_expires_at > (now or timezone.now())


@contextmanager
def row_lease_held(pk: uuid.UUID | str, statuses: Iterable[str], until: datetime) -> Iterator[None]:
    """Renew the claim `row_lease_claim` returned while the block runs; release it afterwards (a task
    may release it sooner, in the transition that ends its work, with `lease_expires_at=None`).

    The renewals run in a daemon thread with its own database connection; a renewal that fails (the
    database is restarting) is logged and tried again at the next beat — the claim may then lapse
    and the row be re-driven, which every task here is safe against.
    """
    statuses = tuple(statuses)
    stop = threading.Event()
    held = {"until": until}

    def beat() -> None:
        try:
            while not stop.wait(RENEW_EVERY):
                renewed = timezone.now() + LEASE
                try:
                    if not Generation.objects.filter(pk=pk, status__in=statuses, lease_expires_at=held["until"]).update(
                            lease_expires_at=renewed):
                        return  # the row moved on, or the claim was taken over: stop renewing
                except DatabaseError as exc:
                    log.warning("could not renew the claim on %s: %s", pk, exc)
                    continue
                held["until"] = renewed
        finally:
            connection.close()  # this thread's own connection

    heart = threading.Thread(target=beat, name=f"lease-{str(pk)[:8]}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        stop.set()
        heart.join(RENEW_EVERY)  # a beat stuck on a database lock must not hold the task up for long
        # Usually the task's last transition released the claim already: then only a read, where an
        # UPDATE matching nothing would still wait for SQLite's one writer.
        still_held = Generation.objects.filter(pk=pk, lease_expires_at=held["until"])
        if still_held.exists():
            still_held.update(lease_expires_at=None)
