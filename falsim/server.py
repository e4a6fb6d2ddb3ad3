"""A local fal.ai-compatible simulator: queue, storage upload, CDN and signed webhooks.

It speaks fal's queue protocol (``queue.fal.run``), fal's storage upload flow
(``rest.fal.ai``) and serves files like fal's CDN, so a fal client can only tell it from
fal by its host. Everything lives in memory plus a scratch folder (``workdir``).

Python API::

    sim = FalSimulator(host="127.0.0.1", port=0, key="k", runners=2, run_seconds=0.5,
                       scale=8, cache_renders=False, faults=None, seed=0, workdir=None)
    sim.start(); sim.url; sim.stats(); sim.requests(); sim.completed_at(rid); sim.stop()
    sim.set_faults({"reset": 0.1}, latency_seconds=1.0); sim.faults; sim.fault_settings()
    sim.submits_for(input_dict)
    with FalSimulator(...) as sim: ...

Routes (``{app}`` is ``owner/app``, e.g. ``fal-ai/ltx-2``; the full model id is also
accepted in its place):

    POST /{model_id}[?fal_webhook=URL]             submit (Key auth)
    GET  /{app}/requests/{id}/status[?logs=1]      202 IN_QUEUE/IN_PROGRESS, 200 COMPLETED
    GET  /{app}/requests/{id}/status/stream        server-sent events until COMPLETED
    GET  /{app}/requests/{id}                      result (400 while not completed)
    PUT  /{app}/requests/{id}/cancel               202 / 400 ALREADY_COMPLETED / 404
    POST /storage/upload/initiate?storage_type=fal-cdn-v3|gcs   -> {upload_url, file_url}
    PUT  /storage/upload/put/{token}?signature=... raw bytes (no auth; signed URL)
    POST /storage/auth/token?storage_type=fal-cdn-v3            -> {token, token_type, base_url, expires_at}
    POST /files/upload                             raw bytes, Bearer token -> {access_url}
    GET|HEAD /files/{token}/{file_name}            CDN-style file serving with Range (no auth)
    GET  /.well-known/jwks.json                    the webhook signing key (Ed25519 JWKS)
    GET  /v1/models/requests/by-endpoint?endpoint_id=…   fal's request listing (Key auth; falsim/listing.py)
    GET  /_sim/stats, /_sim/requests               introspection (no auth)
    GET|PUT /_sim/faults                           read / switch faults at runtime (no auth)

Models: ``fal-ai/ltx-2/text-to-video[/fast]``, ``fal-ai/ltx-2/image-to-video[/fast]`` and
the aliases ``fal-ai/ltxv-2/text-to-video``, ``fal-ai/ltxv-2/image-to-video``.

Timing: ``runners`` requests run at once, the rest wait IN_QUEUE in FIFO order; a request
stays IN_PROGRESS at least ``run_seconds`` (its MP4 is rendered meanwhile, at 1/``scale``
of the requested resolution; fps, duration and frame count are always exact). With
``run_seconds_max``, each request's run time is drawn from [run_seconds, run_seconds_max] (seeded).

Faults (``faults`` dict, each a probability 0..1 drawn from ``random.Random(seed)``; a fault
at 0 never fires and draws nothing, so adding one leaves the others' draws as they were).
"Queue call" = submit, status (and status stream), result, cancel, after the Key check; a
queue call meets ``latency``, ``reset``, ``429``, ``5xx`` in that order, then its route's own.
    latency         the call waits ``latency_seconds`` (default 0.5) before being handled
    reset           the request is read, then the connection is dropped with a TCP RST
                    (SO_LINGER 0) and no answer; nothing was done (a submit is not enqueued,
                    a cancel not applied)
    429             the call answers 429 {"detail": "Too many requests"} with ``Retry-After: 1``
    5xx             the call answers 503: submit as submit_5xx, the others as status_5xx
    submit_5xx      submit answers 503 runner_scheduling_failure (X-Fal-Error-Type); not enqueued
    submit_reset_after_accept
                    submit enqueues the request, then resets the connection (RST) instead of
                    answering: the ambiguous case, fast
    submit_timeout  submit enqueues the request, then waits ``fault_delay`` s (default 35)
                    before answering: the ambiguous case, as a client read timeout
    status_5xx      a status call on a known request answers 503 runner_disconnected
    result_5xx      a result call on a known request answers 503 runner_disconnected
    result_422      (drawn at submit) the request runs, reports COMPLETED, and its result is
                    a 422 content_policy_violation error
    lost            (drawn at submit) the request vanishes once completed: status, result and
                    cancel answer 404, and no webhook is sent
    download_truncated  a ``GET /files/...`` download announces the full Content-Length,
                    sends the first half of the bytes and closes the connection
    download_slow   a ``GET /files/...`` download is throttled to ``download_rate_bytes`` per
                    second (default 256 KiB/s): N bytes take at least N/rate seconds
    listing_5xx     a request listing call answers 503 (after ``latency``; the queue faults do not
                    apply to fal's platform API)
Two settings are states rather than probabilities:
    locked          "" (default) or the reason of an account lock, e.g. "Exhausted balance",
                    "TOP_UP" or "Admin lock": while set, submits, storage upload initiates, upload
                    tokens and the request listing answer 403 ``{"detail": "User is locked. Reason:
                    <reason>."}`` as fal does; status, result, cancel and files keep answering
    listing_lag_seconds  a request appears in the listing this long after it was sent (default 0)
Every firing is counted in ``stats()["faults"]`` (name -> count). ``set_faults(faults, **settings)``
and ``PUT /_sim/faults`` (body ``{"faults": {...}, "latency_seconds": S, "download_rate_bytes": N,
"fault_delay": S}``, every key optional; 400 naming the field on bad input) switch them for
the next call: a given ``faults`` replaces every probability (names left out become 0).

Submit headers: each request records whether it came with ``x-fal-disable-fallbacks: true`` and
whether fal may keep its payloads (``X-Fal-Store-IO``, default yes): ``requests()`` shows both, and
the listing omits the payloads of a request sent with ``X-Fal-Store-IO: 0``.

Submit counters: ``stats()["submits_by_input"]`` maps sha256 hex of the canonical JSON of
each submitted body (``fal_protocol.queue.payload_fingerprint``: sorted keys, compact separators) to the number of times
it was enqueued, counting submits whose answer a fault lost; ``stats()["duplicate_submits"]``
is the number of inputs enqueued more than once; ``sim.submits_for(body)`` reads one count.

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

Webhooks: on completion, ``fal_webhook`` receives fal's body, signed as fal does
(Ed25519 over ``request_id\\nuser_id\\ntimestamp\\nsha256hex(body)``) with the simulator's
own key, published at ``/.well-known/jwks.json``. Failed deliveries are retried with
exponential backoff in background threads.

No Django imports here: the simulator runs inside or outside Django.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import hmac
import heapq
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from falsim.listing import listing_answer
from falsim.render import RenderCancelled, output_size, render_video
from fal_protocol import signature as fal_signature
from fal_protocol.queue import COMPLETED, IN_PROGRESS, IN_QUEUE, payload_fingerprint

__all__ = ["FalSimulator", "MODELS", "FAULT_NAMES", "FAULT_SETTINGS", "add_cli_arguments",
           "simulator_from_args", "main"]

# --- models and input validation -------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    model_id: str
    app: str  # owner/app, used in status/result/cancel URLs
    fast: bool
    image_to_video: bool


MODELS = {
    m.model_id: m
    for m in (
        Model("fal-ai/ltx-2/text-to-video", "fal-ai/ltx-2", False, False),
        Model("fal-ai/ltx-2/text-to-video/fast", "fal-ai/ltx-2", True, False),
        Model("fal-ai/ltx-2/image-to-video", "fal-ai/ltx-2", False, True),
        Model("fal-ai/ltx-2/image-to-video/fast", "fal-ai/ltx-2", True, True),
        Model("fal-ai/ltxv-2/text-to-video", "fal-ai/ltxv-2", False, False),
        Model("fal-ai/ltxv-2/image-to-video", "fal-ai/ltxv-2", False, True),
    )
}
# Prefixes accepted before /requests/: owner/app and the full model ids.
KNOWN_PREFIXES = {m.app for m in MODELS.values()} | set(MODELS)

RESOLUTIONS = {"1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160)}
PRO_DURATIONS = ("6", "8", "10")
FAST_DURATIONS = PRO_DURATIONS + tuple(str(n) for n in range(12, 21, 2))
FPS_VALUES = ("25", "50")
PROMPT_MAX_CHARS = 2500

FAULT_NAMES = (
    "submit_5xx", "submit_timeout", "status_5xx", "result_5xx", "result_422", "lost", "429",
    "5xx", "reset", "submit_reset_after_accept", "latency", "download_truncated", "download_slow", "listing_5xx",
)
# Settings of the faults (not probabilities), changeable at runtime with the probabilities.
FAULT_SETTINGS = ("latency_seconds", "download_rate_bytes", "fault_delay", "listing_lag_seconds", "locked")
LOCK_REASON_MAX_CHARS = 200


def _checked_faults(faults) -> dict[str, float]:
    """Validate a {fault name: probability} mapping; raises ValueError naming the field."""
    if not isinstance(faults, dict):
        raise ValueError(f"faults must be an object of fault name -> probability; allowed names: {', '.join(FAULT_NAMES)}")
    checked = {}
    for name, value in faults.items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; allowed: {', '.join(FAULT_NAMES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"fault {name!r} must be a probability from 0 to 1, got {value!r}")
        checked[name] = float(value)
    return checked


def _checked_setting(name: str, value) -> float | int | str:
    """Validate one of FAULT_SETTINGS; raises ValueError naming the field and the allowed values."""
    if name not in FAULT_SETTINGS:
        raise ValueError(f"unknown setting {name!r}; allowed: {', '.join(FAULT_SETTINGS)}")
    if name == "locked":
        if not isinstance(value, str) or len(value) > LOCK_REASON_MAX_CHARS:
            raise ValueError(f'locked must be "" (not locked) or the lock\'s reason, at most '
                             f"{LOCK_REASON_MAX_CHARS} characters, got {value!r}")
        return value.strip()
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if name == "download_rate_bytes":
        if not (number and float(value).is_integer() and value >= 1):
            raise ValueError(f"download_rate_bytes must be a whole number of bytes per second >= 1, got {value!r}")
        return int(value)
    if not (number and 0.0 <= value < float("inf")):
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


USER_ID = "falsim-user"
MAX_JSON_BODY = 32 * 1024 * 1024


def _enum_msg(values) -> str:
    quoted = [f"'{v}'" for v in values]
    return "Input should be " + (", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0])


def _error(field_name, msg, type_, value=None) -> dict:
    loc = ["body", field_name] if field_name is not None else ["body"]
    entry = {"loc": loc, "msg": msg, "type": type_}
    if value is not None:
        entry["input"] = value
    return entry


def _as_enum_string(value):
    """fal's schema uses string enums; ints are accepted too (but not bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return None


def _as_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return None


def validate_input(model: Model, body) -> tuple[dict | None, list[dict]]:
    """Validate an LTX-2 input like fal does. Returns (normalised params, errors)."""
    if not isinstance(body, dict):
        return None, [
            _error(None, "Input should be a valid dictionary or object to extract fields from", "model_attributes_type")
        ]
    errors = []
    prompt = body.get("prompt")
    if "prompt" not in body:
        errors.append(_error("prompt", "Field required", "missing"))
    elif not isinstance(prompt, str):
        errors.append(_error("prompt", "Input should be a valid string", "string_type", prompt))
    elif not prompt.strip():
        errors.append(_error("prompt", "String should have at least 1 character", "string_too_short", prompt))
    elif len(prompt) > PROMPT_MAX_CHARS:
        errors.append(
            _error("prompt", f"String should have at most {PROMPT_MAX_CHARS} characters", "string_too_long")
        )

    allowed_durations = FAST_DURATIONS if model.fast else PRO_DURATIONS
    duration = _as_enum_string(body.get("duration", "6"))
    if duration not in allowed_durations:
        errors.append(_error("duration", _enum_msg(allowed_durations), "enum", body.get("duration")))

    resolution = body.get("resolution", "1080p")
    resolution_ok = isinstance(resolution, str) and resolution in RESOLUTIONS
    if not resolution_ok:
        errors.append(_error("resolution", _enum_msg(RESOLUTIONS), "enum", resolution))

    fps = _as_enum_string(body.get("fps", "25"))
    if fps not in FPS_VALUES:
        errors.append(_error("fps", _enum_msg(FPS_VALUES), "enum", body.get("fps")))

    generate_audio = _as_bool(body.get("generate_audio", True))
    if generate_audio is None:
        errors.append(_error("generate_audio", "Input should be a valid boolean", "bool_type", body.get("generate_audio")))

    aspect_ratio = body.get("aspect_ratio", "16:9")
    if aspect_ratio != "16:9":
        errors.append(_error("aspect_ratio", "Input should be '16:9'", "literal_error", aspect_ratio))

    image_url = body.get("image_url")
    if model.image_to_video:
        if "image_url" not in body or image_url is None:
            errors.append(_error("image_url", "Field required", "missing"))
        elif not isinstance(image_url, str):
            errors.append(_error("image_url", "Input should be a valid string", "string_type", image_url))
        elif not re.match(r"^(data:image/[\w.+-]+(;[\w=.+-]+)*,|https?://\S+$)", image_url):
            errors.append(
                _error("image_url", "Input should be a valid URL or a data URI of an image", "url_parsing")
            )

    if model.fast and duration in allowed_durations and int(duration) > 10:
        # fal: Fast durations above 10 s are only offered at 25 fps and 1080p.
        if fps in FPS_VALUES and fps != "25":
            errors.append(_error("fps", "Durations longer than 10 seconds require 25 fps", "value_error", body.get("fps")))
        if resolution_ok and resolution != "1080p":
            errors.append(
                _error("resolution", "Durations longer than 10 seconds require 1080p", "value_error", resolution)
            )

    if errors:
        return None, errors
    params = {
        "prompt": prompt,
        "duration": int(duration),
        "resolution": resolution,
        "fps": int(fps),
        "generate_audio": generate_audio,
        "aspect_ratio": aspect_ratio,
    }
    if model.image_to_video:
        params["image_url"] = image_url
    return params, []


# --- request state ----------------------------------------------------------------------------

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


def _content_policy_failure() -> Failure:
    # fal's status reports model errors generically; the specific type is in the result body.
    return Failure(422, {"detail": CONTENT_POLICY_DETAIL}, "Invalid status code: 422", "validation_error",
                   {"X-Fal-Retryable": "false"})


def _cancel_failure() -> Failure:
    return Failure(400, {"detail": "Request was cancelled"}, "Request was cancelled", "request_cancelled")


def _start_timeout_failure() -> Failure:
    return Failure(
        504,
        {"detail": "Request timed out", "error_type": "request_timeout"},
        "Invalid status code: 504",
        "request_timeout",
        {"X-Fal-Error-Type": "request_timeout", "X-Fal-Request-Timeout-Type": "user"},
    )


def _internal_failure(exc: BaseException) -> Failure:
    return Failure(500, {"detail": f"Internal error: {exc}"}, "Invalid status code: 500", "internal_error")


@dataclass(eq=False)
class SimRequest:
    id: str
    model: Model
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
    store_io: bool = True  # False when sent with X-Fal-Store-IO: 0 (the listing shows no payloads)
    fallbacks_disabled: bool = False  # sent with x-fal-disable-fallbacks: true


@dataclass(eq=False)
class StoredFile:
    path: str
    content_type: str
    file_name: str


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the simulator ----------------------------------------------------------------------------


class FalSimulator:
    """A fal-compatible queue + storage + CDN on a local port. See the module docstring.

    The first ten parameters mirror the command line: ``port=0`` picks a free port (read
    ``url``/``port`` after ``start()``); ``faults`` maps FAULT_NAMES to probabilities;
    ``workdir`` defaults to a temporary folder that ``stop()`` removes. Keyword-only:
    ``fault_delay`` (how long a submit_timeout submit stalls), ``keepalive_interval`` (SSE
    comment interval), ``webhook_max_attempts``, ``webhook_backoff`` (first retry delay,
    doubling), ``webhook_timeout`` (per attempt), ``webhook_threads`` (deliveries in parallel; fal's
    own are many), ``verbose`` (log HTTP requests to stderr).
    A simulator runs once: after ``stop()``, create a new one.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = "falsim-local-key",
        runners: int = 2,
        run_seconds: float = 3.0,
        scale: int = 1,
        cache_renders: bool = False,
        faults: dict | None = None,
        seed: int = 0,
        workdir: str | None = None,
        *,
        fault_delay: float = 35.0,
        latency_seconds: float = 0.5,
        download_rate_bytes: int = 256 * 1024,
        keepalive_interval: float = 15.0,
        webhook_max_attempts: int = 5,
        webhook_backoff: float = 0.5,
        webhook_timeout: float = 10.0,
        webhook_threads: int = 4,
        verbose: bool = False,
        run_seconds_max: float | None = None,
        listing_lag_seconds: float = 0.0,
        locked: str = "",
    ):
        if runners < 1:
            raise ValueError("runners must be >= 1")
        if scale < 1:
            raise ValueError("scale must be >= 1")
        faults = _checked_faults(dict(faults or {}))
        fault_settings = {name: _checked_setting(name, value) for name, value in
                          (("fault_delay", fault_delay), ("latency_seconds", latency_seconds),
                           ("download_rate_bytes", download_rate_bytes),
                           ("listing_lag_seconds", listing_lag_seconds), ("locked", locked))}
        self.host = host
        self.port = port
        self.key = key
        self.runners = int(runners)
        self.run_seconds = float(run_seconds)
        self.run_seconds_max = max(float(run_seconds_max), self.run_seconds) if run_seconds_max is not None else None
        self.scale = int(scale)
        self.cache_renders = bool(cache_renders)
        self.faults = {name: float(faults.get(name, 0.0)) for name in FAULT_NAMES}
        self.seed = seed
        self.fault_delay = fault_settings["fault_delay"]
        self.latency_seconds = fault_settings["latency_seconds"]
        self.download_rate_bytes = fault_settings["download_rate_bytes"]
        self.listing_lag_seconds = fault_settings["listing_lag_seconds"]
        self.locked = fault_settings["locked"]
        self.keepalive_interval = float(keepalive_interval)
        self.verbose = verbose

        self._own_workdir = workdir is None
        self.workdir = workdir
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # runners wait for queued requests
        self._changed = threading.Condition(self._lock)  # status streams wait for changes
        self._stopping = threading.Event()
        self._requests: dict[str, SimRequest] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._counts = collections.Counter()
        self._fault_counts = collections.Counter()  # fault name -> times it fired
        self._submits_by_input = collections.Counter()  # payload_fingerprint -> accepted submits
        self._in_progress = 0
        self._files: dict[str, StoredFile] = {}
        self._pending_uploads: dict[str, StoredFile] = {}
        self._cdn_tokens: dict[str, float] = {}
        self._render_cache: dict[tuple, _CacheEntry] = {}
        self._upload_secret = secrets.token_bytes(32)

        self._signing_key = Ed25519PrivateKey.generate()
        self._jwks = {"keys": [fal_signature.public_jwk(self._signing_key.public_key())]}
        self._webhooks = _WebhookSender(self, webhook_max_attempts, webhook_backoff, webhook_timeout,
                                        threads=webhook_threads)
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle --

    def start(self) -> "FalSimulator":
        if self._httpd is not None:
            return self
        httpd = _Server((self.host, self.port), _Handler)  # bind first: a busy port leaves nothing behind
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="falsim-")
        os.makedirs(os.path.join(self.workdir, "renders"), exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "uploads"), exist_ok=True)
        self._httpd = httpd
        self._httpd.sim = self
        self.port = self._httpd.server_address[1]
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                 name="falsim-http", daemon=True)
        serve.start()
        self._threads.append(serve)
        for n in range(self.runners):
            runner = threading.Thread(target=self._runner_loop, name=f"falsim-runner-{n}", daemon=True)
            runner.start()
            self._threads.append(runner)
        self._webhooks.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        with self._lock:
            self._work.notify_all()
            self._changed.notify_all()
        self._httpd.shutdown()
        self._httpd.close_all_connections()
        self._httpd.server_close()
        self._webhooks.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._httpd = None
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "FalSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block until Ctrl-C or SIGTERM (main thread only), then stop."""
        self.start()
        if threading.current_thread() is threading.main_thread():
            # SIGINT is set explicitly because shells start background jobs with it ignored;
            # SIGTERM (process managers) must also remove the scratch folder.
            signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # -- introspection --

    def stats(self) -> dict:
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
                "faults": {name: self._fault_counts[name] for name in FAULT_NAMES},
                "submits_by_input": dict(self._submits_by_input),
                "duplicate_submits": sum(1 for n in self._submits_by_input.values() if n > 1),
            }

    def submits_for(self, input_value) -> int:
        """Accepted submits of exactly this input (as sent: the JSON body), including those whose
        answer a fault lost (submit_timeout, submit_reset_after_accept)."""
        with self._lock:
            return self._submits_by_input[payload_fingerprint(input_value)]

    def requests(self) -> list[dict]:
        with self._lock:
            return [self._describe(req) for req in self._requests.values()]

    def completed_at(self, request_id: str) -> float | None:
        with self._lock:
            req = self._requests.get(request_id)
            return req.completed_at if req else None

    def jwks(self) -> dict:
        return json.loads(json.dumps(self._jwks))

    def _describe(self, req: SimRequest) -> dict:
        return {
            "request_id": req.id,
            "model_id": req.model.model_id,
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

    def listing_records(self) -> list[dict]:
        """Every request as fal's request listing knows it (falsim/listing.py), lost ones included."""
        with self._lock:
            return [{
                "request_id": req.id, "endpoint_id": req.model.model_id, "sent_at": req.submitted_at,
                "started_at": req.started_at, "ended_at": req.completed_at,
                "status_code": None if req.status != COMPLETED else (req.failure.status_code if req.failure else 200),
                "json_input": req.input, "json_output": self._output(req, req.base_url)
                if req.status == COMPLETED and req.failure is None and req.video else None,
                "store_io": req.store_io,
            } for req in self._requests.values()]

    # -- faults --

    def set_faults(self, faults: dict | None = None, **settings) -> dict:
        """Switch faults at runtime; the next call sees the change.

        ``faults`` replaces every probability (names left out become 0); None keeps them.
        ``settings`` are any of FAULT_SETTINGS (``latency_seconds``, ``download_rate_bytes``,
        ``fault_delay``); those not given keep their value. Everything is validated before
        anything changes: an unknown name or an out-of-range value raises ValueError naming
        the field and the allowed values. Returns ``fault_settings()``.
        """
        checked = _checked_faults(faults) if faults is not None else None
        values = {name: _checked_setting(name, value) for name, value in settings.items()}
        with self._lock:
            if checked is not None:
                # In place: callers holding ``sim.faults`` keep seeing the live values.
                self.faults.update({name: checked.get(name, 0.0) for name in FAULT_NAMES})
            for name, value in values.items():
                setattr(self, name, value)
        return self.fault_settings()

    def fault_settings(self) -> dict:
        """The fault probabilities and their settings, as ``GET /_sim/faults`` shows them."""
        with self._lock:
            return {"faults": dict(self.faults), **{name: getattr(self, name) for name in FAULT_SETTINGS}}

    def _roll(self, name: str) -> bool:
        probability = self.faults.get(name, 0.0)
        if probability <= 0.0:
            return False
        with self._lock:
            fired = self._rng.random() < probability
            if fired:
                self._fault_counts[name] += 1
            return fired

    # -- queue operations (called by the HTTP handler) --

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def submit(self, model: Model, body, webhook_url: str | None, base_url: str, start_timeout: float | None,
               *, store_io: bool = True, fallbacks_disabled: bool = False):
        """Validate and enqueue. Returns (http_status, payload, request or None)."""
        params, errors = validate_input(model, body)
        if errors:
            return 422, {"detail": errors}, None
        prompt = params["prompt"].lower()
        now = time.time()
        req = SimRequest(
            id=str(uuid.uuid4()),
            model=model,
            input=body,
            params=params,
            webhook_url=webhook_url,
            base_url=base_url,
            submitted_at=now,
            start_deadline=now + start_timeout if start_timeout else None,
            forced_failure="[sim:422]" in prompt or self._roll("result_422"),
            forget_after="[sim:lost]" in prompt or self._roll("lost"),
            slow="[sim:slow]" in prompt,
            store_io=store_io,
            fallbacks_disabled=fallbacks_disabled,
        )
        image_url = params.get("image_url")
        if isinstance(image_url, str):
            req.image_source, req.image = self._image_from(image_url)
            self._count(f"image_{req.image_source}")
        with self._lock:
            position = len(self._queue)
            self._requests[req.id] = req
            self._submits_by_input[payload_fingerprint(body)] += 1
            self._queue.append(req.id)
            self._work.notify()
            self._changed.notify_all()
        payload = {"status": IN_QUEUE, "request_id": req.id, **self._urls(req, base_url), "queue_position": position}
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
            return self._status_locked(req, base_url, with_logs)

    def _status_locked(self, req: SimRequest, base_url: str, with_logs: bool) -> dict:
        body = {"status": req.status, "request_id": req.id, **self._urls(req, base_url)}
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

    def result(self, req: SimRequest, base_url: str):
        """Returns (http_status, payload, extra headers)."""
        with self._lock:
            if req.status != COMPLETED:
                return 400, {"detail": "Request is still in progress"}, {}
            if req.failure is not None:
                return req.failure.status_code, req.failure.body, dict(req.failure.headers)
            return 200, self._output(req, base_url), {}

    def cancel(self, request_id: str):
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
                self._complete_locked(req, failure=_cancel_failure())
            return 202, {"status": "CANCELLATION_REQUESTED"}

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until state changes after ``version`` (or timeout); returns the new version."""
        with self._lock:
            if self._counts["version"] == version and not self._stopping.is_set():
                self._changed.wait(timeout)
            return self._counts["version"]

    def current_version(self) -> int:
        with self._lock:
            return self._counts["version"]

    def _urls(self, req: SimRequest, base_url: str) -> dict:
        root = f"{base_url}/{req.model.app}/requests/{req.id}"
        return {"response_url": root, "status_url": root + "/status", "cancel_url": root + "/cancel"}

    def _output(self, req: SimRequest, base_url: str) -> dict:
        video = req.video
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

    def _touch_locked(self) -> None:
        self._counts["version"] += 1
        self._changed.notify_all()

    def _expire_if_overdue(self, req: SimRequest) -> bool:
        """Apply the client's start timeout to a request still queued (lock held)."""
        if req.status != IN_QUEUE or req.start_deadline is None or time.time() < req.start_deadline:
            return False
        try:
            self._queue.remove(req.id)
        except ValueError:
            pass
        self._complete_locked(req, failure=_start_timeout_failure())
        return True

    def _complete_locked(self, req: SimRequest, *, failure: Failure | None = None) -> None:
        if req.status == COMPLETED:
            return
        now = time.time()
        if req.status == IN_PROGRESS:
            self._in_progress -= 1
            req.inference_time = round(now - req.started_at, 3)
        req.status = COMPLETED
        req.completed_at = now
        req.failure = failure
        self._counts["completed"] += 1
        if req.forget_after:
            req.lost = True
        self._touch_locked()
        if req.webhook_url and not req.lost:
            self._webhooks.enqueue(req.id, req.webhook_url, self._webhook_body(req))

    def _webhook_body(self, req: SimRequest) -> bytes:
        if req.failure is None:
            body = {"request_id": req.id, "gateway_request_id": req.id, "status": "OK",
                    "payload": self._output(req, req.base_url)}
        else:
            body = {"request_id": req.id, "gateway_request_id": req.id, "status": "ERROR",
                    "error": f"Invalid status code: {req.failure.status_code}", "payload": req.failure.body}
        return json.dumps(body).encode("utf-8")

    def _log(self, req: SimRequest, message: str, level: str = "INFO") -> None:
        with self._lock:
            req.logs.append({"message": message, "level": level, "source": "USER", "timestamp": _iso_now()})
            self._touch_locked()

    # -- runners --

    def _runner_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping.is_set():
                    self._work.wait()
                if self._stopping.is_set():
                    return
                req = self._requests[self._queue.popleft()]
                if self._expire_if_overdue(req):
                    continue
                req.status = IN_PROGRESS
                req.started_at = time.time()
                self._in_progress += 1
                self._touch_locked()
            try:
                self._run(req)
            except RenderCancelled:
                self._finish(req, _cancel_failure())
            except Exception as exc:  # a bug must not kill the runner
                traceback.print_exc()
                self._finish(req, _internal_failure(exc))

    def _finish(self, req: SimRequest, failure: Failure | None) -> None:
        with self._lock:
            self._complete_locked(req, failure=failure)

    def _stop_requested(self, req: SimRequest) -> bool:
        return req.cancel_event.is_set() or self._stopping.is_set()

    def _run(self, req: SimRequest) -> None:
        p = req.params
        width, height = output_size(*RESOLUTIONS[p["resolution"]], self.scale)
        num_frames = p["duration"] * p["fps"]
        planned = self._draw_run_seconds() * (3 if req.slow else 1)
        started = time.monotonic()
        progress = _ProgressLog(self, req, planned, num_frames, started)

        self._log(req, f"Loading model {req.model.model_id}")
        self._log(req, f"Generating {num_frames} frames at {width}x{height}, {p['fps']} fps"
                       + (" with audio" if p["generate_audio"] else ""))
        if req.forced_failure:
            # Fail part-way through, like a safety checker rejecting the prompt.
            self._wait_until(req, started + planned / 2, progress)
            if self._stop_requested(req):
                raise RenderCancelled()
            self._log(req, "Content checker flagged the input", "ERROR")
            self._finish(req, _content_policy_failure())
            return

        facts = self._render_for(req, width, height, progress)
        self._wait_until(req, started + planned, progress)
        if self._stop_requested(req):
            raise RenderCancelled()
        progress.update(1.0)
        self._log(req, "Encoding video")
        self._log(req, "Uploading video to CDN")
        with self._lock:
            req.video = facts
        self._finish(req, None)

    def _draw_run_seconds(self) -> float:
        if self.run_seconds_max is None:
            return self.run_seconds
        with self._lock:
            return self._rng.uniform(self.run_seconds, self.run_seconds_max)

    def _wait_until(self, req: SimRequest, deadline: float, progress: "_ProgressLog") -> None:
        while not self._stop_requested(req):
            now = time.monotonic()
            if now >= deadline:
                return
            progress.update(progress.time_fraction(now))
            # Wake at the next progress step rather than ticking, so 1000 runners stay cheap.
            req.cancel_event.wait(max(0.005, min(deadline, progress.next_step_time()) - now))

    def _image_from(self, image_url: str) -> tuple[str, bytes | None]:
        """Where a start image comes from, and its bytes when they are at hand (data URI, our own /files/)."""
        if image_url.startswith("data:"):
            try:
                return "data_uri", base64.b64decode(image_url.split(",", 1)[1], validate=False)
            except (ValueError, IndexError):
                return "data_uri", None
        match = re.match(r"^https?://[^/]+/files/([^/]+)/", image_url)
        if match:
            with self._lock:
                entry = self._files.get(match.group(1))
            if entry is not None:
                try:
                    with open(entry.path, "rb") as handle:
                        return "uploaded", handle.read()
                except OSError:
                    return "uploaded", None
        return "url", None  # fetched (briefly) when the request runs

    def _load_image(self, req: SimRequest) -> bytes | None:
        if req.image is not None or req.image_source != "url":
            return req.image
        try:
            response = httpx.get(req.params["image_url"], timeout=3.0, follow_redirects=True)
            if response.status_code == 200 and len(response.content) <= 50 * 1024 * 1024:
                req.image = response.content
        except Exception:  # noqa: BLE001 - any failure to fetch renders without the image, like a blank start
            self._log(req, "Could not download the start image; rendering without it", "WARN")
        return req.image

    def _render_for(self, req: SimRequest, width: int, height: int, progress: "_ProgressLog") -> dict:
        p = req.params
        file_name = f"{req.id}.mp4"
        spec = dict(width=width, height=height, fps=p["fps"], duration=p["duration"], audio=p["generate_audio"])
        if self.cache_renders:
            facts, path = self._cached_render(req, spec)
        else:
            path = os.path.join(self.workdir, "renders", file_name)
            facts = render_video(path, text=p["prompt"], **spec, image=self._load_image(req),
                                 progress=progress.render_fraction,
                                 should_stop=lambda: self._stop_requested(req))
            self._count("renders")
        token = req.id.replace("-", "")
        with self._lock:
            self._files[token] = StoredFile(path, "video/mp4", file_name)
        return {**facts, "token": token, "file_name": file_name}

    def _cached_render(self, req: SimRequest, spec: dict):
        key = tuple(sorted(spec.items()))
        with self._lock:
            entry = self._render_cache.get(key)
            owner = entry is None
            if owner:
                entry = self._render_cache[key] = _CacheEntry()
        if owner:
            name = "cache-{width}x{height}-{fps}fps-{duration}s-{audio}.mp4".format(**spec)
            path = os.path.join(self.workdir, "renders", name)
            try:
                text = "falsim bench render (cached; prompt not shown)"
                entry.facts = render_video(path, text=text, **spec)
                entry.path = path
                self._count("renders")
            except BaseException:
                with self._lock:
                    self._render_cache.pop(key, None)
                raise
            finally:
                entry.done.set()
        else:
            while not entry.done.wait(0.05):
                if self._stop_requested(req):
                    raise RenderCancelled()
            if entry.facts is None:
                raise RuntimeError("cached render failed")
        return dict(entry.facts), entry.path

    # -- storage --

    def new_upload(self, file_name: str, content_type: str, base_url: str) -> dict:
        token = secrets.token_hex(16)
        with self._lock:
            self._pending_uploads[token] = StoredFile(
                os.path.join(self.workdir, "uploads", token), content_type, file_name
            )
        return {
            "upload_url": f"{base_url}/storage/upload/put/{token}?signature={self._upload_signature(token)}",
            "file_url": f"{base_url}/files/{token}/{quote(file_name)}",
        }

    def _upload_signature(self, token: str) -> str:
        return hmac.new(self._upload_secret, token.encode(), hashlib.sha256).hexdigest()[:32]

    def check_upload_signature(self, token: str, signature: str) -> bool:
        return hmac.compare_digest(self._upload_signature(token), signature or "")

    def pending_upload(self, token: str) -> StoredFile | None:
        with self._lock:
            return self._pending_uploads.get(token) or self._files.get(token)

    def store_file(self, token: str, entry: StoredFile) -> None:
        with self._lock:
            self._pending_uploads.pop(token, None)
            self._files[token] = entry

    def new_cdn_token(self) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(24)
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        with self._lock:
            self._cdn_tokens[token] = expires.timestamp()
        return token, expires

    def cdn_token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._cdn_tokens.get(token)
        return expires is not None and expires > time.time()

    def file(self, token: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(token)

    # -- webhooks --

    def webhook_signature_headers(self, request_id: str, body: bytes) -> dict[str, str]:
        return fal_signature.signature_headers(self._signing_key, request_id=request_id, user_id=USER_ID, body=body)

    def _record_webhook(self, request_id: str, ok: bool, final: bool, error: str | None) -> None:
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


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


class _CacheEntry:
    def __init__(self):
        self.done = threading.Event()
        self.facts: dict | None = None
        self.path: str | None = None


class _ProgressLog:
    """Logs "Generating frames N%" in 20% steps, paced by time and by real render progress."""

    STEP = 20

    def __init__(self, sim: FalSimulator, req: SimRequest, planned: float, num_frames: int, started: float):
        self.sim, self.req = sim, req
        self.planned = max(planned, 1e-6)
        self.num_frames = num_frames
        self.started = started
        self.next_pct = self.STEP

    def time_fraction(self, now: float) -> float:
        return (now - self.started) / self.planned

    def next_step_time(self) -> float:
        return self.started + self.planned * self.next_pct / 100.0

    def render_fraction(self, rendered: float) -> None:
        # While rendering, never claim more frames than really exist.
        self.update(min(rendered, self.time_fraction(time.monotonic())))

    def update(self, fraction: float) -> None:
        pct = int(min(1.0, fraction) * 100 + 1e-9)
        while self.next_pct <= pct:
            self.sim._log(self.req, f"Generating frames {self.next_pct}%")
            self.next_pct += self.STEP


class _WebhookSender:
    """Delivers webhooks from a few background threads; retries with exponential backoff."""

    def __init__(self, sim: FalSimulator, max_attempts: int, backoff: float, timeout: float, threads: int = 4):
        self.sim = sim
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = backoff
        self.timeout = timeout
        self.thread_count = threads
        self._heap: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._client = None

    def start(self) -> None:
        self._client = httpx.Client(trust_env=False, timeout=self.timeout)
        for n in range(self.thread_count):
            thread = threading.Thread(target=self._loop, name=f"falsim-webhook-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._threads.clear()
        if self._client is not None:
            self._client.close()

    def enqueue(self, request_id: str, url: str, body: bytes, attempt: int = 1, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), request_id, url, body, attempt))
            self._cond.notify()

    def _next_job(self):
        with self._cond:
            while not self._stopping:
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _loop(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            _, _, request_id, url, body, attempt = job
            error = self._deliver(request_id, url, body)
            final = error is None or attempt >= self.max_attempts
            self.sim._record_webhook(request_id, error is None, final, error)
            if not final:
                self.enqueue(request_id, url, body, attempt + 1, self.backoff * 2 ** (attempt - 1))

    def _deliver(self, request_id: str, url: str, body: bytes) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "falsim-webhook/1.0",
            **self.sim.webhook_signature_headers(request_id, body),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


# --- HTTP layer -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    sim: FalSimulator

    def __init__(self, *args, **kwargs):
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (a killed worker, a timeout) is normal traffic, not a server error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def track(self, connection, active: bool) -> None:
        with self._connections_lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def close_all_connections(self) -> None:
        # Keep-alive connections would otherwise outlive stop() in their daemon threads.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "falsim/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # small keep-alive responses must not wait for delayed ACKs
    timeout = 300

    # -- plumbing --

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    @property
    def sim(self) -> FalSimulator:
        return self.server.sim

    def log_message(self, format, *args):
        if self.sim.verbose:
            sys.stderr.write(f"falsim {self.address_string()} - {format % args}\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._responded = False
        self._body_consumed = False
        try:
            split = urlsplit(self.path)
            self.query = parse_qs(split.query, keep_blank_values=True)
            parts = [unquote(p) for p in split.path.split("/") if p]
            self._route(method, parts)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except _BodyTooLarge:
            self.close_connection = True
            self._json(413, {"detail": "Request body too large"})
        except Exception as exc:
            if self.sim.verbose:
                traceback.print_exc()
            if not self._responded:
                self._json(500, {"detail": f"Internal simulator error: {type(exc).__name__}"})
            self.close_connection = True
        finally:
            if not self._body_consumed:
                # Unread bodies would be parsed as the next request on a keep-alive connection.
                self._discard_body()

    def _write(self, status: int, headers: list, body: bytes = b"", *, head_only: bool = False,
               content_length: int | None = None) -> None:
        self._responded = True
        self.log_request(status)
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if content_length is None:
            content_length = len(body)
        if content_length >= 0:
            lines.append(f"Content-Length: {content_length}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if head_only else head + body)

    def _json(self, status: int, payload, headers: dict | None = None, request_id: str | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        out = [("Content-Type", "application/json")]
        if request_id:
            out.append(("x-fal-request-id", request_id))
        out += list((headers or {}).items())
        self._write(status, out, body, head_only=self.command == "HEAD")

    def _base_url(self) -> str:
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host")
        if not host:
            return self.sim.url
        scheme = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip() or "http"
        return f"{scheme}://{host.split(',')[0].strip()}"

    def _iter_body(self, limit: int | None = None):
        """Yield the request body in chunks (Content-Length or chunked)."""
        self._body_consumed = True
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                total += size
                if limit is not None and total > limit:
                    raise _BodyTooLarge()
                yield self.rfile.read(size)
                self.rfile.readline(1024)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            if limit is not None and remaining > limit:
                self._body_consumed = False
                raise _BodyTooLarge()
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionResetError("client closed during body")
                remaining -= len(chunk)
                yield chunk

    def _read_body(self, limit: int = MAX_JSON_BODY) -> bytes:
        return b"".join(self._iter_body(limit))

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_JSON_BODY or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return
        try:
            for _ in self._iter_body():
                pass
        except Exception:
            self.close_connection = True

    def _read_json(self):
        """Returns (ok, value); on failure has already answered 422."""
        raw = self._read_body()
        try:
            return True, json.loads(raw.decode("utf-8") if raw else "")
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(422, {"detail": [{"loc": ["body", 0], "msg": f"JSON decode error: {exc}", "type": "json_invalid"}]})
            return False, None

    def _key_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "key" and hmac.compare_digest(credentials.strip().encode(), self.sim.key.encode()):
            return True
        if not header:
            self._json(401, {"detail": "Missing authorization header"})
        else:
            self._json(401, {"detail": "No user found for Key ID and Secret"})
        return False

    def _queue_faults(self, submit: bool = False) -> bool:
        """The faults any queue call may meet, in this order; True when one has answered."""
        if self.sim._roll("latency"):
            self.sim._stopping.wait(self.sim.latency_seconds)
        if self.sim._roll("reset"):
            self._discard_body()  # the request was read in full; nothing was done with it
            self._reset()
            return True
        if self.sim._roll("429"):
            self._json(429, {"detail": "Too many requests"}, {"Retry-After": "1"})
            return True
        if self.sim._roll("5xx"):
            if submit:
                self._scheduling_failed()
            else:
                self._service_unavailable(None)
            return True
        return False

    def _reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), answering nothing."""
        self._responded = True
        self._body_consumed = True
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach(): the file objects still reference the socket, so close() alone would not close it.
        os.close(self.connection.detach())

    def _account_locked(self) -> bool:
        """While the simulated account is locked, answer fal's 403 (True: answered)."""
        reason = self.sim.locked
        if not reason:
            return False
        self.sim._count("locked_refusals")
        self._json(403, {"detail": f"User is locked. Reason: {reason}."})
        return True

    def _flag(self, name: str) -> bool:
        values = self.query.get(name)
        return bool(values) and values[-1].lower() in ("1", "true", "yes")

    # -- routing --

    def _route(self, method: str, parts: list[str]) -> None:
        if parts == [".well-known", "jwks.json"] and method in ("GET", "HEAD"):
            return self._json(200, self.sim._jwks, {"Cache-Control": "public, max-age=3600"})
        if parts[:1] == ["_sim"] and method in ("GET", "HEAD"):
            if parts == ["_sim", "stats"]:
                return self._json(200, self.sim.stats())
            if parts == ["_sim", "requests"]:
                return self._json(200, self.sim.requests())
            if parts == ["_sim", "faults"]:
                return self._json(200, self.sim.fault_settings())
        if parts == ["_sim", "faults"] and method == "PUT":
            return self._put_faults()
        if parts[:1] == ["files"]:
            if parts == ["files", "upload"] and method == "POST":
                return self._cdn_upload()
            if len(parts) >= 2 and method in ("GET", "HEAD"):
                return self._serve_file(parts[1], "/".join(parts[2:]))
        if parts[:2] == ["storage", "upload"] and len(parts) >= 3:
            if parts[2] == "initiate" and len(parts) == 3 and method == "POST":
                return self._storage_initiate()
            if parts[2] == "put" and len(parts) == 4 and method == "PUT":
                return self._storage_put(parts[3])
        if parts == ["storage", "auth", "token"] and method == "POST":
            return self._storage_token()
        if parts == ["v1", "models", "requests", "by-endpoint"] and method in ("GET", "HEAD"):
            return self._request_listing()
        if "requests" in parts and len(parts) >= 2:
            return self._queue_call(method, parts)
        if method == "POST" and len(parts) >= 2:
            return self._submit("/".join(parts))
        return self._json(404, {"detail": "Not Found"})

    # -- queue --

    def _put_faults(self) -> None:
        try:
            body = json.loads(self._read_body().decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            return self._json(400, {"detail": f"body must be a JSON object: {exc}"})
        if not isinstance(body, dict):
            return self._json(400, {"detail": "body must be a JSON object with 'faults' and/or "
                                              + ", ".join(f"'{name}'" for name in FAULT_SETTINGS)})
        allowed = ("faults",) + FAULT_SETTINGS
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            return self._json(400, {"detail": f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}"})
        try:
            settings = self.sim.set_faults(body.get("faults"), **{k: v for k, v in body.items() if k != "faults"})
        except ValueError as exc:
            return self._json(400, {"detail": str(exc)})
        self._json(200, settings)

    def _submit(self, model_id: str) -> None:
        if not self._key_ok():
            return
        self.sim._count("submits")
        if self._queue_faults(submit=True) or self._account_locked():
            return
        model = MODELS.get(model_id)
        if model is None:
            return self._json(404, {"detail": f"Application '{model_id}' not found"})
        ok, body = self._read_json()
        if not ok:
            return
        if self.sim._roll("submit_5xx"):
            return self._scheduling_failed()
        webhook = (self.query.get("fal_webhook") or [None])[-1] or None
        status, payload, req = self.sim.submit(
            model, body, webhook, self._base_url(), self._start_timeout(),
            store_io=self.headers.get("X-Fal-Store-IO", "1").strip() not in ("0", "false"),
            fallbacks_disabled=self.headers.get("x-fal-disable-fallbacks", "").strip().lower() == "true")
        if req is not None and self.sim._roll("submit_reset_after_accept"):
            return self._reset()  # queued, but the client only sees a reset connection
        if req is not None and self.sim._roll("submit_timeout"):
            # The request is queued, but the client hears nothing for a long time.
            if self.sim._stopping.wait(self.sim.fault_delay):
                self.close_connection = True
                return
        self._json(status, payload, request_id=req.id if req else None)

    def _scheduling_failed(self) -> None:
        self._json(
            503,
            {"detail": "Runner scheduling failed", "error_type": "runner_scheduling_failure"},
            {"X-Fal-Error-Type": "runner_scheduling_failure"},
            request_id=str(uuid.uuid4()),
        )

    def _start_timeout(self) -> float | None:
        for name in ("X-Fal-Request-Start-Timeout", "X-Fal-Request-Timeout"):
            value = self.headers.get(name)
            if value:
                try:
                    seconds = float(value)
                except ValueError:
                    continue
                if seconds > 0:
                    return seconds
        return None

    def _queue_call(self, method: str, parts: list[str]) -> None:
        index = parts.index("requests")
        prefix, rest = "/".join(parts[:index]), parts[index + 1:]
        if not self._key_ok():
            return
        if len(rest) == 1 and method in ("GET", "HEAD"):
            operation, counter = self._result, "result_calls"
        elif len(rest) == 2 and rest[1] == "status" and method in ("GET", "HEAD"):
            operation, counter = self._status, "status_calls"
        elif len(rest) == 3 and rest[1:] == ["status", "stream"] and method == "GET":
            operation, counter = self._status_stream, "status_calls"
        elif len(rest) == 2 and rest[1] == "cancel" and method in ("PUT", "POST"):
            operation, counter = self._cancel, "cancel_calls"
        elif len(rest) in (1, 2, 3) and rest[1:] in ([], ["status"], ["status", "stream"], ["cancel"]):
            return self._json(405, {"detail": "Method Not Allowed"})
        else:
            return self._json(404, {"detail": "Not Found"})
        self.sim._count(counter)
        if self._queue_faults():
            return
        if prefix not in KNOWN_PREFIXES:
            return self._json(404, {"detail": f"Application '{prefix}' not found"})
        operation(rest[0])

    def _cancel(self, request_id: str) -> None:
        status, payload = self.sim.cancel(request_id)
        self._json(status, payload, request_id=request_id if status != 404 else None)

    def _status(self, request_id: str) -> None:
        req = self.sim.lookup(request_id)
        if req is None:
            return self._json(404, {"detail": "Request not found"})
        if self.sim._roll("status_5xx"):
            return self._service_unavailable(req.id)
        payload = self.sim.status_payload(req, self._base_url(), self._flag("logs"))
        self._json(200 if payload["status"] == COMPLETED else 202, payload, request_id=req.id)

    def _service_unavailable(self, request_id: str | None) -> None:
        self._json(
            503,
            {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
            {"X-Fal-Error-Type": "runner_disconnected"},
            request_id=request_id,
        )

    def _result(self, request_id: str) -> None:
        req = self.sim.lookup(request_id)
        if req is None:
            return self._json(404, {"detail": "Request not found"})
        if self.sim._roll("result_5xx"):
            return self._service_unavailable(req.id)
        status, payload, headers = self.sim.result(req, self._base_url())
        self._json(status, payload, headers, request_id=req.id)

    def _status_stream(self, request_id: str) -> None:
        req = self.sim.lookup(request_id)
        if req is None:
            return self._json(404, {"detail": "Request not found"})
        if self.sim._roll("status_5xx"):
            return self._service_unavailable(req.id)
        base, with_logs = self._base_url(), self._flag("logs")
        self._write(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                          ("Transfer-Encoding", "chunked"), ("x-fal-request-id", req.id)], content_length=-1)
        last_sent = None
        last_write = time.monotonic()
        version = self.sim.current_version()
        while not self.sim._stopping.is_set():
            if self.sim.lookup(request_id) is None:
                break  # forgotten ("lost"): the stream just ends, as a crashed upstream would
            payload = self.sim.status_payload(req, base, with_logs)
            if payload != last_sent:
                self._chunk(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")
                last_sent, last_write = payload, time.monotonic()
                if payload["status"] == COMPLETED:
                    break
            remaining = self.sim.keepalive_interval - (time.monotonic() - last_write)
            if remaining <= 0:
                self._chunk(b": keepalive\n\n")
                last_write = time.monotonic()
                continue
            version = self.sim.wait_for_change(version, remaining)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # -- storage and files --

    def _storage_type_ok(self, allowed=("fal-cdn-v3", "gcs")) -> bool:
        storage_type = (self.query.get("storage_type") or ["fal-cdn-v3"])[-1]
        if storage_type in allowed:
            return True
        self._json(400, {"detail": f"Unsupported storage type '{storage_type}'"})
        return False

    def _request_listing(self) -> None:
        if not self._key_ok():
            return
        self.sim._count("listing_calls")
        if self.sim._roll("latency"):
            self.sim._stopping.wait(self.sim.latency_seconds)
        if self._account_locked():
            return
        if self.sim._roll("listing_5xx"):
            return self._service_unavailable(None)
        status, payload = listing_answer(self.sim.listing_records(), self.query, now=time.time(),
                                         lag=self.sim.listing_lag_seconds)
        self._json(status, payload)

    def _storage_initiate(self) -> None:
        if not self._key_ok() or not self._storage_type_ok() or self._account_locked():
            return
        ok, body = self._read_json()
        if not ok:
            return
        if not isinstance(body, dict):
            return self._json(422, {"detail": [_error(None, "Input should be a valid dictionary", "model_attributes_type")]})
        file_name = _safe_file_name(body.get("file_name"))
        content_type = body.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str):
            return self._json(422, {"detail": [_error("content_type", "Input should be a valid string", "string_type")]})
        self._json(200, self.sim.new_upload(file_name, content_type, self._base_url()))

    def _storage_put(self, token: str) -> None:
        entry = self.sim.pending_upload(token)
        if entry is None:
            return self._json(404, {"detail": "Upload not found"})
        if not self.sim.check_upload_signature(token, (self.query.get("signature") or [""])[-1]):
            return self._json(403, {"detail": "Invalid upload signature"})
        content_type = self.headers.get("Content-Type") or entry.content_type
        self._save_body(entry.path)
        self.sim.store_file(token, StoredFile(entry.path, content_type, entry.file_name))
        self._write(200, [("ETag", f'"{token}"')])

    def _storage_token(self) -> None:
        if not self._key_ok() or not self._storage_type_ok(("fal-cdn-v3",)) or self._account_locked():
            return
        self._read_body()
        token, expires = self.sim.new_cdn_token()
        self._json(200, {"token": token, "token_type": "Bearer", "base_url": self._base_url(),
                         "expires_at": expires.isoformat()})

    def _cdn_upload(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        if not (scheme.lower() == "bearer" and self.sim.cdn_token_valid(credentials.strip())):
            if not self._key_ok():
                return
        file_name = _safe_file_name(self.headers.get("X-Fal-File-Name"))
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        token = secrets.token_hex(16)
        path = os.path.join(self.sim.workdir, "uploads", token)
        size = self._save_body(path)
        self.sim.store_file(token, StoredFile(path, content_type, file_name))
        url = f"{self._base_url()}/files/{token}/{quote(file_name)}"
        self._json(200, {"access_url": url, "content_type": content_type, "file_name": file_name, "file_size": size})

    def _save_body(self, path: str) -> int:
        size = 0
        partial = path + ".part"
        with open(partial, "wb") as out:
            for chunk in self._iter_body():
                out.write(chunk)
                size += len(chunk)
        os.replace(partial, path)
        return size

    def _serve_file(self, token: str, name: str) -> None:
        entry = self.sim.file(token)
        if entry is None or (name and name != entry.file_name):
            return self._json(404, {"detail": "File not found"})
        try:
            handle = open(entry.path, "rb")
        except OSError:
            return self._json(404, {"detail": "File not found"})
        with handle:
            size = os.fstat(handle.fileno()).st_size
            headers = [("Content-Type", entry.content_type), ("Accept-Ranges", "bytes"),
                       ("ETag", f'"{token}-{size}"'), ("Cache-Control", "public, max-age=3600"),
                       ("Access-Control-Allow-Origin", "*")]
            byte_range = _parse_range(self.headers.get("Range"), size)
            if byte_range == "unsatisfiable":
                return self._write(416, headers + [("Content-Range", f"bytes */{size}")],
                                   head_only=self.command == "HEAD")
            status, start, end = 200, 0, size - 1
            if byte_range is not None:
                status, (start, end) = 206, byte_range
                headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
            length = end - start + 1 if size else 0
            self._write(status, headers, head_only=True, content_length=length)
            if self.command == "HEAD":
                return
            handle.seek(start)
            self._send_file(handle, length)

    def _send_file(self, handle, length: int) -> None:
        """Send ``length`` bytes, unless a download fault cuts them short or throttles them."""
        remaining, block = length, 256 * 1024
        if self.sim._roll("download_truncated"):
            # The full Content-Length was announced; closing early leaves the client short.
            remaining, self.close_connection = length // 2, True
        rate = self.sim.download_rate_bytes if self.sim._roll("download_slow") else None
        if rate is not None:
            block = max(1, min(block, rate // 10))  # ~10 writes a second keeps the pace smooth
        started, sent = time.monotonic(), 0
        while remaining > 0:
            chunk = handle.read(min(remaining, block))
            if not chunk:
                break
            sent += len(chunk)
            if rate is not None:
                # Each chunk leaves no earlier than its share of the rate: N bytes take >= N/rate s.
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0 and self.sim._stopping.wait(ahead):
                    self.close_connection = True
                    return
            self.wfile.write(chunk)
            remaining -= len(chunk)


def _safe_file_name(value) -> str:
    if not isinstance(value, str) or not value.strip():
        return "upload.bin"
    name = os.path.basename(value.strip().replace("\\", "/"))
    return name or "upload.bin"


def _parse_range(header: str | None, size: int):
    """A single byte range -> (start, end) inclusive; None = serve whole; 'unsatisfiable'."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match.group(1) and not match.group(2)):
        return None  # malformed or multi-range: ignoring Range is allowed
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


# --- command line -----------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser, *, default_key: str, default_port: int) -> None:
    """The simulator's command-line flags (shared by `manage.py falsim` and `python -m falsim.server`)."""
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port}; 0 = any)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--key", default=default_key, help="the API key clients must send as 'Key <key>'")
    parser.add_argument("--runners", type=int, default=2, help="requests IN_PROGRESS at once (default 2)")
    parser.add_argument("--run-seconds", type=float, default=3.0, help="minimum IN_PROGRESS time (default 3.0)")
    parser.add_argument("--run-seconds-max", type=float, default=None,
                        help="draw each run time from [run-seconds, this] (default: always run-seconds)")
    parser.add_argument("--scale", type=int, default=1, help="render at 1/K of the requested resolution")
    parser.add_argument("--cache-renders", action="store_true",
                        help="bench mode: render each distinct output once (prompt not burned in)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault draws (default 0)")
    parser.add_argument("--fault-delay", type=float, default=35.0,
                        help="seconds a --fault-submit-timeout submit waits before answering (default 35)")
    parser.add_argument("--latency-seconds", type=float, default=0.5,
                        help="seconds a --fault-latency queue call waits before it is handled (default 0.5)")
    parser.add_argument("--download-rate-bytes", type=int, default=256 * 1024,
                        help="bytes/s of a --fault-download-slow file download (default 262144)")
    parser.add_argument("--listing-lag-seconds", type=float, default=0.0,
                        help="a request appears in the request listing this long after it was sent (default 0)")
    parser.add_argument("--locked", default="", metavar="REASON",
                        help='start with the account locked for REASON (e.g. "Exhausted balance"); '
                             "PUT /_sim/faults {\"locked\": \"\"} unlocks it")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    for name in FAULT_NAMES:
        parser.add_argument(f"--fault-{name.replace('_', '-')}", dest=f"fault_{name}", type=float, default=0.0,
                            metavar="P", help="probability 0..1 (default 0)")


def simulator_from_args(options) -> FalSimulator:
    values = options if isinstance(options, dict) else vars(options)
    faults = {name: values.get(f"fault_{name}") or 0.0 for name in FAULT_NAMES}
    return FalSimulator(
        host=values["host"],
        port=values["port"],
        key=values["key"],
        runners=values["runners"],
        run_seconds=values["run_seconds"],
        run_seconds_max=values.get("run_seconds_max"),
        scale=values["scale"],
        cache_renders=values["cache_renders"],
        faults={name: p for name, p in faults.items() if p},
        seed=values["seed"],
        workdir=values.get("workdir"),
        fault_delay=values["fault_delay"],
        latency_seconds=values["latency_seconds"],
        download_rate_bytes=values["download_rate_bytes"],
        listing_lag_seconds=values.get("listing_lag_seconds") or 0.0,
        locked=values.get("locked") or "",
        verbose=values["verbose"],
    )


def describe(sim: FalSimulator) -> str:
    faults = ", ".join(f"{k}={v:g}" for k, v in sim.faults.items() if v) or "none"
    if sim.faults["latency"]:
        faults += f" (latency {sim.latency_seconds:g} s)"
    if sim.faults["download_slow"]:
        faults += f" (download {sim.download_rate_bytes} B/s)"
    if sim.locked:
        faults += f"; account locked ({sim.locked})"
    return (f"falsim listening on {sim.url} (runners={sim.runners}, run_seconds={sim.run_seconds:g}, "
            f"scale={sim.scale}, cache_renders={sim.cache_renders}, faults: {faults}, workdir={sim.workdir})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m falsim.server", description="Local fal.ai simulator")
    add_cli_arguments(parser, default_key=os.environ.get("FALSIM_KEY", "falsim-local-key"),
                      default_port=int(os.environ.get("FALSIM_PORT", "8765")))
    sim = simulator_from_args(parser.parse_args(argv)).start()
    print(describe(sim), flush=True)
    sim.serve_forever()


if __name__ == "__main__":
    main()
