"""Scale: thousands of jobs at fal at once (10,000 by default), fal 80 ms away, tracked by
`manage.py workers` on the default 2-worker cluster.

The jobs are all created before the workers start (a backlog, as after an outage of the workers), so
the creates do not pace the submits. Each job then runs at fal for a time drawn from a range meant
to outlast the sending of the whole backlog, so that all of them are in flight at once (on SQLite on
two cores the defaults fall short: docs/benchmarks.md, "Scale"). The status stream follower may
follow every job (STUDIO_FAL_STATUS_STREAMS = the job count), polls backing it up.

Figures, beside one job alone through the same processes:
- in flight: the peak of jobs QUEUED or RUNNING at fal at once;
- lag: fal completed → the studio saw it, p95 (target ≤ 2 s);
- memory: the peak memory of the whole `manage.py workers` process tree (supervisor, cluster, store
  driver, stream follower), sampled twice a second: the sum of their proportional set sizes, so what
  the forked processes share counts once.
"""
from __future__ import annotations

from bench.report import Row
from bench.tracking import BURST_LATENCY, run_phase

BASELINE_RUN_SECONDS = 5.0  # the one job alone need not wait for a backlog to be sent


def run(jobs: int, run_seconds: float, run_seconds_max: float, workers: int) -> list[Row]:
    streams = {"STUDIO_FAL_STATUS_STREAMS": str(max(jobs, 1))}
    note = (f"N={jobs} created before the workers start, {workers} workers, run {run_seconds:g}–{run_seconds_max:g} s, "
            f"upstream latency {BURST_LATENCY * 1000:g} ms, no webhooks, up to {jobs} status streams followed")

    def phase(count: int, shortest: float, longest: float | None) -> dict:
        # At this size a job may fail (fal's submits saturated: an ambiguous submit that cannot be told
        # apart from its neighbours ends as submit_unknown): a row counts them, the figures stand.
        return run_phase("polling", count, shortest, longest, workers, latency=BURST_LATENCY, command="workers",
                         backlog=True, settings_env=streams, timeout=3 * run_seconds_max + 300,
                         allow_failures=True)

    baseline = phase(1, BASELINE_RUN_SECONDS, None)
    measured = phase(jobs, run_seconds, run_seconds_max)
    print(f"scale ({BURST_LATENCY * 1000:g} ms away): {jobs} jobs created in {measured['created_in']:.0f} s, "
          f"{measured['peak_upstream']} at fal at once, lag p95 {measured['lag_p95']:.2f} s, "
          f"workers' peak memory {measured['peak_memory_mb']:.0f} MB "
          f"(one job alone: {baseline['peak_memory_mb']:.0f} MB), "
          f"all sent in {measured['send_seconds']:.0f} s, done in {measured['seconds']:.0f} s, "
          f"{sum(measured['failed'].values())} failed {measured['failed'] or ''}")
    return [
        Row("scale_inflight_jobs", measured["peak_upstream"], "jobs", None,
            f"peak QUEUED+RUNNING at fal at once; {note}"),
        Row("scale_lag_p95_s", measured["lag_p95"], "s", baseline["lag_p95"],
            f"fal completed → studio saw it; baseline: one job alone; {note}"),
        Row("scale_workers_memory_mb", measured["peak_memory_mb"], "MB", baseline["peak_memory_mb"],
            f"peak memory (PSS) of the manage.py workers process tree; baseline: one job alone; {note}"),
        Row("scale_send_seconds", measured["send_seconds"], "s", None,
            f"first job accepted at fal → last job accepted; {note}"),
        Row("scale_store_p95_s", measured["store_p95"], "s", baseline["store_p95"], f"seen → stored; {note}"),
        Row("scale_failed_jobs", sum(measured["failed"].values()), "jobs", None,
            f"jobs that did not succeed, by cause: {measured['failed'] or 'none'}; {note}"),
    ]
