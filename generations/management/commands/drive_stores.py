"""`manage.py drive_stores`: store finished jobs (fal's result, the video copied, probed, postered)
in this process instead of the tracking chain's, until stopped (SIGTERM or Ctrl-C). `manage.py
workers` starts it beside the cluster; see generations/services/store_driver.py."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.stopping import stop_on_signals
from generations.services.store_driver import store_driver_run


class Command(BaseCommand):
    help = "Store finished jobs in a process of their own (what `manage.py workers` runs beside the cluster)."

    def handle(self, *args: Any, **options: Any) -> None:
        store_driver_run(stop_on_signals())
