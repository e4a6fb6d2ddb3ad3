"""`manage.py drive_tracking`: run the tracking chain's passes (submits, polls, stores handed to the
lanes) in this process instead of django-q2 tasks, until stopped (SIGTERM or Ctrl-C). `manage.py
workers` starts it beside the cluster; see generations/services/tracking_driver.py."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.stopping import stop_on_signals
from generations.services.tracking_driver import tracking_driver_run


class Command(BaseCommand):
    help = "Track jobs at fal in a process of its own (what `manage.py workers` runs beside the cluster)."

    def handle(self, *args: Any, **options: Any) -> None:
        tracking_driver_run(stop_on_signals())
