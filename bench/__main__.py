"""Run the benchmarks on a throwaway database (or DATABASE_URL when set) and write bench-report.json."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench.report import ROOT, write


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in flight at once (default 1000)")
    parser.add_argument("--run-seconds", type=float, default=5.0,
                        help="shortest simulated run (default 5 s; the one-job baselines run this long)")
    parser.add_argument("--run-seconds-max", type=float, default=60.0,
                        help="longest simulated run; each job's is drawn from the range (default 60 s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copy-mb", type=int, default=1024, help="size of the copied file (default 1 GB)")
    parser.add_argument("--no-webhooks", action="store_true", help="measure tracking by polling only")
    parser.add_argument("--streams", type=int, default=1000,
                        help="status streams open on one web process (default 1000)")
    parser.add_argument("--status-seconds", type=float, default=5.0, help="load per status endpoint (default 5 s)")
    parser.add_argument("--scale-jobs", type=int, default=10_000, help="jobs at fal at once in the scale run "
                        "(default 10,000)")
    parser.add_argument("--scale-run-seconds", type=float, default=360.0,
                        help="shortest simulated run in the scale run (default 360 s; longer: more at fal at once)")
    parser.add_argument("--scale-run-seconds-max", type=float, default=420.0,
                        help="longest simulated run in the scale run (default 420 s)")
    parser.add_argument("--only", choices=["tracking", "burst", "scale", "fair-share", "copy", "status", "streams"],
                        help="run one benchmark only")
    parser.add_argument("--report", default=str(ROOT / "bench-report.json"), help="where to write the JSON report")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="studio-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
    os.environ["MEDIA_ROOT"] = os.path.join(scratch, "media")
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import logging

    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)  # on SQLite in the write-ahead log mode, as settings open it
    from bench import copy, fair_share, scale, status, streams, tracking

    rows = []
    if args.only in (None, "tracking", "burst"):
        modes = {"tracking": ("polling", "webhook"), "burst": ("burst",)}.get(args.only or "",
                                                                              ("polling", "webhook", "burst"))
        rows += tracking.run(args.jobs, args.run_seconds, args.run_seconds_max, args.workers,
                             webhooks=not args.no_webhooks, modes=modes)
    if args.only in (None, "scale"):
        rows += scale.run(args.scale_jobs, args.scale_run_seconds, args.scale_run_seconds_max, args.workers)
    if args.only in (None, "fair-share"):
        rows += fair_share.run(args.workers, args.run_seconds)
    if args.only in (None, "copy"):
        rows += copy.run(args.copy_mb)
    if args.only in (None, "status"):
        rows += status.run(args.status_seconds)
    if args.only in (None, "streams"):
        rows += streams.run(args.streams, args.status_seconds)
    write(rows, Path(args.report))


if __name__ == "__main__":
    main()
