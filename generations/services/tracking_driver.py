"""The tracking driver: the tracking chain's passes in a process of its own (`manage.py drive_tracking`,
which `manage.py workers` starts beside the cluster).

A chain link is a django-q2 task, and the successor it enqueues waits in the task queue behind
everything queued before it. After an outage of the workers, with thousands of create-time submit
tasks queued, a link ran out its time (well inside django-q2's timeout) long before its successor
came through, and for minutes nothing was sent, polled or stored. The driver holds the chain's own
lease (lease.py: it takes it from a chain link at once, and while it lives no chain link takes it
and `tracker_ensure` enqueues none) and runs the same passes (`tracking.tracker_pass`: the same
compare-and-sets, the same lanes and row claims) one after another, for as long as it lives. Should
it die, its lease lapses within LEASE_DURATION and `tracker_ensure` (the supervisor's checks, the
sweeper) starts a chain again: the chain is the fallback, and what runs under `manage.py qcluster`
alone. Another worker host's driver waits for the lease meanwhile, and takes it when it lapses.
"""
from __future__ import annotations

import threading

from generations.services.lease import LEASE_NAME, LeasedWork, driver_lease_claim, run_while_leased
from generations.services.tracking import polls_settle, seconds_until_next_due, tracker_pass


class TrackingDriver(LeasedWork):
    def work(self) -> float:
        """One pass of tracking; seconds until the next."""
        tracker_pass()
        return seconds_until_next_due()

    def stop(self) -> None:
        polls_settle()


def tracking_driver_run(stop: threading.Event) -> None:
    """Track while this process holds the tracker lease, until `stop` is set."""
    run_while_leased(LEASE_NAME, stop, TrackingDriver, claim=driver_lease_claim)
