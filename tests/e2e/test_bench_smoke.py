"""`make bench` keeps working: a tiny tracking run through a real cluster, on its own scratch database."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.e2e


def test_tracking_bench_runs_in_both_modes_and_reports_its_rows(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/bench.sqlite3"}
    for name in ("AWS_STORAGE_BUCKET_NAME", "FAL_KEY", "FAL_QUEUE_URL"):
        env.pop(name, None)
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--only", "tracking", "--jobs", "3", "--run-seconds", "0.5",
                          "--report", str(report)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = {row["name"]: row for row in json.loads(report.read_text())["rows"]}
    assert {"tracking_lag_p95_s_polling", "tracking_lag_p95_s_webhook", "inflight_jobs",
            "submit_overhead_p95_s"} <= set(rows)
    assert 0 <= rows["tracking_lag_p95_s_polling"]["value"] < 5
    assert 0 <= rows["tracking_lag_p95_s_webhook"]["value"] < 5
    assert rows["inflight_jobs"]["value"] >= 1


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
