"""The queue engine: what the simulator remembers of each request, and its way through fal's queue.

Timing: ``runners`` requests run at once (``falsim/runner.py``), the rest wait IN_QUEUE in FIFO
order; a request stays IN_PROGRESS at least ``run_seconds`` (its MP4 is rendered meanwhile, at
1/``scale`` of the requested resolution; fps, duration and frame count are always exact). With
``run_seconds_max``, each request's run time is drawn from [run_seconds, run_seconds_max] (seeded).

Prompt magic words (deterministic, case-insensitive, for tests):
    [sim:422]   completes with a 422 content_policy_violation error at result
    [sim:lost]  forgotten after completion: status and result answer 404
    [sim:slow]  runs 3x longer than ``run_seconds``

Failed requests, as clients see them: status is COMPLETED (200) with ``error`` and
``error_type``; the result call returns the stored error status and body.
    422 model error   error "Invalid status code: 422", error_type "validation_error";
                      result 422 {"detail": [{"loc": ["body", "prompt"], "type": "content_policy_violation", ...}]}
    cancelled         error "Request was cancelled", error_type "request_cancelled";
                      result 400 {"detail": "Request was cancelled"}
    start timeout     error "Invalid status code: 504", error_type "request_timeout";
                      result 504 + X-Fal-Request-Timeout-Type: user
Lost requests send no webhook; every other completion (including failures) does.

Also honoured: ``X-Fal-Request-Start-Timeout`` / ``X-Fal-Request-Timeout`` (a request still
queued after that many seconds completes with a 504 ``request_timeout`` error).

Submit headers: each request records whether it came with ``x-fal-disable-fallbacks: true`` and
whether fal may keep its payloads (``X-Fal-Store-IO``, default yes): ``requests()`` shows both, and
the listing omits the payloads of a request sent with ``X-Fal-Store-IO: 0``.

Submit counters: ``stats()["submits_by_input"]`` maps sha256 hex of the canonical JSON of
each submitted body (``fal_protocol.queue.payload_fingerprint``: sorted keys, compact separators)
to the number of times it was enqueued, counting submits whose answer a fault lost;
``stats()["duplicate_submits"]`` is the number of inputs enqueued more than once;
``sim.submits_for(body)`` reads one count.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fal_protocol.queue import COMPLETED, IN_PROGRESS, IN_QUEUE, payload_fingerprint
from falsim.faults import FaultInjector
from falsim.files import FileStore, start_image
from falsim.schema import Route, validate_input
from falsim.webhooks import WebhookSender, completion_body

CONTENT_POLICY_DETAIL = [
    {
        "loc": ["body", "prompt"],
        "msg": "The content could not be processed because it contained material flagged by a content checker.",
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
    }
]


@dataclass(eq=False)
class Failure:
    status_code: int
    body: dict
    message: str
    error_type: str
    headers: dict = field(default_factory=dict)


def content_policy_failure() -> Failure:
    # fal's status reports model errors generically; the specific type is in the result body.
    return Failure(422, {"detail": CONTENT_POLICY_DETAIL}, "Invalid status code: 422", "validation_error",
                   {"X-Fal-Retryable": "false"})


def cancel_failure() -> Failure:
    return Failure(400, {"detail": "Request was cancelled"}, "Request was cancelled", "request_cancelled")


def start_timeout_failure() -> Failure:
    return Failure(
        504,
        {"detail": "Request timed out", "error_type": "request_timeout"},
        "Invalid status code: 504",
        "request_timeout",
        {"X-Fal-Error-Type": "request_timeout", "X-Fal-Request-Timeout-Type": "user"},
    )


def internal_failure(exc: BaseException) -> Failure:
    return Failure(500, {"detail": f"Internal error: {exc}"}, "Invalid status code: 500", "internal_error")


@dataclass(eq=False)
class SimRequest:
    id: str
    route: Route  # the model id it was sent to, and that id's catalog endpoint
    input: object
    params: dict
    webhook_url: str | None
    base_url: str
    submitted_at: float
    start_deadline: float | None = None
    forced_failure: bool = False
    forget_after: bool = False
    slow: bool = False
    status: str = IN_QUEUE
    started_at: float | None = None
    completed_at: float | None = None
    canceled: bool = False
    lost: bool = False
    logs: list = field(default_factory=list)
    video: dict | None = None  # facts + file token of the rendered output
    failure: Failure | None = None
    inference_time: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    webhook_attempts: int = 0
    webhook_delivered_at: float | None = None
    webhook_error: str | None = None
    image_source: str = ""  # image-to-video: "data_uri", "uploaded" (this simulator's /files/) or "url"
    image: bytes | None = None  # the start image, once loaded
    end_image_source: str = ""  # the same for the end image (LTX-2.3 image-to-video's end_image_url)
    end_image: bytes | None = None
    store_io: bool = True  # False when sent with X-Fal-Store-IO: 0 (the listing shows no payloads)
    fallbacks_disabled: bool = False  # sent with x-fal-disable-fallbacks: true
    # Bumped, and its streams woken, when what its status answer shows changes (its own state or,
    # while queued, its place); `changed` shares the engine's lock (Engine.submit sets it).
    version: int = 0
    changed: threading.Condition | None = None


def request_urls(req: SimRequest, base_url: str) -> dict:
    root = f"{base_url}/{req.route.app}/requests/{req.id}"
    return {"response_url": root, "status_url": root + "/status", "cancel_url": root + "/cancel"}


def request_output(req: SimRequest, base_url: str) -> dict:
    """The result of a request that rendered its video, as fal's result call answers it."""
    video = req.video
    assert video is not None, "only a rendered request has an output"
    return {
        "video": {
            "url": f"{base_url}/files/{video['token']}/{quote(video['file_name'])}",
            "content_type": "video/mp4",
            "file_name": video["file_name"],
            "file_size": video["file_size"],
            "width": video["width"],
            "height": video["height"],
            "fps": float(video["fps"]),
            "duration": float(video["duration"]),
            "num_frames": video["num_frames"],
        }
    }


def describe(req: SimRequest) -> dict:
    """A request as ``FalSimulator.requests()`` and ``GET /_sim/requests`` show it."""
    return {
        "request_id": req.id,
        "model_id": req.route.model_id,
        "input": req.input,
        "status": req.status,
        "submitted_at": req.submitted_at,
        "started_at": req.started_at,
        "completed_at": req.completed_at,
        "canceled": req.canceled,
        "webhook_url": req.webhook_url,
        "lost": req.lost,
        "error_type": req.failure.error_type if req.failure else None,
        "webhook_attempts": req.webhook_attempts,
        "webhook_delivered_at": req.webhook_delivered_at,
        "store_io": req.store_io,
        "fallbacks_disabled": req.fallbacks_disabled,
    }


def listing_record(req: SimRequest) -> dict:
    """A request as fal's request listing knows it (the fields falsim/listing.py reads)."""
    return {
        "request_id": req.id, "endpoint_id": req.route.model_id, "sent_at": req.submitted_at,
        "started_at": req.started_at, "ended_at": req.completed_at,
        "status_code": None if req.status != COMPLETED else (req.failure.status_code if req.failure else 200),
        "json_input": req.input, "json_output": request_output(req, req.base_url)
        if req.status == COMPLETED and req.failure is None and req.video else None,
        "store_io": req.store_io,
    }


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Engine:
    """The requests and their FIFO queue under one lock: submit, status, result, cancel, completion.

    Runners take requests with ``next_request`` and end them with ``finish``; status streams wait
    with ``wait_for_change`` on their own request, so a change wakes only the streams it concerns
    (a thousand open streams are not all woken by every log line). ``count`` adds to the
    simulator's call counters (``stats()``).
    """

    def __init__(self, stopping: threading.Event, injector: FaultInjector, files: FileStore,
                 webhooks: WebhookSender) -> None:
        self._stopping = stopping
        self._injector = injector
        self._files = files
        self._webhooks = webhooks
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # runners wait for queued requests
        self._requests: dict[str, SimRequest] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()
        # payload_fingerprint -> accepted submits
        self._submits_by_input: collections.Counter[str] = collections.Counter()
        self._in_progress = 0

    # -- introspection --

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def stats(self, faults_fired: dict[str, int]) -> dict:
        """``FalSimulator.stats()``: the counters read at once, with the fault counts given."""
        with self._lock:
            return {
                "submits": self._counts["submits"],
                "status_calls": self._counts["status_calls"],
                "result_calls": self._counts["result_calls"],
                "cancel_calls": self._counts["cancel_calls"],
                "completed": self._counts["completed"],
                "in_queue": len(self._queue),
                "in_progress": self._in_progress,
                "renders": self._counts["renders"],
                "webhooks_delivered": self._counts["webhooks_delivered"],
                "webhooks_failed": self._counts["webhooks_failed"],
                "image_data_uri": self._counts["image_data_uri"],
                "image_uploaded": self._counts["image_uploaded"],
                "image_url": self._counts["image_url"],
                "listing_calls": self._counts["listing_calls"],
                "locked_refusals": self._counts["locked_refusals"],
                "retired_refusals": self._counts["retired_refusals"],
                "faults": faults_fired,
                "submits_by_input": dict(self._submits_by_input),
                "duplicate_submits": sum(1 for n in self._submits_by_input.values() if n > 1),
            }

    def submits_for(self, input_value: Any) -> int:
        with self._lock:
            return self._submits_by_input[payload_fingerprint(input_value)]

    def describe_all(self) -> list[dict]:
        with self._lock:
            return [describe(req) for req in self._requests.values()]

    def completed_at(self, request_id: str) -> float | None:
        with self._lock:
            req = self._requests.get(request_id)
            return req.completed_at if req else None

    def listing_records(self) -> list[dict]:
        """Every request as fal's request listing knows it (falsim/listing.py), lost ones included."""
        with self._lock:
            return [listing_record(req) for req in self._requests.values()]

    # -- queue operations (called by the HTTP handler) --

    def submit(self, route: Route, body: Any, webhook_url: str | None, base_url: str, start_timeout: float | None,
               *, store_io: bool = True,
               fallbacks_disabled: bool = False) -> tuple[int, dict[str, Any], SimRequest | None]:
        """Validate and enqueue. Returns (http_status, payload, request or None)."""
        params, errors = validate_input(route.endpoint, body)
        if errors:
            return 422, {"detail": errors}, None
        assert params is not None  # valid input, so normalised params
        prompt = params["prompt"].lower()
        now = time.time()
        req = SimRequest(
            id=str(uuid.uuid4()),
            route=route,
            input=body,
            params=params,
            webhook_url=webhook_url,
            base_url=base_url,
            submitted_at=now,
            start_deadline=now + start_timeout if start_timeout else None,
            forced_failure="[sim:422]" in prompt or self._injector.roll("result_422"),
            forget_after="[sim:lost]" in prompt or self._injector.roll("lost"),
            slow="[sim:slow]" in prompt,
            store_io=store_io,
            fallbacks_disabled=fallbacks_disabled,
        )
        image_url = params.get("image_url")
        if isinstance(image_url, str):
            req.image_source, req.image = start_image(image_url, self._files)
            self.count(f"image_{req.image_source}")  # the counters are the start image's form
        end_image_url = params.get("end_image_url")
        if isinstance(end_image_url, str):
            req.end_image_source, req.end_image = start_image(end_image_url, self._files)
        with self._lock:
            position = len(self._queue)
            req.changed = threading.Condition(self._lock)
            self._requests[req.id] = req
            self._submits_by_input[payload_fingerprint(body)] += 1
            self._queue.append(req.id)
            self._work.notify()
        payload = {"status": IN_QUEUE, "request_id": req.id, **request_urls(req, base_url), "queue_position": position}
        return 200, payload, req

    def lookup(self, request_id: str) -> SimRequest | None:
        """The request as a client may see it: None when unknown or lost."""
        with self._lock:
            req = self._requests.get(request_id)
            if req is None or req.lost:
                return None
            self._expire_if_overdue(req)
            return req

    def status_payload(self, req: SimRequest, base_url: str, with_logs: bool) -> dict:
        with self._lock:
            body = {"status": req.status, "request_id": req.id, **request_urls(req, base_url)}
            if req.status == IN_QUEUE:
                body["queue_position"] = self._queue.index(req.id)
            else:
                body["logs"] = list(req.logs) if with_logs else None
            if req.status == COMPLETED:
                body["metrics"] = {"inference_time": req.inference_time}
                if req.failure is not None:
                    body["error"] = req.failure.message
                    body["error_type"] = req.failure.error_type
            return body

    def result(self, req: SimRequest, base_url: str) -> tuple[int, Any, dict[str, str]]:
        """Returns (http_status, payload, extra headers)."""
        with self._lock:
            if req.status != COMPLETED:
                return 400, {"detail": "Request is still in progress"}, {}
            if req.failure is not None:
                return req.failure.status_code, req.failure.body, dict(req.failure.headers)
            return 200, request_output(req, base_url), {}

    def cancel(self, request_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            req = self._requests.get(request_id)
            if req is None or req.lost:
                return 404, {"status": "NOT_FOUND"}
            self._expire_if_overdue(req)
            if req.status == COMPLETED:
                return 400, {"status": "ALREADY_COMPLETED"}
            req.canceled = True
            req.cancel_event.set()
            if req.status == IN_QUEUE:
                self._queue.remove(req.id)
                self._complete_locked(req, failure=cancel_failure())
                self._queue_moved_locked()
            return 202, {"status": "CANCELLATION_REQUESTED"}

    def wait_for_change(self, req: SimRequest, version: int, timeout: float) -> int:
        """Block until ``req`` changes after ``version`` (or timeout); returns its new version."""
        with self._lock:
            if req.version == version and not self._stopping.is_set():
                assert req.changed is not None  # set when it was submitted
                req.changed.wait(timeout)
            return req.version

    def current_version(self, req: SimRequest) -> int:
        with self._lock:
            return req.version

    def wake_all(self) -> None:
        """On stop: runners and status streams stop waiting."""
        with self._lock:
            self._work.notify_all()
            for req in self._requests.values():
                if req.changed is not None:
                    req.changed.notify_all()

    # -- runners' side --

    def next_request(self) -> SimRequest | None:
        """Block until a queued request can start and mark it IN_PROGRESS; None once stopping."""
        with self._lock:
            while True:
                while not self._queue and not self._stopping.is_set():
                    self._work.wait()
                if self._stopping.is_set():
                    return None
                req = self._requests[self._queue.popleft()]
                if self._expire_if_overdue(req):
                    continue
                req.status = IN_PROGRESS
                req.started_at = time.time()
                self._in_progress += 1
                self._touch_locked(req)
                self._queue_moved_locked()
                return req

    def finish(self, req: SimRequest, failure: Failure | None, video: dict | None = None) -> None:
        """Complete ``req``: with its rendered ``video``, or with ``failure``."""
        with self._lock:
            if video is not None:
                req.video = video
            self._complete_locked(req, failure=failure)

    def log(self, req: SimRequest, message: str, level: str = "INFO") -> None:
        with self._lock:
            req.logs.append({"message": message, "level": level, "source": "USER", "timestamp": _iso_now()})
            self._touch_locked(req)

    def record_webhook(self, request_id: str, ok: bool, final: bool, error: str | None) -> None:
        with self._lock:
            req = self._requests.get(request_id)
            if req is not None:
                req.webhook_attempts += 1
                if ok:
                    req.webhook_delivered_at = time.time()
                req.webhook_error = error
            if ok:
                self._counts["webhooks_delivered"] += 1
            elif final:
                self._counts["webhooks_failed"] += 1

    # -- internals (lock held) --

    def _touch_locked(self, req: SimRequest) -> None:
        self._counts["version"] += 1
        req.version += 1
        if req.changed is not None:
            req.changed.notify_all()

    def _queue_moved_locked(self) -> None:
        """Every queued request's place changed (one ahead of it left the queue)."""
        for request_id in self._queue:
            self._touch_locked(self._requests[request_id])

    def _expire_if_overdue(self, req: SimRequest) -> bool:
        """Apply the client's start timeout to a request still queued."""
        if req.status != IN_QUEUE or req.start_deadline is None or time.time() < req.start_deadline:
            return False
        try:
            self._queue.remove(req.id)
        except ValueError:
            pass
        self._complete_locked(req, failure=start_timeout_failure())
        self._queue_moved_locked()
        return True

    def _complete_locked(self, req: SimRequest, *, failure: Failure | None = None) -> None:
        if req.status == COMPLETED:
            return
        now = time.time()
        if req.status == IN_PROGRESS:
            self._in_progress -= 1
            assert req.started_at is not None  # set when it went IN_PROGRESS
            req.inference_time = round(now - req.started_at, 3)
        req.status = COMPLETED
        req.completed_at = now
        req.failure = failure
        self._counts["completed"] += 1
        if req.forget_after:
            req.lost = True
        self._touch_locked(req)
        if req.webhook_url and not req.lost:
            output = request_output(req, req.base_url) if failure is None else None
            self._webhooks.enqueue(req.id, req.webhook_url, completion_body(req.id, failure, output))
