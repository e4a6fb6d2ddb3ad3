"""`manage.py workers`: the django-q2 cluster (`manage.py qcluster`) under a supervisor that restarts
it when it dies or stops taking tasks (see core/supervisor.py). What `make run` and
`make run-prod` start; `qcluster` alone still works where something else supervises it. At every
check it also makes sure something tracks the jobs in flight (`tracker_ensure`). Beside the cluster
it runs the tracking driver (`manage.py drive_tracking`, generations/services/tracking_driver.py:
tracking that never waits in the task queue; a tracking chain of tasks takes over within seconds
should it die), the store driver (`manage.py drive_stores`, generations/services/store_driver.py)
and, when fal's status streams are on, their follower (`manage.py follow_fal_streams`,
generations/services/fal_streams.py): each has a process of its own, so none takes another's time."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.supervisor import Supervisor, default_stall_after
from generations.services.fal_streams import streams_enabled
from generations.services.lease import tracker_ensure


class Command(BaseCommand):
    help = "Run the worker cluster and restart it when it dies or stops taking tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stall-seconds", type=float, default=None,
                            help="restart when tasks wait and none finished for this long "
                                 "(default: Q_CLUSTER timeout + 30 s)")
        parser.add_argument("--check-every", type=float, default=5.0, help="seconds between checks (default 5)")

    def handle(self, *args: Any, stall_seconds: float | None = None, check_every: float = 5.0, **options: Any) -> None:
        stall_after = timedelta(seconds=stall_seconds) if stall_seconds else default_stall_after()
        helpers = [["drive_tracking"], ["drive_stores"]] + ([["follow_fal_streams"]] if streams_enabled() else [])
        Supervisor(stall_after=stall_after, check_every=check_every, on_check=tracker_ensure, helpers=helpers).run()
