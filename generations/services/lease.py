"""The tracker lease: at most one tracking chain polls fal at a time (see tracking.py).

A chain holds the lease row by its token and renews it while it works; when it dies, the lease
expires and `tracker_ensure` (called after submits, and by the once-a-minute sweeper) starts a new one.

Links of one chain are numbered (`<chain>:<n>`): link n+1 may take the lease straight from link n,
which keeps tracking until its successor has made it through the task queue (see tracking.py).
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from generations.models import Generation, TrackerLease
from generations.queue import TRACKER_TASK, enqueue
from generations.selectors import provider_is_paused_automatically

LEASE_NAME = "tracker"
# A chain renews the lease at every tick; a dead chain's lease lapses this long after its last one.
LEASE_DURATION = timedelta(seconds=15)
TRACKED = (Generation.Status.PENDING, Generation.Status.SUBMITTING, Generation.Status.QUEUED,
           Generation.Status.RUNNING, Generation.Status.STORING)


def tracking_has_work() -> bool:
    """Jobs in flight, or an automatic pause whose probes the chain runs (provider.py)."""
    return Generation.objects.filter(status__in=TRACKED).exists() or provider_is_paused_automatically()


def tracker_ensure() -> bool:
    """Enqueue a tracking chain if there is work and no live chain holds the lease. Cheap; idempotent.

    Called after creates and submits, by the once-a-minute sweeper, and every few seconds by the
    worker supervisor (`manage.py workers`), so a dead chain is replaced soon after its lease lapses.
    Two concurrent callers may both enqueue; only one of the chains wins `lease_claim`.
    """
    if not tracking_has_work():
        return False
    lease = TrackerLease.objects.filter(name=LEASE_NAME).first()
    if lease and lease.expires_at and lease.expires_at > timezone.now():
        return False
    enqueue(TRACKER_TASK, f"{uuid.uuid4().hex}:0")
    return True


def next_token(token: str) -> str:
    """The token of the link that succeeds `token` in its chain."""
    chain, number = _split(token)
    return f"{chain}:{number + 1}"


def _split(token: str) -> tuple[str, int]:
    chain, _, number = token.rpartition(":")
    if chain and number.isdigit():
        return chain, int(number)
    return token, 0  # a token from before links were numbered


def lease_claim(token: str) -> bool:
    """Take or renew the lease for `token`; False if another live chain (or a later link) holds it.

    The link just before `token` in its chain hands the lease over without waiting for it to expire.
    """
    now = timezone.now()
    chain, number = _split(token)
    predecessors = [f"{chain}:{number - 1}"] + ([chain] if number == 1 else []) if number else []
    TrackerLease.objects.get_or_create(name=LEASE_NAME)
    return (TrackerLease.objects.filter(name=LEASE_NAME)
            .filter(Q(token=token) | Q(token__in=predecessors) | Q(expires_at__isnull=True) | Q(expires_at__lt=now))
            .update(token=token, expires_at=now + LEASE_DURATION)) == 1


def lease_release(token: str) -> None:
    """Give up the tracker lease if `token` holds it, so the next tracker run takes it at once."""
    TrackerLease.objects.filter(name=LEASE_NAME, token=token).update(expires_at=None)
