"""The integrator side of a chaos run: fal's official Python client (`fal_client`) submitting to the
studio's gateway, as a program of its own (no Django here).

    python -m chaos.gateway_client --queue-url http://127.0.0.1:8000/fal/ [--poll-seconds 1]

Each line on stdin, `{"prompt": …, "key": <studio API key>}`, starts one job in a thread: submit
(`fal_client.client.QUEUE_URL_FORMAT` pointed at the studio over plain HTTP), poll its status until
`Completed`, fetch the result and download the video through the link it names. Each step prints
one JSON line on stdout: `{"event": "submitted", "prompt", "request_id", "submit_errors"}` and
`{"event": "done", "prompt", "request_id", "error", "error_type", "video_sha256", "status_errors"}`
(or `{"event": "gave_up", …}`). On end of input it waits for its jobs, then exits.

Like an integrator's program, it tries a refused submit again (a studio that answered 5xx must not
have kept the job: chaos/checks.py counts the jobs per prompt) and rides out failed status calls.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from typing import Any

import fal_client
import fal_client.client
import httpx

MODEL = "fal-ai/ltx-2/text-to-video"
SUBMIT_TRIES = 10
_print_lock = threading.Lock()


def emit(event: dict[str, Any]) -> None:
    with _print_lock:
        print(json.dumps(event), flush=True)


def describe(exc: Exception) -> str:
    if isinstance(exc, fal_client.FalClientHTTPError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def run_job(prompt: str, key: str, poll_seconds: float, give_up_after: float) -> None:
    client = fal_client.SyncClient(key=key)
    submit_errors: list[str] = []
    handle = None
    for _ in range(SUBMIT_TRIES):
        try:
            handle = client.submit(MODEL, arguments={"prompt": prompt, "duration": 6, "resolution": "1080p"})
            break
        except (fal_client.FalClientHTTPError, httpx.HTTPError) as exc:
            submit_errors.append(describe(exc))
            time.sleep(1.0)
    if handle is None:
        emit({"event": "gave_up", "prompt": prompt, "request_id": None, "submit_errors": submit_errors})
        return
    emit({"event": "submitted", "prompt": prompt, "request_id": handle.request_id, "submit_errors": submit_errors})
    status_errors: list[str] = []
    deadline = time.monotonic() + give_up_after
    status = None
    while time.monotonic() < deadline:
        try:
            status = handle.status()
        except (fal_client.FalClientHTTPError, httpx.HTTPError) as exc:
            status_errors.append(describe(exc))
            status = None
        if isinstance(status, fal_client.Completed):
            break
        time.sleep(poll_seconds)
    if not isinstance(status, fal_client.Completed):
        emit({"event": "gave_up", "prompt": prompt, "request_id": handle.request_id, "status_errors": status_errors})
        return
    outcome: dict[str, Any] = {"event": "done", "prompt": prompt, "request_id": handle.request_id,
                               "error": status.error, "error_type": status.error_type, "video_sha256": None,
                               "status_errors": status_errors}
    if status.error is None:
        try:
            video = handle.get()["video"]
            with httpx.Client(timeout=60, follow_redirects=True) as download:
                response = download.get(video["url"])
            outcome["video_sha256"] = (hashlib.sha256(response.content).hexdigest()
                                       if response.status_code == 200 else None)
            outcome["download_status"] = response.status_code
        except (fal_client.FalClientHTTPError, httpx.HTTPError, KeyError, TypeError) as exc:
            outcome["result_error"] = describe(exc)
    emit(outcome)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.gateway_client")
    parser.add_argument("--queue-url", required=True, help="the studio's gateway, e.g. http://127.0.0.1:8000/fal/")
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    parser.add_argument("--give-up-after", type=float, default=900.0, help="seconds a job may take before giving up")
    options = parser.parse_args()
    fal_client.client.QUEUE_URL_FORMAT = options.queue_url  # plain HTTP to the studio (recipe B)
    threads = []
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        thread = threading.Thread(target=run_job, args=(job["prompt"], job["key"], options.poll_seconds,
                                                        options.give_up_after), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
