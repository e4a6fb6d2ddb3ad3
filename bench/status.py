"""Status endpoints under load on the production server (gunicorn, gunicorn.conf.py, DEBUG off).

REST retrieve (`GET /api/v1/generations/{id}/`) and the gateway's status (`GET /fal/…/status`) of
a running job with logs, each polled by a closed-loop load generator (bench/loadgen.py) with an
API key, against the baseline of a bare Django JSON view on the same server (`/livez`). The three
are measured in turns of about a second (bare, REST, gateway, bare, …) and each one's turns are
added up, so that a shared machine's load, which drifts over seconds, weighs on all three alike
instead of on whichever ran during a busy spell. Also the database queries each request makes.
"""
from __future__ import annotations

import json
import subprocess
import sys

from bench.loadgen import summarize
from bench.report import ROOT, Row
from bench.server import free_port, start_web, stop


def run(seconds: float = 5.0, concurrency: int = 32) -> list[Row]:
    key, generation_id = _data()
    port = free_port()
    # One key polls as fast as it can here: lift its rate limit (the throttle still runs).
    server = start_web(port, STUDIO_API_RATE="100000000/min")
    base = f"http://127.0.0.1:{port}"
    auth = f"Authorization: Key {key}"
    endpoints = {
        "bare": (f"{base}/livez", []),
        "rest": (f"{base}/api/v1/generations/{generation_id}/", [auth]),
        "gateway": (f"{base}/fal/fal-ai/ltx-2/requests/{generation_id}/status?logs=1", [auth]),
    }
    turns = max(1, round(seconds))
    try:
        for url, headers in endpoints.values():  # warm every worker and thread
            _load(url, headers, 1.0, concurrency)
        runs: dict[str, list[dict]] = {name: [] for name in endpoints}
        for _ in range(turns):
            for name, (url, headers) in endpoints.items():
                runs[name].append(_load(url, headers, seconds / turns, concurrency))
        results = {name: _combined(parts) for name, parts in runs.items()}
    finally:
        stop(server)
    queries = _queries_per_request(key, generation_id)
    bare = results["bare"]
    for name, result in results.items():
        print(f"status bench {name}: {result}")
        if result["errors"]:
            raise SystemExit(f"status bench: {result['errors']} failed requests on {name}")
    note = f"gunicorn gthread, {concurrency} connections, {seconds:g} s each in {turns} turns"
    rows = []
    for name, label in (("rest", "REST retrieve"), ("gateway", "gateway status")):
        result = results[name]
        rows += [
            Row(f"status_{name}_ratio", round(result["rps"] / bare["rps"], 3), "x bare", 1.0,
                f"{label} req/s ÷ bare Django JSON view req/s"),
            Row(f"status_{name}_rps", result["rps"], "req/s", bare["rps"], note),
            Row(f"status_{name}_p95_ms", result["p95_ms"], "ms", bare["p95_ms"], note),
            Row(f"status_{name}_queries", queries[name], "queries", queries["bare"], "per request"),
        ]
    return rows


def _data() -> tuple[str, str]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.keys import api_key_create
    from generations.models import Generation
    from generations.services.create import generation_create

    user, _ = get_user_model().objects.get_or_create(username="bench-status")
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "status bench"})
    logs = [{"message": f"step {i}", "level": "INFO", "source": "USER", "timestamp": "2026-11-25T10:00:00Z"}
            for i in range(20)]
    # A job fal is running: what status pollers ask about. Nothing tracks it (no tracker runs here).
    Generation.objects.filter(pk=generation.pk).update(
        status="running", fal_status="IN_PROGRESS", fal_request_id=f"bench-{generation.pk}", logs=logs,
        started_at=timezone.now(), next_poll_at=None)
    return api_key_create(user=user, name="status bench")[1], str(generation.pk)


def _combined(runs: list[dict]) -> dict:
    return summarize([latency for run in runs for latency in run["latencies_ms"]], sum(run["seconds"] for run in runs),
                     sum(run["errors"] for run in runs))


def _load(url: str, headers: list[str], seconds: float, concurrency: int) -> dict:
    command = [sys.executable, "-m", "bench.loadgen", url, "--seconds", str(seconds), "--concurrency", str(concurrency),
               "--raw"]
    for header in headers:
        command += ["--header", header]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _queries_per_request(key: str, generation_id: str) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Key {key}")
    paths = {"bare": "/livez", "rest": f"/api/v1/generations/{generation_id}/",
             "gateway": f"/fal/fal-ai/ltx-2/requests/{generation_id}/status?logs=1"}
    counts = {}
    for name, path in paths.items():
        client.get(path)  # the first call may stamp the key's last use
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code in (200, 202), path
        counts[name] = len(captured.captured_queries)
    return counts
