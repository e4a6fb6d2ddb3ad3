"""The store driver: stores finished jobs in a process of its own (`manage.py drive_stores`, which
`manage.py workers` starts beside the cluster).

Storing is the heaviest step per job — fal's result, the video copied, probed and postered, the rows
settled — and much of it is Python's own time, so in the tracking chain's process a burst of
completions would take that process's one interpreter lock from the submits. While this driver holds
its lease (lease.py: one driver at a time, however many worker hosts start one) the chain leaves every
STORING row to it, and a completion enqueues no store task (tracking.generation_apply_status); the
driver hands due rows to its store lane (lanes.py) exactly as the chain would
(`tracking.dispatch_stores`: the same compare-and-set on the due time, the same `generation_store`
with its row claim). Should the driver die, its lease lapses within seconds and the chain stores
again; a store cut short is re-driven when its row claim lapses, as after any crash.
"""
from __future__ import annotations

import threading

from django.utils import timezone

from generations.services.lease import STORE_DRIVER_LEASE, LeasedWork, run_while_leased
from generations.services.tracking import MAX_SLEEP, MIN_SLEEP, dispatch_stores


class StoreDriver(LeasedWork):
    def work(self) -> float:
        """Hand the due stores to the lane; seconds until the next look (sooner while rows wait)."""
        return MIN_SLEEP if dispatch_stores(timezone.now()) else MAX_SLEEP


def store_driver_run(stop: threading.Event) -> None:
    """Drive stores while this process holds the store driver's lease, until `stop` is set."""
    run_while_leased(STORE_DRIVER_LEASE, stop, StoreDriver)
