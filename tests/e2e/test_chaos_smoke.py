"""`make chaos` keeps working: a small run with faults on and real SIGKILLs must pass its own audit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(480)  # recoveries wait out leases (30–60 s) and backoffs
def test_chaos_run_with_kills_passes_its_audit(tmp_path):
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("chaos keeps its own scratch SQLite database: run once, on the embedded-defaults pass")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/chaos.sqlite3"}
    for name in ("AWS_STORAGE_BUCKET_NAME", "FAL_KEY", "FAL_QUEUE_URL", "REDIS_URL"):
        env.pop(name, None)
    report = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "chaos", "--jobs", "16", "--kill-every", "2", "--kill-seconds", "20",
                          "--fault-rate", "0.1", "--deadline", "300", "--report", str(report)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(report.read_text())
    figures = result["figures"]
    assert result["problems"] == []
    assert figures["jobs"] == 16 and sum(figures["by_state"].values()) == 16
    assert set(figures["by_state"]) <= {"succeeded", "failed"}
    assert sum(figures["kills"].values()) >= 5  # it really killed processes while jobs ran
    assert max(int(count) for count in figures["upstream_submits_per_job"]) <= 1
    assert figures["stored_objects"] == 2 * figures["by_state"].get("succeeded", 0)
    assert figures["ledger_drift"] == 0 and figures["orphaned_objects"] == 0
