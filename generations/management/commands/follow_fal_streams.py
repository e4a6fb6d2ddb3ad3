"""`manage.py follow_fal_streams`: follow fal's status streams of the jobs at fal, in place of the
tracking chain's polls, until stopped (SIGTERM or Ctrl-C). `manage.py workers` starts it beside the
cluster when streams are on (STUDIO_FAL_STATUS_STREAMS above 0, and no fal webhooks); see
generations/services/fal_streams.py."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from core.stopping import stop_on_signals
from generations.services.fal_streams import follower_run, streams_enabled


class Command(BaseCommand):
    help = "Follow fal's status streams of the jobs at fal (what `manage.py workers` runs beside the cluster)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not streams_enabled():
            self.stdout.write("Status streams are off (STUDIO_FAL_STATUS_STREAMS is 0, or fal's webhooks report).")
            return
        follower_run(stop_on_signals())
