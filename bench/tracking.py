"""Tracking: N jobs in flight at once against the simulator, tracked by a real django-q2 cluster,
first by polling alone, then with fal's webhooks reaching the production web server as well.

Each phase (a mode × {one job alone, N jobs}) gets its own simulator process, worker cluster and,
in webhook mode, web server, so its counters and CPU are its own. The N-job phase draws each run
time from [run_seconds, run_seconds_max]; the one-job baseline runs for `run_seconds`.

Figures, per mode:
- lag: our row records fal's COMPLETED − the simulator marked it completed (p50, p95, max);
- upstream calls per job: the simulator's submit + status + result + cancel calls ÷ jobs. Its
  baseline is the polite minimum for the same jobs: submit + result + (polling) one status call per
  started second of the job's life at fal — the most polite rate that still sees a completion
  within a second, so a ratio below 1 means polls slower than that — or (webhooks) the one status
  read that confirms the webhook;
- in flight: the peak of jobs created and not yet finished, and of jobs QUEUED or RUNNING at fal;
- CPU seconds per job: user + system CPU of the cluster's process tree (and, with webhooks, the
  web server's) from the first create to the last job stored, ÷ jobs; baseline = the one-job phase;
- submit overhead (create → fal accepted) and store time (seen completed → video stored).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings

from bench.report import ROOT, Row, percentile
from bench.server import free_port, start_web, stop

KEY = "bench-key"
PHASE_TIMEOUT = 300.0
MIN_STATUS_INTERVAL = 1.0  # no job is polled more often than once a second


def run(jobs: int, run_seconds: float, run_seconds_max: float | None, workers: int, *,
        webhooks: bool = True, modes: tuple[str, ...] = ("polling", "webhook")) -> list[Row]:
    spread = f"{run_seconds:g}–{run_seconds_max:g} s" if run_seconds_max else f"{run_seconds:g} s"
    note = f"N={jobs}, {workers} workers, run {spread}"
    rows: list[Row] = []
    for mode in [mode for mode in modes if webhooks or mode != "webhook"]:
        if mode == "burst":
            rows += _burst(jobs, run_seconds, run_seconds_max, workers, note)
            continue
        baseline = run_phase(mode, 1, run_seconds, None, workers)
        print(f"{mode}: one job alone, lag {baseline['lag_p95']:.3f} s, {baseline['calls_per_job']:.0f} upstream calls")
        measured = run_phase(mode, jobs, run_seconds, run_seconds_max, workers)
        print(f"{mode}: {jobs} jobs, lag p50 {measured['lag_p50']:.3f} s, p95 {measured['lag_p95']:.3f} s, "
              f"max {measured['lag_max']:.3f} s; {measured['calls_per_job']:.1f} upstream calls and "
              f"{measured['cpu_per_job']:.3f} CPU s per job; done in {measured['seconds']:.0f} s")
        rows += [
            Row(f"tracking_lag_p50_s_{mode}", measured["lag_p50"], "s", baseline["lag_p50"], note),
            Row(f"tracking_lag_p95_s_{mode}", measured["lag_p95"], "s", baseline["lag_p95"], note),
            Row(f"tracking_lag_max_s_{mode}", measured["lag_max"], "s", baseline["lag_max"], note),
            Row(f"upstream_calls_per_job_{mode}", measured["calls_per_job"], "calls", measured["minimum_calls_per_job"],
                "baseline: submit + result + " + ("a status call a second while at fal" if mode == "polling"
                                                   else "the status read a webhook triggers")),
            Row(f"cpu_seconds_per_job_{mode}", measured["cpu_per_job"], "s", baseline["cpu_per_job"],
                "cluster" + (" + web server" if mode == "webhook" else "") + " CPU ÷ jobs; baseline: one job alone"),
        ]
        if mode == "polling":
            rows += [
                Row("inflight_jobs", measured["peak_inflight"], "jobs", None,
                    f"peak created and not yet finished at once; {workers} workers"),
                Row("inflight_jobs_upstream", measured["peak_upstream"], "jobs", None,
                    "peak QUEUED+RUNNING at fal at once (submits and completions overlap)"),
                Row("worker_processes", workers, "procs", None, f"the whole cluster, for {jobs} jobs in flight"),
                Row("submit_overhead_p50_s", measured["submit_p50"], "s", baseline["submit_p50"],
                    "create → fal accepted"),
                Row("submit_overhead_p95_s", measured["submit_p95"], "s", baseline["submit_p95"],
                    "create → fal accepted"),
                Row("store_p95_s", measured["store_p95"], "s", baseline["store_p95"], "seen completed → video stored"),
            ]
    return rows


def _burst(jobs: int, run_seconds: float, run_seconds_max: float | None, workers: int, note: str) -> list[Row]:
    """The polling phase again with fal where it really is (every upstream call 80 ms away), under
    `manage.py workers` as `make run` runs it: the cluster, and the status stream follower beside it
    unless STUDIO_FAL_STATUS_STREAMS=0 says poll only."""
    streams = settings.STUDIO_FAL_STATUS_STREAMS  # the bench's own settings read the environment its processes get
    following = f"status streams followed (up to {streams})" if streams else "polling only"
    note = f"{note}, upstream latency {BURST_LATENCY * 1000:g} ms, no webhooks, {following}"
    baseline = run_phase("polling", 1, run_seconds, None, workers, latency=BURST_LATENCY, command="workers")
    measured = run_phase("polling", jobs, run_seconds, run_seconds_max, workers, latency=BURST_LATENCY,
                         command="workers")
    print(f"burst ({BURST_LATENCY * 1000:g} ms away): {jobs} jobs created in {measured['created_in']:.0f} s, "
          f"submit p95 {measured['submit_p95']:.2f} s, "
          f"lag p95 {measured['lag_p95']:.2f} s, store p95 {measured['store_p95']:.2f} s, "
          f"{measured['status_calls_per_job_second']:.2f} status calls per job-second; "
          f"one job alone: submit {baseline['submit_p95']:.2f} s, store {baseline['store_p95']:.2f} s")
    return [
        Row("burst_submit_overhead_p50_s", measured["submit_p50"], "s", baseline["submit_p50"],
            f"create → fal accepted; baseline: one job alone; {note}"),
        Row("burst_submit_overhead_p95_s", measured["submit_p95"], "s", baseline["submit_p95"],
            f"create → fal accepted; baseline: one job alone; {note}"),
        Row("burst_lag_p95_s", measured["lag_p95"], "s", baseline["lag_p95"],
            f"fal completed → studio saw it; {note}"),
        Row("burst_store_p95_s", measured["store_p95"], "s", baseline["store_p95"], f"seen → stored; {note}"),
        Row("burst_status_calls_per_job_second", measured["status_calls_per_job_second"], "calls",
            baseline["status_calls_per_job_second"], f"status calls ÷ seconds jobs spent at fal; {note}"),
        Row("burst_create_seconds", measured["created_in"], "s", None,
            f"the {jobs} creates, one after another from one process, while the first are tracked; {note}"),
        Row("burst_done_p95_s", measured["done_p95"], "s", baseline["done_p95"],
            f"create → stored, the simulated run included (the baseline's runs {run_seconds:g} s); {note}"),
    ]


BURST_LATENCY = 0.08


def run_phase(mode: str, count: int, run_seconds: float, run_seconds_max: float | None, workers: int, *,
              latency: float = 0.0, command: str = "qcluster", backlog: bool = False,
              settings_env: dict[str, str] | None = None, timeout: float = PHASE_TIMEOUT,
              allow_failures: bool = False) -> dict:
    """`count` jobs created at once through fresh processes (the cluster run by `manage.py command`,
    with `settings_env` added to its environment); returns the phase's figures. With `backlog`, the
    jobs are all created before the cluster starts (as after an outage of the workers)."""
    with ExitStack() as stack:
        sim_url = stack.enter_context(simulator(count, run_seconds, run_seconds_max, latency))
        env = {**os.environ, "FAL_QUEUE_URL": sim_url, "FAL_KEY": KEY, "Q_WORKERS": str(workers),
               "STUDIO_LOG_LEVEL": "WARNING", "STUDIO_FAL_WEBHOOKS": "false", **(settings_env or {})}
        env.update(FAL_REST_URL=sim_url, FAL_API_URL=sim_url)
        pids = []
        if mode == "webhook":
            port = free_port()
            hooks = {"STUDIO_BASE_URL": f"http://127.0.0.1:{port}", "STUDIO_FAL_WEBHOOKS": "true",
                     "FAL_WEBHOOK_JWKS_URL": f"{sim_url}/.well-known/jwks.json"}
            env.update(hooks)
            web = start_web(port, **{key: value for key, value in env.items()
                                     if key.startswith("FAL_") or key in hooks})
            stack.callback(stop, web)
            pids.append(web.pid)
        user = _bench_user(f"bench-{mode}-{count}")
        created_in = _create(user, count) if backlog else None
        # Warnings and worse only (STUDIO_LOG_LEVEL): a restart or a stranded submit, should one happen.
        log = open(os.path.join(tempfile.gettempdir(), f"bench-workers-{mode}-{count}.log"), "w")
        cluster = subprocess.Popen([sys.executable, "manage.py", command], cwd=ROOT, env=env,
                                   stdout=log, stderr=log)
        log.close()
        stack.callback(stop, cluster)
        pids.append(cluster.pid)
        wait_for_cluster(cluster.pid, workers + (_helpers(env) if command == "workers" else 0))
        cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
        if created_in is None:
            created_in = _create(user, count)
        figures = _watch(user, count, pids, timeout, allow_failures=allow_failures)
        figures["created_in"] = created_in
        figures["cpu_per_job"] = (sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before) / count
        figures.update(_upstream_figures(sim_url, figures.pop("request_ids"), mode))
        return figures


@contextmanager
def simulator(count: int, run_seconds: float, run_seconds_max: float | None, latency: float) -> Iterator[str]:
    """The simulator in its own process (so its CPU is not the studio's), in bench mode; every queue call
    waits `latency` seconds first."""
    port = free_port()
    args = [sys.executable, "-m", "falsim", "--port", str(port), "--key", KEY, "--runners", str(count + 1),
            "--run-seconds", str(run_seconds), "--scale", "16", "--cache-renders"]
    if run_seconds_max:
        args += ["--run-seconds-max", str(run_seconds_max)]
    if latency:
        args += ["--fault-latency", "1", "--latency-seconds", str(latency)]
    log = open(os.path.join(tempfile.gettempdir(), f"bench-falsim-{port}.log"), "w")
    sim = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
    log.close()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _get_json(f"{url}/_sim/stats")
                break
            except OSError as exc:
                if sim.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the simulator did not start: {args}") from exc
                time.sleep(0.1)
        yield url
    finally:
        stop(sim)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def _helpers(env: dict[str, str]) -> int:
    """Processes `manage.py workers` runs besides the cluster: itself, the store driver, the stream follower."""
    streams = int(env.get("STUDIO_FAL_STATUS_STREAMS", settings.STUDIO_FAL_STATUS_STREAMS))
    return 3 if streams else 2


def wait_for_cluster(pid: int, workers: int) -> None:
    """Until the cluster has forked its workers (so startup is not counted as submit time)."""
    deadline = time.monotonic() + 20
    while len(_tree(pid)) < workers + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(int(entry))
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; the command name may contain spaces."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rpartition(")")[2].split()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its live descendants, including children they already reaped."""
    ticks = 0
    for pid in _tree(root):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _bench_user(username: str) -> Any:
    from django.contrib.auth import get_user_model

    from storage.models import UserQuota

    user, _ = get_user_model().objects.get_or_create(username=username)
    # The bench measures tracking, not admission: give its user room for every job.
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                            "storage_bytes": 10**15})
    return user


def _create(user: Any, count: int) -> float:
    """Create `count` text-to-video jobs one after another, as the REST API would; how long it took."""
    from generations.services.create import generation_create

    started = time.monotonic()
    for i in range(count):
        generation_create(owner=user, model="t2v", input={"prompt": f"bench {i}"})
    return time.monotonic() - started


def _watch(user: Any, count: int, pids: list[int], timeout: float, *, allow_failures: bool = False) -> dict:
    """Until the user's `count` jobs have all finished: the peaks of jobs in flight and of the processes'
    memory (`pids` and their descendants, sampled twice a second), then each job's timings. A job that
    did not succeed ends the bench, unless `allow_failures`: then the timings are the succeeded jobs'
    and `failed` counts the others by cause."""
    from django.db.models import Count

    from generations.models import Generation

    started = time.monotonic()
    deadline = started + timeout
    peak = peak_upstream = peak_memory = 0
    mine = Generation.objects.filter(owner=user)
    while time.monotonic() < deadline:
        counts = dict(mine.values_list("status").annotate(n=Count("pk")).order_by())
        finished = sum(counts.get(status, 0) for status in ("succeeded", "failed", "canceled"))
        peak = max(peak, count - finished)
        peak_upstream = max(peak_upstream, counts.get("queued", 0) + counts.get("running", 0))
        peak_memory = max(peak_memory, sum(tree_pss_bytes(pid) for pid in pids))
        if finished == count:
            break
        time.sleep(0.5)
    seconds = time.monotonic() - started
    rows = list(mine)
    failed = [row for row in rows if row.status != "succeeded"]
    failures = Counter(row.error_code or row.status for row in failed)
    if failed and allow_failures:  # figures over the jobs that succeeded; the others counted by cause
        rows = [row for row in rows if row.status == "succeeded"]
    elif failed:
        raise SystemExit(f"{len(failed)} of {count} bench jobs did not succeed, e.g. {failed[0].status}: "
                         f"{failed[0].error_message} (the workers' and the simulator's logs: "
                         f"{tempfile.gettempdir()}/bench-*.log)")
    sent = [_stamped(row.submitted_at) for row in rows]
    submits = [_seconds(row.created_at, row.submitted_at) for row in rows]
    stores = [_seconds(row.completed_at, row.finished_at) for row in rows]
    done = [_seconds(row.created_at, row.finished_at) for row in rows]
    return {"peak_inflight": peak, "peak_upstream": peak_upstream, "seconds": seconds,
            "failed": dict(failures),
            "peak_memory_mb": peak_memory / 1e6,
            "send_seconds": (max(sent) - min(sent)).total_seconds(),
            "submit_p50": percentile(submits, 0.5),
            "submit_p95": percentile(submits, 0.95), "store_p95": percentile(stores, 0.95),
            "done_p95": percentile(done, 0.95),
            "request_ids": {row.fal_request_id: _stamped(row.completed_at).timestamp() for row in rows}}


def tree_pss_bytes(root: int) -> int:
    """Memory of `root` and its live descendants: each one's proportional set size, so pages the
    processes share (a forked cluster shares most of Django) are counted once, not once each."""
    total = 0
    for pid in _tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) * 1024 for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


def _stamped(moment: datetime | None) -> datetime:
    assert moment is not None, "a succeeded job has every timestamp"
    return moment


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (_stamped(end) - _stamped(start)).total_seconds()


def _upstream_figures(sim_url: str, seen_at: dict[str, float], mode: str) -> dict:
    """Lag and upstream calls, from the simulator's own records of this phase."""
    upstream = {req["request_id"]: req for req in _get_json(f"{sim_url}/_sim/requests")}
    stats = _get_json(f"{sim_url}/_sim/stats")
    lags = [seen - upstream[request_id]["completed_at"] for request_id, seen in seen_at.items()]
    calls = stats["submits"] + stats["status_calls"] + stats["result_calls"] + stats["cancel_calls"]
    seconds_at_fal = sum(upstream[rid]["completed_at"] - upstream[rid]["submitted_at"] for rid in seen_at)
    if mode == "polling":
        minimum = sum(2 + math.ceil((upstream[rid]["completed_at"] - upstream[rid]["submitted_at"])
                                    / MIN_STATUS_INTERVAL)
                      for rid in seen_at)
    else:
        minimum = 3 * len(seen_at)
    return {"lag_p50": percentile(lags, 0.5), "lag_p95": percentile(lags, 0.95), "lag_max": max(lags),
            "calls_per_job": calls / len(seen_at), "minimum_calls_per_job": minimum / len(seen_at),
            "status_calls_per_job_second": stats["status_calls"] / max(seconds_at_fal, 1e-9)}
