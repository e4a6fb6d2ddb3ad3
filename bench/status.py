"""Status endpoints under load on the production server (gunicorn.conf.py: uvicorn workers, DEBUG off).

REST retrieve (`GET /api/v1/generations/{id}/`) and the gateway's status (`GET /fal/…/status`) of
a running job with logs, each polled by a closed-loop load generator (bench/loadgen.py) with an
API key, against the baseline of a bare Django JSON view on the same server (`/livez`). The three
are measured in one-second turns (bare, REST, gateway, bare, …) over the same keep-alive
connections, so that how gunicorn's two processes happened to share the connections out, and a
shared machine's load, which drifts over seconds, weigh on all three alike. (With a new set of
connections per turn, a turn whose connections mostly landed on one process ran on one core, and
single turns of the same endpoint differed by more than 2×.) Also the database queries each
request makes.
"""
from __future__ import annotations

import json
import subprocess
import sys

from bench.report import ROOT, Row
from bench.server import free_port, start_web, stop


def run(seconds: float = 5.0, concurrency: int = 32) -> list[Row]:
    key, generation_id = _data()
    port = free_port()
    # One key polls as fast as it can here: lift its rate limit (the throttle still runs).
    server = start_web(port, STUDIO_API_RATE="100000000/min")
    base = f"http://127.0.0.1:{port}"
    urls = {
        "bare": f"{base}/livez",
        "rest": f"{base}/api/v1/generations/{generation_id}/",
        "gateway": f"{base}/fal/fal-ai/ltx-2/requests/{generation_id}/status?logs=1",
    }
    try:
        measured = _load(list(urls.values()), f"Authorization: Key {key}", seconds, concurrency)
    finally:
        stop(server)
    results = {name: measured[url] for name, url in urls.items()}
    queries = _queries_per_request(key, generation_id)
    bare = results["bare"]
    for name, result in results.items():
        print(f"status bench {name}: {result}")
        if result["errors"]:
            raise SystemExit(f"status bench: {result['errors']} failed requests on {name}")
        if not result["requests"]:
            raise SystemExit(f"status bench: no request to {name} completed in {seconds:g} s; the server did not "
                             "answer in time (an overloaded machine?), so there is no ratio to report")
    note = (f"gunicorn + uvicorn workers, {concurrency} connections, {seconds:g} s each in turns of "
            f"{min(1.0, seconds):g} s")
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
    # An explicit id, so the gateway status URL below (under its app, fal-ai/ltx-2) is the job's own.
    generation, _ = generation_create(owner=user, model="fal-ai/ltx-2/text-to-video", input={"prompt": "status bench"})
    logs = [{"message": f"step {i}", "level": "INFO", "source": "USER", "timestamp": "2026-11-25T10:00:00Z"}
            for i in range(20)]
    # A job fal is running: what status pollers ask about. Nothing tracks it (no tracker runs here).
    Generation.objects.filter(pk=generation.pk).update(
        status="running", fal_status="IN_PROGRESS", fal_request_id=f"bench-{generation.pk}", logs=logs,
        started_at=timezone.now(), next_poll_at=None)
    return api_key_create(user=user, name="status bench")[1], str(generation.pk)


def _load(urls: list[str], header: str, seconds: float, concurrency: int) -> dict[str, dict]:
    """bench/loadgen.py over the same connections for every URL, in turns (see its docstring)."""
    turn = min(1.0, seconds)
    command = [sys.executable, "-m", "bench.loadgen", *urls, "--seconds", str(seconds), "--turn-seconds", str(turn),
               "--warmup-seconds", str(turn), "--concurrency", str(concurrency), "--header", header]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=len(urls) * (seconds + 1) + 60,
                         check=True)
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
