"""`make bench` keeps working: a tiny tracking run through a real cluster, on its own scratch database."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.e2e


def tracking_bench(tmp_path, only: str, *extra: str) -> dict[str, dict]:
    """`make bench --only <only>` with 3 short jobs on a scratch database and the simulator; its rows."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/bench.sqlite3"}
    for name in ("AWS_STORAGE_BUCKET_NAME", "FAL_KEY", "FAL_QUEUE_URL"):
        env.pop(name, None)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--only", only, "--jobs", "3", "--run-seconds", "0.5",
                          "--run-seconds-max", "1.5", "--report", str(report), *extra],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return {row["name"]: row for row in json.loads(report.read_text())["rows"]}


def test_tracking_bench_runs_in_both_modes_and_reports_its_rows(tmp_path):
    rows = tracking_bench(tmp_path, "tracking")
    modes = ("polling", "webhook")
    assert set(rows) == {"inflight_jobs", "inflight_jobs_upstream", "worker_processes", "submit_overhead_p50_s",
                         "submit_overhead_p95_s", "store_p95_s"} | {
        f"{figure}_{mode}" for mode in modes for figure in (
            "tracking_lag_p50_s", "tracking_lag_p95_s", "tracking_lag_max_s", "upstream_calls_per_job",
            "cpu_seconds_per_job")}
    for mode in modes:
        lag = {p: rows[f"tracking_lag_{p}_s_{mode}"] for p in ("p50", "p95", "max")}
        assert 0 <= lag["p50"]["value"] <= lag["p95"]["value"] <= lag["max"]["value"] < 5
        assert lag["p95"]["baseline"] is not None and 0 <= lag["p95"]["baseline"] < 5  # one job alone, same run
        calls = rows[f"upstream_calls_per_job_{mode}"]
        # at least a submit, a status call and a result fetch per job; never more than one poll a second
        assert 3 <= calls["value"] <= calls["baseline"] + 2
        cpu = rows[f"cpu_seconds_per_job_{mode}"]
        assert cpu["value"] > 0 and cpu["baseline"] > 0
    assert rows["upstream_calls_per_job_webhook"]["baseline"] == 3  # submit, the status read, the result
    assert rows["inflight_jobs"]["value"] == 3  # all created at once, none finished before the last create
    assert 1 <= rows["inflight_jobs_upstream"]["value"] <= 3
    assert rows["worker_processes"]["value"] == 2
    assert 0 < rows["submit_overhead_p50_s"]["value"] <= rows["submit_overhead_p95_s"]["value"] < 5


def test_burst_bench_puts_fal_80_ms_away_and_reports_its_rows(tmp_path):
    rows = tracking_bench(tmp_path, "burst")
    assert set(rows) == {"burst_submit_overhead_p50_s", "burst_submit_overhead_p95_s", "burst_lag_p95_s",
                         "burst_store_p95_s", "burst_status_calls_per_job_second", "burst_create_seconds",
                         "burst_done_p95_s"}
    # A submit is one round trip at least: 80 ms away, no job reaches fal sooner (nor does the baseline).
    submit = rows["burst_submit_overhead_p95_s"]
    assert 0.08 <= rows["burst_submit_overhead_p50_s"]["value"] <= submit["value"] < 10 and submit["baseline"] >= 0.08
    assert "upstream latency 80 ms" in submit["note"]
    assert 0 <= rows["burst_lag_p95_s"]["value"] < 10 and 0 < rows["burst_store_p95_s"]["value"] < 10
    # Created to stored takes at least the submit and the simulated run (0.5 s or more).
    assert submit["value"] + 0.5 <= rows["burst_done_p95_s"]["value"] < 30
    # The creates are timed on their own, with no baseline to hold them against.
    created = rows["burst_create_seconds"]
    assert 0 < created["value"] < 10 and created["baseline"] is None
    # Polls a second apart; a job at fal for half a second still needs its one poll, hence up to 2 here.
    assert 0 < rows["burst_status_calls_per_job_second"]["value"] <= 2.5


def test_scale_bench_sends_a_backlog_to_fal_80_ms_away_and_reports_its_rows(tmp_path):
    rows = tracking_bench(tmp_path, "scale", "--scale-jobs", "4", "--scale-run-seconds", "2",
                          "--scale-run-seconds-max", "2.5")
    assert set(rows) == {"scale_inflight_jobs", "scale_lag_p95_s", "scale_workers_memory_mb", "scale_send_seconds",
                         "scale_store_p95_s", "scale_failed_jobs"}
    assert rows["scale_failed_jobs"]["value"] == 0 and "by cause: none" in rows["scale_failed_jobs"]["note"]
    # Every job sent before the first ends (runs of 2 s or more): all four at fal at once.
    assert rows["scale_inflight_jobs"]["value"] == 4 and "up to 4 status streams followed" in rows[
        "scale_inflight_jobs"]["note"]
    lag = rows["scale_lag_p95_s"]
    assert 0 <= lag["value"] < 5 and lag["baseline"] is not None and 0 <= lag["baseline"] < 5
    # The workers' tree (supervisor, cluster, store driver, follower) takes tens of MB at least, each time.
    memory = rows["scale_workers_memory_mb"]
    assert 50 < memory["baseline"] and 50 < memory["value"] < 5000
    assert 0 <= rows["scale_send_seconds"]["value"] < 2 and 0 < rows["scale_store_p95_s"]["value"] < 10


def test_status_bench_runs_the_production_server_and_reports_ratios(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/bench.sqlite3"}
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--only", "status", "--status-seconds", "0.5",
                          "--report", str(report)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(report.read_text())["rows"]}
    for name in ("rest", "gateway"):
        ratio, rps = rows[f"status_{name}_ratio"], rows[f"status_{name}_rps"]
        assert rps["value"] > 0 and rps["baseline"] > 0
        assert ratio["value"] == pytest.approx(rps["value"] / rps["baseline"], abs=0.001)  # rounded to 3 places
        assert rows[f"status_{name}_queries"]["value"] <= 3  # a key lookup and the job, no N+1
