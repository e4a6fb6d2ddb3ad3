"""`make chaos` (python -m chaos): N jobs against the simulator with faults on, while worker processes
are SIGKILLed at random moments and restarted; then the audit of chaos/checks.py. Exit 1 on any problem.

It runs on a scratch SQLite database and media folder unless DATABASE_URL / AWS_STORAGE_BUCKET_NAME
say otherwise. The simulator runs in this process (it is never killed); the worker cluster runs as
the studio runs it, under `manage.py workers` (studio/supervisor.py), in its own session. Leases and timeouts are shortened (Q_TIMEOUT 30 s, the ambiguous-submit
grace 20 s) so recoveries happen within the run instead of minutes later.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from bench.server import free_port, start_web
from bench.server import stop as stop_web
from chaos.workers import ROOT, Cluster

# Each fault kind fires on this share of the calls it applies to (see falsim/faults.py).
FAULT_KINDS = ("5xx", "429", "reset", "latency", "submit_timeout", "submit_reset_after_accept", "result_422", "lost",
               "download_truncated", "download_slow")
READ_TIMEOUT = 3.0  # the studio's fal read timeout here; a stalled submit answers after it (the ambiguous case)


def main() -> None:
    parser = argparse.ArgumentParser(prog="make chaos")
    parser.add_argument("--jobs", type=int, default=200, help="jobs to run (default 200)")
    parser.add_argument("--fault-rate", type=float, default=0.10,
                        help="probability of each fault kind on each call it applies to (default 0.10)")
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between SIGKILLs (default 4)")
    parser.add_argument("--kill-seconds", type=float, default=120.0,
                        help="keep killing for this long, or until every job is terminal (default 120)")
    parser.add_argument("--whole-cluster-share", type=float, default=0.3,
                        help="share of kills that take the whole cluster down at once (default 0.3)")
    parser.add_argument("--run-seconds", type=float, default=2.0, help="how long each simulated job runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=600.0, help="give up waiting after this many seconds")
    parser.add_argument("--no-webhooks", action="store_true",
                        help="track by polling alone (default: fal's webhooks reach a web server too)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", default=str(ROOT / "chaos-report.json"))
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="studio-chaos-"))
    from falsim import FalSimulator

    sim = FalSimulator(host="127.0.0.1", port=0, key="chaos-key", runners=args.jobs, run_seconds=args.run_seconds,
                       scale=16, cache_renders=True, seed=args.seed, fault_delay=READ_TIMEOUT + 2,
                       faults={kind: args.fault_rate for kind in FAULT_KINDS}).start()
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/chaos.sqlite3")
    if not os.environ.get("AWS_STORAGE_BUCKET_NAME"):
        os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ.update(
        FAL_QUEUE_URL=sim.url, FAL_REST_URL=sim.url, FAL_API_URL=sim.url, FAL_KEY="chaos-key", Q_WORKERS=str(args.workers),
        Q_TIMEOUT="30", Q_RETRY="40", FAL_READ_TIMEOUT=str(READ_TIMEOUT), STUDIO_SUBMIT_UNKNOWN_GRACE_SECONDS="20",
        STUDIO_FAL_WEBHOOKS="false", STUDIO_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="studio.settings",
    )
    web_port = None
    if not args.no_webhooks:
        # fal's webhooks reach the production web server (never killed), as in a deployment.
        web_port = free_port()
        os.environ.update(STUDIO_FAL_WEBHOOKS="true", STUDIO_BASE_URL=f"http://127.0.0.1:{web_port}",
                          FAL_WEBHOOK_JWKS_URL=f"{sim.url}/.well-known/jwks.json")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import django
    from django.core.management import call_command

    django.setup()
    logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per enqueue otherwise
    call_command("migrate", verbosity=0)
    cluster = Cluster(dict(os.environ), scratch / "qcluster.log")
    web = None
    try:
        if web_port:
            web = start_web(web_port)
        figures, problems = _run(args, sim, cluster)
    finally:
        cluster.stop()
        if web:
            stop_web(web)
        sim.stop()
    figures["webhooks"] = web_port is not None
    figures["cluster_log"] = str(cluster.log_path)
    Path(args.report).write_text(json.dumps({"figures": figures, "problems": problems}, indent=2, default=str))
    _print(figures, problems)
    sys.exit(1 if problems else 0)


def _run(args, sim, cluster: Cluster) -> tuple[dict, list[str]]:
    from django.utils import timezone

    from chaos.checks import TERMINAL, audit
    from generations.models import Generation
    from storage.abandoned import abandoned_writes_clear

    rng = random.Random(args.seed)
    users = _users(4)
    ids: list = []
    creator = threading.Thread(target=_create_jobs, args=(users, args.jobs, ids), daemon=True)
    cluster.start()
    started = time.monotonic()
    creator.start()
    kills: Counter = Counter()
    next_kill = started + rng.uniform(0.5, 1.5) * args.kill_every
    next_report = started + 10
    while True:
        now = time.monotonic()
        pending = Generation.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).count()
        if not creator.is_alive() and pending == 0:
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
            states = Counter(Generation.objects.filter(pk__in=ids).values_list("status", flat=True))
            print(f"{now - started:5.0f} s  {dict(states)}  kills {dict(kills)}", flush=True)
            next_report = now + 10
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    cluster.stop()
    creator.join()
    faults_fired = dict(sim.stats().get("faults", {}))
    sim.set_faults({})  # the audit reads fal's files for real
    # Nothing writes any more: every partial write left by a kill is abandoned. Clear them as the
    # daily storage task would, and count them, before looking for orphans.
    abandoned = abandoned_writes_clear(older_than=timedelta(0))
    figures, problems = audit(sim, ids)
    figures.update(seconds=round(elapsed, 1), kills=dict(kills), supervisor_restarts=cluster.restarts(),
                   faults_fired=faults_fired, fault_rate=args.fault_rate, partial_writes_cleared=len(abandoned),
                   finished_at=timezone.now().isoformat())
    return figures, problems


def _users(count: int) -> list:
    from django.contrib.auth import get_user_model

    from storage.models import UserQuota

    users = []
    for number in range(1, count + 1):
        user, _ = get_user_model().objects.get_or_create(username=f"chaos-{number}")
        UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                                "storage_bytes": 10**15})
        users.append(user)
    return users


def _create_jobs(users: list, count: int, ids: list) -> None:
    """Submit `count` jobs round-robin over `users`, a few at a time, while the killing goes on."""
    from django.db import connection

    from generations.services.create import generation_create

    try:
        for number in range(count):
            generation, _ = generation_create(owner=users[number % len(users)], model="t2v",
                                              input={"prompt": f"chaos job {number}: a lighthouse in a storm"})
            ids.append(generation.pk)
            if number % 20 == 19:
                time.sleep(0.5)
    finally:
        connection.close()


def _print(figures: dict, problems: list[str]) -> None:
    print()
    for name, value in figures.items():
        print(f"{name:28} {value}")
    print()
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for problem in problems[:50]:
            print(f"  - {problem}")
    else:
        print("PASSED: every job terminal, no double submit, no orphaned or missing object, no ledger drift")


if __name__ == "__main__":
    main()
