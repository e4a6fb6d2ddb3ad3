"""Fair shares when fal is the bottleneck: how many of another user's jobs go to fal before a new
user's single job, while STUDIO_FAL_MAX_IN_FLIGHT binds.

User A creates 500 jobs with the cap at 20 and fal 80 ms away (the simulator, as in the burst
phase); once A holds all 20 slots, user B creates one job. The figure is how many jobs were sent to fal
between B's create and B's own send: the slots B waited for (target ≤ 2; first come, first served
would make it wait for all of A's 480).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack

from bench.report import ROOT, Row
from bench.server import stop
from bench.tracking import BURST_LATENCY, KEY, simulator, wait_for_cluster

CAP = 20
A_JOBS = 500


def run(workers: int, run_seconds: float) -> list[Row]:
    with ExitStack() as stack:
        sim_url = stack.enter_context(simulator(A_JOBS + 1, run_seconds, None, BURST_LATENCY))
        env = {**os.environ, "FAL_QUEUE_URL": sim_url, "FAL_REST_URL": sim_url, "FAL_API_URL": sim_url, "FAL_KEY": KEY,
               "Q_WORKERS": str(workers), "STUDIO_LOG_LEVEL": "WARNING", "STUDIO_FAL_WEBHOOKS": "false",
               "STUDIO_FAL_MAX_IN_FLIGHT": str(CAP)}
        cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(stop, cluster)
        wait_for_cluster(cluster.pid, workers)
        slots = _measure()
    print(f"fair share: user B's job waited for {slots} slot(s) behind user A's {A_JOBS} jobs (cap {CAP})")
    return [Row("fair_share_slots", slots, "slots", A_JOBS - CAP,
                f"jobs sent to fal between user B's create and B's send, A holding {A_JOBS} jobs and the cap "
                f"{CAP}; baseline: first come, first served; target ≤ 2")]


def _measure() -> int:
    from django.contrib.auth import get_user_model

    from generations.fair_share import AT_FAL
    from generations.models import Generation, GenerationAttempt
    from generations.services.create import generation_create
    from storage.models import UserQuota

    users = []
    for name in ("bench-fair-a", "bench-fair-b"):
        user, _ = get_user_model().objects.get_or_create(username=name)
        UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                                "storage_bytes": 10**15})
        users.append(user)
    a, b = users
    for n in range(A_JOBS):
        generation_create(owner=a, model="t2v", input={"prompt": f"fair a {n}"})
    deadline = time.monotonic() + 120
    while Generation.objects.filter(owner=a, status__in=AT_FAL).count() < CAP:
        if time.monotonic() > deadline:
            raise SystemExit("fair share bench: user A's jobs never filled the cap")
        time.sleep(0.05)
    single, _ = generation_create(owner=b, model="t2v", input={"prompt": "fair b"})
    sends = GenerationAttempt.objects.filter(kind=GenerationAttempt.Kind.SUBMIT)
    while (sent := sends.filter(generation=single).first()) is None:
        if time.monotonic() > deadline + 120:
            raise SystemExit("fair share bench: user B's job was never sent to fal")
        time.sleep(0.05)
    # A job is sent when its attempt is recorded, just before the POST (a POST already under way when
    # B was created was sent before it, whenever fal's answer came).
    return sends.filter(generation__owner=a, started_at__gt=single.created_at, started_at__lt=sent.started_at).count()
