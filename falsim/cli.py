"""The command line: ``python -m falsim`` and ``python manage.py falsim`` share these flags.

``add_cli_arguments`` declares them, ``simulator_from_args`` builds a ``FalSimulator`` from the
parsed values, ``describe`` is the line printed once it listens. Each ``--fault-NAME P`` is a
probability (``falsim/faults.py``); ``--locked REASON`` and ``--retired ENDPOINT_ID`` (repeatable) are
states, switchable while running with ``PUT /_sim/faults``.
"""

from __future__ import annotations

import argparse
import os

from falsim.faults import FAULT_NAMES
from falsim.simulator import FalSimulator


def add_cli_arguments(parser: argparse.ArgumentParser, *, default_key: str, default_port: int) -> None:
    """The simulator's command-line flags (shared by `manage.py falsim` and `python -m falsim`)."""
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port}; 0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--key", default=default_key, help="the API key clients must send as 'Key <key>'")
    parser.add_argument("--runners", type=int, default=2, help="requests IN_PROGRESS at once (default 2)")
    parser.add_argument("--run-seconds", type=float, default=3.0, help="minimum IN_PROGRESS time (default 3.0)")
    parser.add_argument("--run-seconds-max", type=float, default=None,
                        help="draw each run time from [run-seconds, this] (default: always run-seconds)")
    parser.add_argument("--scale", type=int, default=1, help="render at 1/K of the requested resolution")
    parser.add_argument("--cache-renders", action="store_true",
                        help="bench mode: render each distinct output once (prompt not burned in)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault draws (default 0)")
    parser.add_argument("--fault-delay", type=float, default=35.0,
                        help="seconds a --fault-submit-timeout submit waits before answering (default 35)")
    parser.add_argument("--latency-seconds", type=float, default=0.5,
                        help="seconds a --fault-latency queue call waits before it is handled (default 0.5)")
    parser.add_argument("--download-rate-bytes", type=int, default=256 * 1024,
                        help="bytes/s of a --fault-download-slow file download (default 262144)")
    parser.add_argument("--listing-lag-seconds", type=float, default=0.0,
                        help="a request appears in the request listing this long after it was sent (default 0)")
    parser.add_argument("--locked", default="", metavar="REASON",
                        help='start with the account locked for REASON (e.g. "Exhausted balance"); '
                             "PUT /_sim/faults {\"locked\": \"\"} unlocks it")
    parser.add_argument("--retired", action="append", default=[], metavar="ENDPOINT_ID",
                        help="answer this endpoint id, alias or owner/app as gone (404 Application not found), "
                             "like an app fal has removed; repeatable. PUT /_sim/faults {\"retired\": [...]} "
                             "changes the list while running")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    for name in FAULT_NAMES:
        parser.add_argument(f"--fault-{name.replace('_', '-')}", dest=f"fault_{name}", type=float, default=0.0,
                            metavar="P", help="probability 0..1 (default 0)")


def simulator_from_args(options: argparse.Namespace) -> FalSimulator:
    values = options if isinstance(options, dict) else vars(options)
    faults = {name: values.get(f"fault_{name}") or 0.0 for name in FAULT_NAMES}
    return FalSimulator(
        host=values["host"],
        port=values["port"],
        key=values["key"],
        runners=values["runners"],
        run_seconds=values["run_seconds"],
        run_seconds_max=values.get("run_seconds_max"),
        scale=values["scale"],
        cache_renders=values["cache_renders"],
        faults={name: p for name, p in faults.items() if p},
        seed=values["seed"],
        workdir=values.get("workdir"),
        fault_delay=values["fault_delay"],
        latency_seconds=values["latency_seconds"],
        download_rate_bytes=values["download_rate_bytes"],
        listing_lag_seconds=values.get("listing_lag_seconds") or 0.0,
        locked=values.get("locked") or "",
        retired=values.get("retired") or (),
        verbose=values["verbose"],
    )


def describe(sim: FalSimulator) -> str:
    faults = ", ".join(f"{k}={v:g}" for k, v in sim.faults.items() if v) or "none"
    if sim.faults["latency"]:
        faults += f" (latency {sim.latency_seconds:g} s)"
    if sim.faults["download_slow"]:
        faults += f" (download {sim.download_rate_bytes} B/s)"
    if sim.locked:
        faults += f"; account locked ({sim.locked})"
    if sim.retired:
        faults += f"; retired: {', '.join(sim.retired)}"
    return (f"falsim listening on {sim.url} (runners={sim.runners}, run_seconds={sim.run_seconds:g}, "
            f"scale={sim.scale}, cache_renders={sim.cache_renders}, faults: {faults}, workdir={sim.workdir})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m falsim", description="Local fal.ai simulator")
    add_cli_arguments(parser, default_key=os.environ.get("FALSIM_KEY", "falsim-local-key"),
                      default_port=int(os.environ.get("FALSIM_PORT", "8765")))
    sim = simulator_from_args(parser.parse_args(argv)).start()
    print(describe(sim), flush=True)
    sim.serve_forever()
