"""Tracking lag: N jobs in flight against the simulator, tracked by a real 2-worker django-q2 cluster,
first by polling alone, then with fal's webhooks reaching the production web server as well.

Lag = the moment our row records fal's COMPLETED − the moment the simulator marked it completed.
Baseline: the lag of one job tracked alone, in the same run and mode.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.report import ROOT, Row, percentile
from bench.server import free_port, start_web, stop


def run(jobs: int, run_seconds: float, workers: int, *, webhooks: bool = True) -> list[Row]:
    from falsim.server import FalSimulator

    sim = FalSimulator(host="127.0.0.1", port=0, key="bench-key", runners=jobs + 1, run_seconds=run_seconds,
                       scale=16, cache_renders=True, webhook_threads=32).start()
    env = {**os.environ, "FAL_QUEUE_URL": sim.url, "FAL_KEY": "bench-key", "Q_WORKERS": str(workers),
           "STUDIO_LOG_LEVEL": "WARNING", "STUDIO_FAL_WEBHOOKS": "false"}
    note = f"N={jobs}, {workers} workers, run {run_seconds:g} s"
    try:
        polling = _run_mode("polling", jobs, sim, env)
        rows = [
            Row("tracking_lag_p50_s_polling", polling["lag_p50"], "s", polling["baseline"]["lag_p50"], note),
            Row("tracking_lag_p95_s_polling", polling["lag_p95"], "s", polling["baseline"]["lag_p95"], note),
            Row("inflight_jobs", polling["peak_inflight"], "jobs", None, f"peak QUEUED+RUNNING at once; {workers} workers"),
            Row("submit_overhead_p95_s", polling["submit_p95"], "s", polling["baseline"]["submit_p95"],
                "create → fal accepted"),
            Row("store_p95_s", polling["store_p95"], "s", polling["baseline"]["store_p95"], "seen completed → video stored"),
        ]
        if webhooks:
            # fal's webhooks reach the production web server, which reads the status at once.
            port = free_port()
            hooks = {"STUDIO_BASE_URL": f"http://127.0.0.1:{port}", "STUDIO_FAL_WEBHOOKS": "true",
                     "FAL_WEBHOOK_JWKS_URL": f"{sim.url}/.well-known/jwks.json"}
            web = start_web(port, **{key: value for key, value in env.items() if key.startswith("FAL_")}, **hooks)
            try:
                webhook = _run_mode("webhook", jobs, sim, {**env, **hooks})
            finally:
                stop(web)
            rows += [
                Row("tracking_lag_p50_s_webhook", webhook["lag_p50"], "s", webhook["baseline"]["lag_p50"], note),
                Row("tracking_lag_p95_s_webhook", webhook["lag_p95"], "s", webhook["baseline"]["lag_p95"], note),
            ]
    finally:
        sim.stop()
    return rows


def _run_mode(mode: str, jobs: int, sim, env: dict[str, str]) -> dict:
    """N jobs at once through a fresh worker cluster, after one job alone (the baseline)."""
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        baseline = _measure(1, sim)
        print(f"{mode}: one job alone, lag {baseline['lag_p95']:.3f} s")
        measured = _measure(jobs, sim)
        print(f"{mode}: {jobs} jobs, lag p50 {measured['lag_p50']:.3f} s, p95 {measured['lag_p95']:.3f} s")
    finally:
        stop(cluster)
    return {**measured, "baseline": baseline}


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
