"""Tracking lag: N jobs in flight against the simulator, tracked by a real 2-worker django-q2 cluster.

Lag = the moment our row records fal's COMPLETED − the moment the simulator marked it completed.
Baseline: the lag of one job tracked alone, in the same run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.report import ROOT, Row, percentile


def run(jobs: int, run_seconds: float, workers: int) -> list[Row]:
    from falsim.server import FalSimulator

    sim = FalSimulator(host="127.0.0.1", port=0, key="bench-key", runners=jobs + 1, run_seconds=run_seconds,
                       scale=16, cache_renders=True).start()
    env = {**os.environ, "FAL_QUEUE_URL": sim.url, "FAL_KEY": "bench-key", "Q_WORKERS": str(workers),
           "STUDIO_LOG_LEVEL": "WARNING"}
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        baseline = _measure(1, sim)
        print(f"baseline: one job alone, lag {baseline['lag_p95']:.3f} s")
        measured = _measure(jobs, sim)
    finally:
        cluster.terminate()
        cluster.wait(30)
        sim.stop()
    note = f"N={jobs}, {workers} workers, run {run_seconds:g} s"
    return [
        Row("tracking_lag_p50_s_polling", measured["lag_p50"], "s", baseline["lag_p50"], note),
        Row("tracking_lag_p95_s_polling", measured["lag_p95"], "s", baseline["lag_p95"], note),
        Row("inflight_jobs", measured["peak_inflight"], "jobs", None, f"peak QUEUED+RUNNING at once; {workers} workers"),
        Row("submit_overhead_p95_s", measured["submit_p95"], "s", baseline["submit_p95"], "create → fal accepted"),
        Row("store_p95_s", measured["store_p95"], "s", baseline["store_p95"], "seen completed → video stored"),
    ]


def _measure(count: int, sim) -> dict:
    from django.contrib.auth import get_user_model

    from generations.models import Generation
    from generations.services.create import generation_create

    from storage.models import UserQuota

    user, _ = get_user_model().objects.get_or_create(username="bench")
    # The bench measures tracking, not admission: give its user room for every job.
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                            "storage_bytes": 10**15})
    ids = [generation_create(owner=user, model="t2v", input={"prompt": f"bench {i}"})[0].pk for i in range(count)]
    deadline = time.monotonic() + 300
    peak = 0
    while time.monotonic() < deadline:
        rows = Generation.objects.filter(pk__in=ids)
        peak = max(peak, rows.filter(status__in=["queued", "running"]).count())
        if not rows.exclude(status__in=["succeeded", "failed", "canceled"]).exists():
            break
        time.sleep(0.2)
    rows = list(Generation.objects.filter(pk__in=ids))
    failed = [row for row in rows if row.status != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} of {count} bench jobs did not succeed, e.g. {failed[0].status}: {failed[0].error_message}")
    lags = [row.completed_at.timestamp() - sim.completed_at(row.fal_request_id) for row in rows]
    submits = [(row.submitted_at - row.created_at).total_seconds() for row in rows]
    stores = [(row.finished_at - row.completed_at).total_seconds() for row in rows]
    return {"lag_p50": percentile(lags, 0.5), "lag_p95": percentile(lags, 0.95), "peak_inflight": peak,
            "submit_p95": percentile(submits, 0.95), "store_p95": percentile(stores, 0.95)}
