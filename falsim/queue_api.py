"""The queue's HTTP answers: submit, status (and its SSE stream), result, cancel; the request listing.

    POST /{model_id}[?fal_webhook=URL]             submit (Key auth)
    GET  /{app}/requests/{id}/status[?logs=1]      202 IN_QUEUE/IN_PROGRESS, 200 COMPLETED
    GET  /{app}/requests/{id}/status/stream        server-sent events until COMPLETED
    GET  /{app}/requests/{id}                      result (400 while not completed)
    PUT  /{app}/requests/{id}/cancel               202 / 400 ALREADY_COMPLETED / 404
    GET  /v1/models/requests/by-endpoint?endpoint_id=…   fal's request listing (Key auth; falsim/listing.py)

Each answer reads or changes the engine (``falsim/engine.py``) after the checks fal makes first:
the Key, then the queue faults every queue call meets (``falsim/faults.py``), then the account
lock (submits and the listing only), then whether the app exists (an id or app the simulator does
not serve, or one retired with ``--retired``, answers 404 Application not found), then the route's
own faults. The route functions take the
HTTP handler (``falsim/http.py``) they answer on.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from fal_protocol.queue import COMPLETED
from falsim.listing import listing_answer
from falsim.schema import KNOWN_PREFIXES, ROUTES

if TYPE_CHECKING:
    from email.message import Message

    from falsim.engine import SimRequest
    from falsim.http import Handler


def submit(http: Handler, model_id: str) -> None:
    sim = http.sim
    if not http.key_ok():
        return
    sim.engine.count("submits")
    if _queue_faults(http, submit=True) or http.account_locked():
        return
    route = ROUTES.get(model_id)
    if route is None or sim.injector.is_retired(model_id, route.app):
        if route is not None:
            sim.engine.count("retired_refusals")
        return _app_not_found(http, model_id)
    ok, body = http.read_json()
    if not ok:
        return
    if sim.injector.roll("submit_5xx"):
        return _scheduling_failed(http)
    if sim.injector.roll("submit_late") and sim.stopping.wait(sim.fault_delay):
        http.close_connection = True
        return  # held until the simulator stopped: never registered
    webhooks = http.query.get("fal_webhook")
    webhook = (webhooks[-1] if webhooks else None) or None
    status, payload, req = sim.engine.submit(
        route, body, webhook, http.base_url(), _start_timeout(http.headers),
        store_io=http.headers.get("X-Fal-Store-IO", "1").strip() not in ("0", "false"),
        fallbacks_disabled=http.headers.get("x-fal-disable-fallbacks", "").strip().lower() == "true")
    if req is not None and sim.injector.roll("submit_reset_after_accept"):
        return http.reset_connection()  # queued, but the client only sees a reset connection
    if req is not None and sim.injector.roll("submit_timeout"):
        # The request is queued, but the client hears nothing for a long time.
        if sim.stopping.wait(sim.fault_delay):
            http.close_connection = True
            return
    http.send_json(status, payload, request_id=req.id if req else None)


def queue_call(http: Handler, method: str, parts: list[str]) -> None:
    """Status, status stream, result or cancel: ``{app}/requests/{id}[/...]``."""
    index = parts.index("requests")
    prefix, rest = "/".join(parts[:index]), parts[index + 1:]
    if not http.key_ok():
        return
    if len(rest) == 1 and method in ("GET", "HEAD"):
        operation, counter = _result, "result_calls"
    elif len(rest) == 2 and rest[1] == "status" and method in ("GET", "HEAD"):
        operation, counter = _status, "status_calls"
    elif len(rest) == 3 and rest[1:] == ["status", "stream"] and method == "GET":
        operation, counter = _status_stream, "status_calls"
    elif len(rest) == 2 and rest[1] == "cancel" and method in ("PUT", "POST"):
        operation, counter = _cancel, "cancel_calls"
    elif len(rest) in (1, 2, 3) and rest[1:] in ([], ["status"], ["status", "stream"], ["cancel"]):
        return http.send_json(405, {"detail": "Method Not Allowed"})
    else:
        return http.send_json(404, {"detail": "Not Found"})
    http.sim.engine.count(counter)
    if _queue_faults(http):
        return
    if prefix not in KNOWN_PREFIXES:
        return _app_not_found(http, prefix)
    if http.sim.injector.is_retired(prefix, "/".join(prefix.split("/")[:2])):
        http.sim.engine.count("retired_refusals")
        return _app_not_found(http, prefix)
    operation(http, rest[0])


def request_listing(http: Handler) -> None:
    sim = http.sim
    if not http.key_ok():
        return
    sim.engine.count("listing_calls")
    if sim.injector.roll("latency"):
        sim.stopping.wait(sim.latency_seconds)
    if http.account_locked():
        return
    if sim.injector.roll("listing_5xx"):
        return _service_unavailable(http, None)
    status, payload = listing_answer(sim.listing_records(), http.query, now=time.time(),
                                     lag=sim.listing_lag_seconds)
    http.send_json(status, payload)


def _queue_faults(http: Handler, submit: bool = False) -> bool:
    """The faults any queue call may meet, in this order; True when one has answered."""
    sim = http.sim
    if sim.injector.roll("latency"):
        sim.stopping.wait(sim.latency_seconds)
    if sim.injector.roll("reset"):
        http.discard_body()  # the request was read in full; nothing was done with it
        http.reset_connection()
        return True
    if sim.injector.roll("429"):
        http.send_json(429, {"detail": "Too many requests"}, {"Retry-After": "1"})
        return True
    if sim.injector.roll("5xx"):
        if submit:
            _scheduling_failed(http)
        else:
            _service_unavailable(http, None)
        return True
    return False


def _app_not_found(http: Handler, name: str) -> None:
    """What fal answers for an app it does not have (never had, or removed: ``--retired``)."""
    http.send_json(404, {"detail": f"Application '{name}' not found"})


def _scheduling_failed(http: Handler) -> None:
    http.send_json(
        503,
        {"detail": "Runner scheduling failed", "error_type": "runner_scheduling_failure"},
        {"X-Fal-Error-Type": "runner_scheduling_failure"},
        request_id=str(uuid.uuid4()),
    )


def _service_unavailable(http: Handler, request_id: str | None) -> None:
    http.send_json(
        503,
        {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
        {"X-Fal-Error-Type": "runner_disconnected"},
        request_id=request_id,
    )


def _start_timeout(headers: Message) -> float | None:
    for name in ("X-Fal-Request-Start-Timeout", "X-Fal-Request-Timeout"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if seconds > 0:
                return seconds
    return None


def _cancel(http: Handler, request_id: str) -> None:
    status, payload = http.sim.engine.cancel(request_id)
    http.send_json(status, payload, request_id=request_id if status != 404 else None)


def _known_request(http: Handler, request_id: str, fault: str) -> SimRequest | None:
    """The request, or None once answered: 404 when unknown or lost, 503 when ``fault`` fires."""
    req = http.sim.engine.lookup(request_id)
    if req is None:
        http.send_json(404, {"detail": "Request not found"})
        return None
    if http.sim.injector.roll(fault):
        _service_unavailable(http, req.id)
        return None
    return req


def _status(http: Handler, request_id: str) -> None:
    req = _known_request(http, request_id, "status_5xx")
    if req is not None:
        payload = http.sim.engine.status_payload(req, http.base_url(), http.flag("logs"))
        http.send_json(200 if payload["status"] == COMPLETED else 202, payload, request_id=req.id)


def _result(http: Handler, request_id: str) -> None:
    req = _known_request(http, request_id, "result_5xx")
    if req is not None:
        status, payload, headers = http.sim.engine.result(req, http.base_url())
        http.send_json(status, payload, headers, request_id=req.id)


def _status_stream(http: Handler, request_id: str) -> None:
    sim, engine = http.sim, http.sim.engine
    req = _known_request(http, request_id, "status_5xx")
    if req is None:
        return
    base, with_logs = http.base_url(), http.flag("logs")
    http.write_response(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                              ("Transfer-Encoding", "chunked"), ("x-fal-request-id", req.id)], content_length=-1)
    last_sent = None
    last_write = time.monotonic()
    version = engine.current_version(req)
    while not sim.stopping.is_set():
        if engine.lookup(request_id) is None:
            break  # forgotten ("lost"): the stream just ends, as a crashed upstream would
        payload = engine.status_payload(req, base, with_logs)
        if payload != last_sent:
            http.send_chunk(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")
            last_sent, last_write = payload, time.monotonic()
            if payload["status"] == COMPLETED:
                break
        remaining = sim.keepalive_interval - (time.monotonic() - last_write)
        if remaining <= 0:
            http.send_chunk(b": keepalive\n\n")
            last_write = time.monotonic()
            continue
        version = engine.wait_for_change(req, version, remaining)
    http.send_chunk(b"")
