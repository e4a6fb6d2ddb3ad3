"""`make chaos` keeps working: a small run with faults on, real SIGKILLs, a provider lock and a storage
outage, with text-to-video, image-to-video (data URI and fal storage upload) and gateway jobs from fal's
Python client, must pass its own audit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(420)  # recoveries wait out leases (15 s) and backoffs
def test_chaos_run_with_kills_and_outages_passes_its_audit(tmp_path):
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("chaos keeps its own scratch SQLite database: run once, on the embedded-defaults pass")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/chaos.sqlite3"}
    for name in ("AWS_STORAGE_BUCKET_NAME", "FAL_KEY", "FAL_QUEUE_URL", "REDIS_URL"):
        env.pop(name, None)
    report = tmp_path / "chaos.json"
    run = subprocess.run([sys.executable, "-m", "chaos", "--jobs", "16", "--create-seconds", "16",
                          "--i2v-share", "0.25", "--gateway-share", "0.25",
                          "--lock-at", "2", "--lock-seconds", "8", "--storage-outage-at", "11",
                          "--storage-outage-seconds", "5", "--kill-every", "2", "--kill-seconds", "20",
                          # The overheads are reported, not judged: no timed assertions in tests.
                          "--overhead-goal", "0", "--fault-rate", "0.1", "--deadline", "240", "--report", str(report)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(report.read_text())
    figures = result["figures"]
    assert result["problems"] == []
    assert figures["jobs"] == 16 and sum(figures["by_state"].values()) == 16
    assert set(figures["by_state"]) <= {"succeeded", "failed"}
    assert figures["jobs_by_kind"] == {"t2v": 8, "i2v_data_uri": 2, "i2v_upload": 2, "gateway": 4}
    assert sum(figures["kills"].values()) >= 5  # it really killed processes while jobs ran
    assert max(int(count) for count in figures["upstream_submits_per_job"]) <= 1
    assert figures["stored_objects"] == 2 * figures["by_state"].get("succeeded", 0) + figures["stored_start_images"]
    assert figures["ledger_drift"] == 0 and figures["orphaned_objects"] == 0
    assert figures["submit_unknown_received_by_fal"] == 0
    # Both ways a start image reaches fal were taken (an image-to-video job can fail before fal sees it).
    assert figures["start_images_to_fal"]["studio"].keys() == {"data_uri", "fal_storage"}
    # fal's client followed every gateway job to the end the studio gave it.
    assert figures["gateway"]["jobs"] == 4
    assert figures["gateway"].get("completed_ok", 0) + figures["gateway"].get("completed_with_error", 0) == 4
    # The lock held jobs, the studio resumed by itself, and nothing failed for it.
    lock = figures["recovery"]["provider_lock"]
    assert lock["calls_fal_refused"] >= 1, lock  # submits met the lock (creates go on throughout it)
    assert lock["held_jobs"] >= 1 and lock["released_jobs"] == lock["held_jobs"] and lock["failed_for_it"] == 0
    assert lock["resumed_after_unlock_s"] is not None
    # The storage outage ran (chattr needs root and a filesystem with the immutable flag).
    outage = figures["outages"]["storage_outage"]
    if os.geteuid() == 0:
        assert "seconds" in outage, outage
        assert figures["recovery"]["storage_outage"]["failed_for_it"] == 0
