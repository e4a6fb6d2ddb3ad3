"""The tracker lease: at most one tracking chain polls fal at a time (see tracking.py).

A chain holds the lease row by its token and renews it while it works; when it dies, the lease
expires and `tracker_ensure` (called after submits, and by the once-a-minute sweeper) starts a new one.

Links of one chain are numbered (`<chain>:<n>`): link n+1 may take the lease straight from link n,
which keeps tracking until its successor has made it through the task queue (see tracking.py). The
tracking driver (tracking_driver.py) holds the same lease by a plain token: it takes the lease from
any chain link at once (the link stops at its next tick), while no chain link takes it from a live
driver, and `tracker_ensure` enqueues no chain while it lives.
Other singletons (the status stream follower, fal_streams.py) hold leases of their own names.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from core.db_blips import close_broken_connections
from core.supervisor import HELPER_TOKEN_ENV
from generations.models import Generation, TrackerLease
from generations.queue import TRACKER_TASK, enqueue
from generations.selectors import provider_is_paused_automatically

log = logging.getLogger(__name__)
LEASE_NAME = "tracker"
LINK_MARK = ":"  # in every chain link's token (`<chain>:<n>`), in no driver's
STORE_DRIVER_LEASE = "stores"  # held by the store driver (store_driver.py)
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
    enqueue(TRACKER_TASK, f"{uuid.uuid4().hex}{LINK_MARK}0")
    return True


def next_token(token: str) -> str:
    """The token of the link that succeeds `token` in its chain."""
    chain, number = _split(token)
    return f"{chain}{LINK_MARK}{number + 1}"


def _split(token: str) -> tuple[str, int]:
    chain, _, number = token.rpartition(LINK_MARK)
    if chain and number.isdigit():
        return chain, int(number)
    return token, 0  # a token from before links were numbered


def lease_claim(token: str) -> bool:
    """Take or renew the lease for `token`; False if another live chain (or a later link) holds it.

    The link just before `token` in its chain hands the lease over without waiting for it to expire.
    """
    chain, number = _split(token)
    predecessors = [f"{chain}:{number - 1}"] + ([chain] if number == 1 else []) if number else []
    return named_lease_claim(LEASE_NAME, token, handed_over_by=predecessors)


def driver_lease_claim(token: str) -> bool:
    """Take or renew the tracker lease for the tracking driver's `token` (no chain link's): as a chain
    link may, and from a live chain link too. Two drivers never take it from each other."""
    return named_lease_claim(LEASE_NAME, token, over_chain_links=True)


def named_lease_claim(name: str, token: str, *, handed_over_by: list[str] | None = None,
                      over_chain_links: bool = False) -> bool:
    """Take or renew lease `name` for `token` (a compare-and-set on its row): True when it is free,
    expired, already `token`'s, held by one of `handed_over_by`, or with `over_chain_links` held by a
    link of a tracking chain."""
    now = timezone.now()
    TrackerLease.objects.get_or_create(name=name)
    holders = Q(token=token) | Q(token__in=handed_over_by or []) | Q(expires_at__isnull=True) | Q(expires_at__lt=now)
    if over_chain_links:
        holders |= Q(token__contains=LINK_MARK)
    return TrackerLease.objects.filter(holders, name=name).update(token=token, expires_at=now + LEASE_DURATION) == 1


def named_lease_release(name: str, token: str) -> None:
    """Give up lease `name` if `token` holds it, so the next claimant takes it at once."""
    TrackerLease.objects.filter(name=name, token=token).update(expires_at=None)


def lease_release(token: str) -> None:
    """Give up the tracker lease if `token` holds it, so the next tracker run takes it at once."""
    named_lease_release(LEASE_NAME, token)


def named_lease_live(name: str) -> bool:
    """Whether someone holds lease `name` now."""
    return TrackerLease.objects.filter(name=name, expires_at__gt=timezone.now()).exists()


class LeasedWork:
    """What a singleton helper process does while it holds its lease: `work()` one pass (returns how
    long to wait before the next), `stop()` when the lease is lost or the process ends."""

    def work(self) -> float:
        raise NotImplementedError

    def stop(self) -> None:
        pass


LEASE_RENEW_EVERY = 1.0  # well inside LEASE_DURATION


def run_while_leased(name: str, stop: threading.Event, start: Callable[[], LeasedWork], *,
                     claim: Callable[[str], bool] | None = None) -> None:
    """Run passes of the work `start()` makes while this process holds lease `name`, until `stop` is set.

    Another process with the same work (another worker host) waits for the lease meanwhile, and takes
    it within LEASE_DURATION of this one dying; the process the supervisor starts in a dead one's
    place holds it by the same token (HELPER_TOKEN_ENV, core/supervisor.py), so it takes over at once.
    Database errors (a restart) end the pass, not the process: the next pass reconnects. The work is
    stopped when the lease is lost and at the end. `claim(token)` takes or renews the lease (default:
    `named_lease_claim(name, token)`)."""
    token = os.environ.get(HELPER_TOKEN_ENV) or uuid.uuid4().hex
    claim = claim or (lambda token: named_lease_claim(name, token))
    work: LeasedWork | None = None
    claimed_at = 0.0
    try:
        while not stop.is_set():
            pause = LEASE_RENEW_EVERY
            try:
                close_broken_connections()  # one connection for the process's life, unless it breaks
                if time.monotonic() - claimed_at >= LEASE_RENEW_EVERY:
                    if not claim(token):
                        if work is not None:  # lost it (this process stalled past the lease): another works now
                            work.stop()
                            work = None
                        claimed_at = 0.0
                        stop.wait(LEASE_RENEW_EVERY)
                        continue
                    claimed_at = time.monotonic()
                work = work or start()
                pause = work.work()
            except DatabaseError:
                log.warning("%s: the database is not answering", name, exc_info=True)
            stop.wait(pause)
    finally:
        if work is not None:
            work.stop()
        try:
            named_lease_release(name, token)
        except DatabaseError:
            pass
