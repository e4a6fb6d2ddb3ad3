"""`make chaos` (python -m chaos): jobs of every kind against the simulator with faults on, while worker
processes are SIGKILLed at random moments and restarted and, one after another, fal locks the
account, our storage refuses writes and PostgreSQL restarts; then the audit of chaos/checks.py.
Exit 1 on any problem.

It runs on a scratch SQLite database and media folder unless DATABASE_URL / AWS_STORAGE_BUCKET_NAME
say otherwise (the database must hold no jobs yet). The simulator runs in this process, the
production web server (gunicorn: the gateway and fal's webhooks) beside it; neither is ever killed.
The worker cluster runs as the studio runs it, under `manage.py workers` (core/supervisor.py), in
its own session. Leases and timeouts are shortened (Q_TIMEOUT 30 s, the ambiguous-submit grace
20 s, a provider probe every 2 s) so recoveries happen within the run instead of minutes later.

fal keeps each request's payloads here (STUDIO_FAL_STORE_IO on, `--fal-store-io on`): that is what
lets an ambiguous submit be matched exactly in fal's request listing (generations/services/
ambiguous.py), so any `submit_unknown` job whose request fal received is a problem. With `off` (the
studio's default, which keeps prompts and images out of fal's records) only the send time can match,
so close ambiguous submits stay unresolved by design: the run reports how many, as a figure.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bench.server import free_port, start_web
from bench.server import stop as stop_web
from chaos.jobs import GATEWAY, Creator, GatewayClients, plan_jobs, start_images
from chaos.outages import FilesystemOutage, Outage, PostgresRestart, ProviderLock, S3Outage, Schedule
from chaos.workers import ROOT, Cluster

if TYPE_CHECKING:
    from falsim.simulator import FalSimulator
    from tests.outage_proxy import OutageProxy

# Each fault kind fires on this share of the calls it applies to (see falsim/faults.py).
FAULT_KINDS = ("5xx", "429", "reset", "latency", "submit_timeout", "submit_reset_after_accept", "result_422", "lost",
               "download_truncated", "download_slow", "listing_5xx")
READ_TIMEOUT = 3.0  # the studio's fal read timeout here; a stalled submit answers after it (the ambiguous case)
USERS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make chaos")
    parser.add_argument("--jobs", type=int, default=200, help="jobs to run (default 200)")
    parser.add_argument("--create-seconds", type=float, default=90.0,
                        help="spread the creates evenly over this many seconds (default 90)")
    parser.add_argument("--i2v-share", type=float, default=0.2,
                        help="share of image-to-video jobs, half with a start image small enough for a data URI, "
                             "half through fal's storage upload (default 0.2)")
    parser.add_argument("--gateway-share", type=float, default=0.2,
                        help="share of jobs submitted by fal's Python client to the /fal/ gateway (default 0.2)")
    parser.add_argument("--no-i2v", action="store_true", help="no image-to-video jobs")
    parser.add_argument("--no-gateway", action="store_true", help="no gateway jobs")
    parser.add_argument("--data-uri-max-bytes", type=int, default=4096,
                        help="STUDIO_FAL_DATA_URI_MAX_BYTES for the run (default 4096)")
    parser.add_argument("--fault-rate", type=float, default=0.10,
                        help="probability of each fault kind on each call it applies to (default 0.10)")
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between SIGKILLs (default 4)")
    parser.add_argument("--kill-seconds", type=float, default=120.0,
                        help="keep killing for this long, or until every job is terminal (default 120)")
    parser.add_argument("--whole-cluster-share", type=float, default=0.3,
                        help="share of kills that take the whole cluster down at once (default 0.3)")
    parser.add_argument("--lock-at", type=float, default=20.0,
                        help="lock fal's account this many seconds in (default 20)")
    parser.add_argument("--lock-seconds", type=float, default=12.0, help="for this long (default 12)")
    parser.add_argument("--no-lock", action="store_true", help="no provider lock")
    parser.add_argument("--storage-outage-at", type=float, default=45.0,
                        help="make our storage refuse writes this many seconds in (default 45)")
    parser.add_argument("--storage-outage-seconds", type=float, default=20.0, help="for this long (default 20)")
    parser.add_argument("--no-storage-outage", action="store_true", help="no storage outage")
    parser.add_argument("--pg-restart-at", type=float, default=75.0,
                        help="restart PostgreSQL this many seconds in (default 75; only on PostgreSQL)")
    parser.add_argument("--pg-ctl", default=os.environ.get("STUDIO_TEST_PG_CTL", ""),
                        help="the pg_ctl command of the run's cluster, e.g. \"runuser -u postgres -- "
                             "/usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pg/data\" (default: $STUDIO_TEST_PG_CTL)")
    parser.add_argument("--no-pg-restart", action="store_true", help="no PostgreSQL restart")
    parser.add_argument("--fal-store-io", choices=("on", "off"), default="on",
                        help="STUDIO_FAL_STORE_IO: let fal keep payloads, so ambiguous submits match exactly in "
                             "its request listing (default on; see the module docstring)")
    parser.add_argument("--run-seconds", type=float, default=2.0, help="how long each simulated job runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=600.0, help="give up waiting after this many seconds")
    parser.add_argument("--no-webhooks", action="store_true",
                        help="track by polling alone (default: fal's webhooks reach the web server too)")
    parser.add_argument("--overhead-goal", type=float, default=60.0,
                        help="a job outside the outage windows whose studio overhead exceeds this many seconds is a "
                             "problem (default 60; 0: report the overheads only, as the CI smoke run does)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", default=str(ROOT / "chaos-report.json"))
    return parser.parse_args(argv)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM, and SIGINT even when a shell started the run in the background with it ignored, end the
    # run through the `finally` below: outages ended (the media root writable again), processes stopped.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    scratch = Path(tempfile.mkdtemp(prefix="studio-chaos-"))
    from falsim import FalSimulator

    sim = FalSimulator(host="127.0.0.1", port=0, key="chaos-key", runners=args.jobs, run_seconds=args.run_seconds,
                       scale=16, cache_renders=True, seed=args.seed, fault_delay=READ_TIMEOUT + 2,
                       faults={kind: args.fault_rate for kind in FAULT_KINDS}).start()
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/chaos.sqlite3")
    s3_proxy = _s3_proxy(args)
    if not os.environ.get("AWS_STORAGE_BUCKET_NAME"):
        os.environ["MEDIA_ROOT"] = str(scratch / "media")
    web_port = free_port()
    os.environ.update(
        FAL_QUEUE_URL=sim.url, FAL_REST_URL=sim.url, FAL_API_URL=sim.url, FAL_KEY="chaos-key",
        Q_WORKERS=str(args.workers),
        Q_TIMEOUT="30", Q_RETRY="40", FAL_READ_TIMEOUT=str(READ_TIMEOUT), STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS="20",
        STUDIO_FAL_STORE_IO="true" if args.fal_store_io == "on" else "false", STUDIO_PROVIDER_PROBE_SECONDS="2",
        STUDIO_FAL_DATA_URI_MAX_BYTES=str(args.data_uri_max_bytes),
        # The gateway client polls every job each second: far above an integrator's rate limits.
        STUDIO_API_RATE="100000/min", STUDIO_API_CREATE_RATE="100000/min",
        STUDIO_BASE_URL=f"http://127.0.0.1:{web_port}", STUDIO_FAL_WEBHOOKS="false" if args.no_webhooks else "true",
        FAL_WEBHOOK_JWKS_URL=f"{sim.url}/.well-known/jwks.json", STUDIO_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="studio.settings",
    )
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per enqueue otherwise
    logging.getLogger("generations.services.create").setLevel(logging.ERROR)  # each create the outage refuses
    call_command("migrate", verbosity=0)
    from generations.models import Generation

    if Generation.objects.exists():
        raise SystemExit("chaos needs a database without jobs (its audit counts every stored object): "
                         "point DATABASE_URL at a fresh one")
    cluster = Cluster(dict(os.environ), scratch / "qcluster.log")
    schedule = _schedule(args, sim, s3_proxy)
    web = None
    try:
        web = start_web(web_port)
        figures, problems = _run(args, sim, cluster, schedule, web_port, scratch)
    finally:
        schedule.stop()
        cluster.stop()
        if web:
            stop_web(web)
        sim.stop()
        if s3_proxy is not None:
            s3_proxy.__exit__(None, None, None)
    figures["cluster_log"] = str(cluster.log_path)
    figures["web_log"] = os.path.join(tempfile.gettempdir(), f"bench-web-{web_port}.log")
    Path(args.report).write_text(json.dumps({"figures": figures, "problems": problems}, indent=2, default=str))
    _print(figures, problems)
    sys.exit(1 if problems else 0)


def _s3_proxy(args: argparse.Namespace) -> OutageProxy | None:
    """On S3 with a storage outage planned: an OutageProxy in front of the endpoint, which the studio
    (cluster, web server and this process) then uses instead of the endpoint itself."""
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL", "")
    if args.no_storage_outage or not os.environ.get("AWS_STORAGE_BUCKET_NAME") or not endpoint:
        return None
    from tests.outage_proxy import OutageProxy

    parts = urlsplit(endpoint)
    if not parts.hostname:
        raise SystemExit(f"AWS_S3_ENDPOINT_URL has no host: {endpoint!r}")
    proxy = OutageProxy(parts.hostname, parts.port or 80).__enter__()
    os.environ["AWS_S3_ENDPOINT_URL"] = proxy.url
    return proxy


def _schedule(args: argparse.Namespace, sim: FalSimulator, s3_proxy: OutageProxy | None) -> Schedule:
    from django.conf import settings
    from django.db import connection

    outages: list[Outage] = []
    if not args.no_lock:
        outages.append(ProviderLock(sim, args.lock_at, args.lock_seconds))
    if not args.no_storage_outage:
        if s3_proxy is not None:
            outages.append(S3Outage(s3_proxy, args.storage_outage_at, args.storage_outage_seconds))
        elif settings.AWS_STORAGE_BUCKET_NAME:
            outages.append(Outage("storage_outage", args.storage_outage_at, 0.0,
                                  skipped="S3 without AWS_S3_ENDPOINT_URL: no proxy can cut the link"))
        else:
            outages.append(FilesystemOutage(str(settings.MEDIA_ROOT), args.storage_outage_at,
                                            args.storage_outage_seconds))
    if not args.no_pg_restart:
        skipped = ""
        if connection.vendor != "postgresql":
            skipped = "the database is not PostgreSQL"
        elif not args.pg_ctl:
            skipped = "no pg_ctl command (--pg-ctl or STUDIO_TEST_PG_CTL)"
        outages.append(PostgresRestart(args.pg_ctl, args.pg_restart_at, skipped=skipped))
    return Schedule(outages)


def _run(args: argparse.Namespace, sim: FalSimulator, cluster: Cluster, schedule: Schedule, web_port: int,
         scratch: Path) -> tuple[dict[str, Any], list[str]]:
    from django.conf import settings
    from django.db import DatabaseError, connection
    from django.utils import timezone

    from chaos.checks import TERMINAL, RunFacts, audit
    from generations.models import Generation
    from storage.abandoned import abandoned_writes_clear

    rng = random.Random(args.seed)
    users, keys = _users(USERS)
    plan = plan_jobs(args.jobs, i2v_share=0.0 if args.no_i2v else args.i2v_share,
                     gateway_share=0.0 if args.no_gateway else args.gateway_share,
                     spread_seconds=args.create_seconds, seed=args.seed)
    gateway = None
    if any(job.kind == GATEWAY for job in plan):
        gateway = GatewayClients(f"http://127.0.0.1:{web_port}", scratch / "gateway-client.log")
    creator = Creator(plan, users, keys, start_images(settings.STUDIO_FAL_DATA_URI_MAX_BYTES, args.seed), gateway)
    cluster.start()
    cluster.wait_ready(args.workers, timeout=60)
    started = time.monotonic()
    creator.start(started)
    kills: Counter = Counter()
    next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
    next_report = started + 10
    mine = Generation.objects.filter(owner__in=users)
    while True:
        now = time.monotonic()
        schedule.tick(now - started)
        try:
            pending = mine.exclude(status__in=TERMINAL).count()
        except DatabaseError:  # PostgreSQL is restarting: look again in a moment
            connection.close()
            pending = None
        created = not creator.is_alive() and (gateway is None or gateway.all_answered())
        if created and pending == 0 and schedule.done():
            break
        if now - started > args.deadline:
            break
        if now >= next_kill and now - started < args.kill_seconds:
            if rng.random() < args.whole_cluster_share:
                if cluster.kill_whole_cluster():
                    kills["whole_cluster"] += 1
            elif cluster.kill_one_process(rng):
                kills["one_process"] += 1
            next_kill = now + rng.uniform(0.5, 1.5) * args.kill_every
        if now >= next_report:
            states: dict[str, int] | str
            try:
                states = dict(Counter(mine.values_list("status", flat=True)))
            except DatabaseError:
                connection.close()
                states = "(database restarting)"
            print(f"{now - started:5.0f} s  {states}  kills {dict(kills)}", flush=True)
            next_report = now + 10
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    schedule.stop()
    cluster.stop()
    creator.join()
    if gateway is not None:
        gateway.finish(timeout=60)  # it sees the last completions within its poll interval
    faults_fired = dict(sim.stats().get("faults", {}))
    sim.set_faults({})  # the audit reads fal's files for real
    # Nothing writes any more: every partial write left by a kill is abandoned. Clear them as the
    # daily storage task would, and count them, before looking for orphans.
    abandoned = abandoned_writes_clear(older_than=timedelta(0))
    facts = RunFacts(kinds={job.prompt: job.kind for job in plan}, store_io=args.fal_store_io == "on",
                     windows={name: (start, end) for name, start, end in schedule.windows()},
                     gateway=dict(gateway.finished) if gateway else {}, created_at=dict(creator.created_at),
                     overhead_goal=args.overhead_goal)
    figures, problems = audit(sim, list(mine.values_list("pk", flat=True)), facts)
    figures.update(
        seconds=round(elapsed, 1), kills=dict(kills), supervisor_restarts=cluster.restarts(),
        outages=schedule.figures(), creates_refused=dict(creator.refusals), faults_fired=faults_fired,
        partial_writes_cleared=len(abandoned), finished_at=timezone.now().isoformat(),
        settings={"jobs": args.jobs, "fault_rate": args.fault_rate, "webhooks": not args.no_webhooks,
                  "fal_store_io": args.fal_store_io, "database": connection.vendor,
                  "storage": "s3" if settings.AWS_STORAGE_BUCKET_NAME else "filesystem", "workers": args.workers,
                  "kill_every_s": args.kill_every, "kill_seconds": args.kill_seconds,
                  "create_seconds": args.create_seconds, "data_uri_max_bytes": settings.STUDIO_FAL_DATA_URI_MAX_BYTES},
    )
    if creator.abandoned:
        problems.append(f"{len(creator.abandoned)} create(s) still refused after retrying, "
                        f"e.g. {creator.abandoned[0]!r}")
    if pending != 0:
        problems.append(f"gave up after the {args.deadline:g} s deadline")
    return figures, problems


def _users(count: int) -> tuple[list, dict]:
    """The run's users (quotas out of the way) and an API key each, for the gateway client."""
    from django.contrib.auth import get_user_model

    from accounts.keys import api_key_create
    from storage.models import UserQuota

    users, keys = [], {}
    for number in range(1, count + 1):
        user, _ = get_user_model().objects.get_or_create(username=f"chaos-{number}")
        UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                                "storage_bytes": 10**15})
        users.append(user)
        keys[user.pk] = api_key_create(user=user, name="chaos gateway client")[1]
    return users, keys


def _print(figures: dict, problems: list[str]) -> None:
    print()
    for name, value in figures.items():
        print(f"{name:30} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    print()
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for problem in problems[:50]:
            print(f"  - {problem}")
    else:
        print("PASSED: every job terminal, no double submit, every outage ridden out, no orphaned or missing object, "
              "no ledger drift")


if __name__ == "__main__":
    main()
