"""`python manage.py falsim`: run the local fal.ai simulator until Ctrl-C (or SIGTERM).

    python manage.py falsim [--port 8765] [--host 127.0.0.1] [--key KEY] [--runners N]
        [--run-seconds S] [--scale K] [--cache-renders] [--seed N] [--fault-delay S]
        [--latency-seconds S] [--download-rate-bytes N]
        [--fault-submit-5xx P] [--fault-submit-timeout P] [--fault-status-5xx P]
        [--fault-result-5xx P] [--fault-result-422 P] [--fault-lost P] [--fault-429 P]
        [--fault-5xx P] [--fault-reset P] [--fault-submit-reset-after-accept P]
        [--fault-latency P] [--fault-download-truncated P] [--fault-download-slow P]
        [--locked REASON] [--retired ENDPOINT_ID ...] [--workdir DIR] [--verbose]

Each --fault-* is a probability 0..1 (see falsim/faults.py); --locked and --retired (repeatable:
answer that endpoint id, alias or owner/app as gone, 404) are states. All can also be switched
while it runs with `PUT /_sim/faults`.

--key and --port default to the FALSIM_KEY and FALSIM_PORT settings. The simulator
itself lives in `falsim` (no Django there); this wrapper only wires settings in.
"""
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from falsim import add_cli_arguments, describe, simulator_from_args


class Command(BaseCommand):
    help = "Run a local fal.ai-compatible simulator (queue, storage upload, CDN, webhooks)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_cli_arguments(
            parser,
            default_key=settings.FALSIM_KEY,
            default_port=settings.FALSIM_PORT,
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sim = simulator_from_args(options).start()
        except (ValueError, OSError) as exc:  # bad flag values, port already in use
            raise CommandError(f"falsim: {exc}") from exc
        self.stdout.write(describe(sim))
        self.stdout.flush()
        sim.serve_forever()  # returns after Ctrl-C / SIGTERM, once stopped
        self.stdout.write("falsim stopped")
