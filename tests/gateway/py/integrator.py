"""An integrator's program written for fal's official Python client, unchanged for the studio.

It knows nothing about the studio: the host comes from the environment the way fal's client reads
it (`FAL_QUEUE_RUN_HOST`, at import time) and the key from `FAL_KEY`. The tests run it as is over
TLS, and through `patched_client.py --queue-url` (the queue-URL override) over plain HTTP.
The prompt may be set with `LTX_PROMPT`.

    python integrator.py SCENARIO [SCENARIO …]

Scenarios run concurrently; the program prints one JSON line `{scenario: outcome, …}`. Each outcome
records what the client returned or raised (`FalClientHTTPError` as `{"status_code", "message",
"error_type", "body"}`), so the test can assert on it.

    submit            submit → status(with_logs) until Completed → get()
    subscribe         subscribe(with_logs, on_enqueue, on_queue_update) recording every update
    module            submit, then module-level status()/result() by app id and request id
    module-alias      the same with the alias model id fal-ai/ltxv-2/text-to-video
    cancel-queued     submit, cancel at once, then status / get() / cancel again
    cancel-running    the same once the job reports InProgress (asks the simulator for a slow job)
    invalid           submit with duration 7 (not an LTX-2 duration)
    isolation         alice submits; OTHER_FAL_KEY's client tries status/result/cancel on her id
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fal_client
import httpx

MODEL = "fal-ai/ltx-2/text-to-video"
ALIAS_MODEL = "fal-ai/ltxv-2/text-to-video"
PORTRAIT_MODEL = "fal-ai/ltx-2.3/text-to-video"
ARGUMENTS = {"prompt": os.environ.get("LTX_PROMPT", "A lighthouse on a cliff at dusk, waves crashing"),
             "duration": 6, "resolution": "1080p", "fps": 25, "generate_audio": True}
WAIT_SECONDS = 60.0


def described(status: fal_client.Status) -> dict[str, Any]:
    if isinstance(status, fal_client.Queued):
        return {"type": "Queued", "position": status.position}
    if isinstance(status, fal_client.InProgress):
        return {"type": "InProgress", "logs": status.logs}
    if isinstance(status, fal_client.Completed):
        return {"type": "Completed", "logs": status.logs, "metrics": status.metrics, "error": status.error,
                "error_type": status.error_type}
    raise TypeError(f"unexpected status {status!r}")


def http_error(exc: fal_client.FalClientHTTPError) -> dict[str, Any]:
    try:
        body = exc.response.json()
    except ValueError:
        body = exc.response.text
    return {"status_code": exc.status_code, "message": str(exc), "error_type": exc.error_type, "body": body}


def caught(call: Callable[[], Any]) -> dict[str, Any]:
    """What `call` returned (`{"ok": …}`) or the HTTP error it raised (`{"error": …}`)."""
    try:
        value = call()
    except fal_client.FalClientHTTPError as exc:
        return {"error": http_error(exc)}
    if isinstance(value, fal_client.Status):
        value = described(value)
    return {"ok": value}


def urls(handle: fal_client.SyncRequestHandle) -> dict[str, str]:
    return {"request_id": handle.request_id, "status_url": handle.status_url, "response_url": handle.response_url,
            "cancel_url": handle.cancel_url}


def poll(status: Callable[[], fal_client.Status], until: type = fal_client.Completed) -> list[dict[str, Any]]:
    """Statuses seen (consecutive repeats dropped) until one is an `until`, or a Completed."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        current = status()
        if not seen or seen[-1]["type"] != type(current).__name__:
            seen.append(described(current))
        if isinstance(current, (until, fal_client.Completed)):
            return seen
        time.sleep(0.1)
    raise TimeoutError(f"still {seen[-1]['type']} after {WAIT_SECONDS} s: {seen}")


def scenario_submit() -> dict[str, Any]:
    handle = fal_client.submit(MODEL, arguments=ARGUMENTS)
    statuses = poll(lambda: handle.status(with_logs=True))
    return {**urls(handle), "statuses": statuses, "result": handle.get()}


def scenario_subscribe() -> dict[str, Any]:
    enqueued: list[str] = []
    updates: list[dict[str, Any]] = []
    result = fal_client.subscribe(MODEL, arguments=ARGUMENTS, with_logs=True, on_enqueue=enqueued.append,
                                  on_queue_update=lambda status: updates.append(described(status)))
    return {"request_id": enqueued[0] if enqueued else None, "enqueued": enqueued, "updates": updates,
            "result": result}


def scenario_portrait() -> dict[str, Any]:
    """LTX-2.3 in portrait, at 24 fps: what a short-form integrator asks for."""
    enqueued: list[str] = []
    arguments = {"prompt": ARGUMENTS["prompt"], "duration": 6, "fps": 24, "aspect_ratio": "9:16"}
    result = fal_client.subscribe(PORTRAIT_MODEL, arguments=arguments, on_enqueue=enqueued.append)
    return {"request_id": enqueued[0] if enqueued else None, "result": result}


def module_round(model: str) -> dict[str, Any]:
    handle = fal_client.submit(model, arguments=ARGUMENTS)
    statuses = poll(lambda: fal_client.status(model, handle.request_id, with_logs=True))
    return {**urls(handle), "statuses": statuses, "result": fal_client.result(model, handle.request_id)}


def cancel_round(*, wait_for_progress: bool) -> dict[str, Any]:
    prompt = ARGUMENTS["prompt"] + (" [sim:slow]" if wait_for_progress else "")
    handle = fal_client.submit(MODEL, arguments={**ARGUMENTS, "prompt": prompt})
    before = poll(lambda: handle.status(with_logs=True),
                  until=fal_client.InProgress if wait_for_progress else fal_client.Queued)
    cancel = caught(handle.cancel)
    after = described(handle.status(with_logs=True))
    return {**urls(handle), "before": before, "cancel": cancel, "after": after, "get": caught(handle.get),
            "cancel_again": caught(handle.cancel)}


def scenario_invalid() -> dict[str, Any]:
    return caught(lambda: urls(fal_client.submit(MODEL, arguments={**ARGUMENTS, "duration": 7})))


def scenario_isolation() -> dict[str, Any]:
    handle = fal_client.submit(MODEL, arguments=ARGUMENTS)
    other = fal_client.SyncClient(key=os.environ["OTHER_FAL_KEY"])
    raw = httpx.Client(headers={"Authorization": f"Key {os.environ['OTHER_FAL_KEY']}"}, timeout=30)
    attempts = lambda: {  # noqa: E731
        "status": caught(lambda: other.status(MODEL, handle.request_id, with_logs=True)),
        "cancel": caught(lambda: other.cancel(MODEL, handle.request_id)),
        "result": caught(lambda: other.result(MODEL, handle.request_id)),
        # The exact URLs alice was given, not rebuilt ones (the result URL is not behind a status poll here).
        "raw": {name: [(r := raw.request(method, url)).status_code, r.json()] for name, method, url in (
            ("status", "GET", handle.status_url), ("result", "GET", handle.response_url),
            ("cancel", "PUT", handle.cancel_url))},
    }
    while_active = attempts()
    statuses = poll(lambda: handle.status(with_logs=True))
    result = handle.get()
    return {**urls(handle), "while_active": while_active, "statuses": statuses, "result": result,
            "after_completion": attempts()}


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "submit": scenario_submit,
    "subscribe": scenario_subscribe,
    "module": lambda: module_round(MODEL),
    "module-alias": lambda: module_round(ALIAS_MODEL),
    "cancel-queued": lambda: cancel_round(wait_for_progress=False),
    "cancel-running": lambda: cancel_round(wait_for_progress=True),
    "invalid": scenario_invalid,
    "isolation": scenario_isolation,
    "portrait": scenario_portrait,
}


def main(names: list[str]) -> None:
    unknown = [name for name in names if name not in SCENARIOS]
    if not names or unknown:
        sys.exit(f"usage: integrator.py SCENARIO [SCENARIO …]; unknown: {unknown}; known: {', '.join(SCENARIOS)}")
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {name: pool.submit(SCENARIOS[name]) for name in names}
        outcomes = {name: future.result() for name, future in futures.items()}
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1:])
