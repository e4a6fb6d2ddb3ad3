"""``FalSimulator``: the simulator's configuration, its parts, its lifecycle and what tests read.

It builds the parts (``engine.Engine``, ``faults.FaultInjector``, ``files.FileStore``,
``webhooks.WebhookSender``, ``render_cache.RenderCache``), serves them over HTTP
(``falsim/http.py``) and starts the runner threads (``falsim/runner.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any, NoReturn

from falsim.engine import Engine
from falsim.faults import FaultInjector
from falsim.files import FileStore
from falsim.http import Handler, Server
from falsim.render_cache import RenderCache
from falsim.runner import run_forever
from falsim.webhooks import WebhookSender


def _fault_setting(name: str) -> property:
    return property(lambda self: self.injector.setting(name), doc=f"The fault setting {name} (falsim/faults.py).")


class FalSimulator:
    """A fal-compatible queue + storage + CDN on a local port (see the falsim package docstring).

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
        retired: Iterable[str] = (),
    ) -> None:
        if runners < 1:
            raise ValueError("runners must be >= 1")
        if scale < 1:
            raise ValueError("scale must be >= 1")
        self.injector = FaultInjector(faults, {
            "fault_delay": fault_delay, "latency_seconds": latency_seconds, "download_rate_bytes": download_rate_bytes,
            "listing_lag_seconds": listing_lag_seconds, "locked": locked, "retired": list(retired)}, seed)
        self.host = host
        self.port = port
        self.key = key
        self.runners = int(runners)
        self.run_seconds = float(run_seconds)
        self.run_seconds_max = max(float(run_seconds_max), self.run_seconds) if run_seconds_max is not None else None
        self.scale = int(scale)
        self.cache_renders = bool(cache_renders)
        self.faults = self.injector.probabilities  # live: changing it changes the next draws
        self.seed = seed
        self.keepalive_interval = float(keepalive_interval)
        self.verbose = verbose

        self._own_workdir = workdir is None
        self.workdir = workdir
        self.stopping = threading.Event()  # set by stop(): every wait of the simulator's threads ends
        self.files = FileStore()
        self.webhooks = WebhookSender(lambda *attempt: self.engine.record_webhook(*attempt), webhook_max_attempts,
                                      webhook_backoff, webhook_timeout, threads=webhook_threads)
        self.engine = Engine(self.stopping, self.injector, self.files, self.webhooks)
        self.render_cache = RenderCache(lambda: self.engine.count("renders"))
        self._httpd: Server | None = None
        self._threads: list[threading.Thread] = []

    fault_delay = _fault_setting("fault_delay")
    latency_seconds = _fault_setting("latency_seconds")
    download_rate_bytes = _fault_setting("download_rate_bytes")
    listing_lag_seconds = _fault_setting("listing_lag_seconds")
    locked = _fault_setting("locked")
    retired = _fault_setting("retired")

    # -- lifecycle --

    def start(self) -> FalSimulator:
        if self._httpd is not None:
            return self
        httpd = Server((self.host, self.port), Handler)  # bind first: a busy port leaves nothing behind
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix="falsim-")
        os.makedirs(os.path.join(self.workdir, "renders"), exist_ok=True)
        os.makedirs(os.path.join(self.workdir, "uploads"), exist_ok=True)
        self.files.uploads_dir = os.path.join(self.workdir, "uploads")
        self._httpd = httpd
        self._httpd.sim = self
        self.port = self._httpd.server_address[1]
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                 name="falsim-http", daemon=True)
        serve.start()
        self._threads.append(serve)
        for n in range(self.runners):
            runner = threading.Thread(target=run_forever, args=(self,), name=f"falsim-runner-{n}", daemon=True)
            runner.start()
            self._threads.append(runner)
        self.webhooks.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.stopping.set()
        self.engine.wake_all()
        self._httpd.shutdown()
        self._httpd.close_all_connections()
        self._httpd.server_close()
        self.webhooks.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._httpd = None
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> FalSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
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
            while not self.stopping.wait(0.5):
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
        return self.engine.stats(self.injector.fired())

    def submits_for(self, input_value: Any) -> int:
        """Accepted submits of exactly this input (as sent: the JSON body), including those whose
        answer a fault lost (submit_timeout, submit_reset_after_accept)."""
        return self.engine.submits_for(input_value)

    def requests(self) -> list[dict]:
        return self.engine.describe_all()

    def completed_at(self, request_id: str) -> float | None:
        return self.engine.completed_at(request_id)

    def jwks(self) -> dict:
        return json.loads(json.dumps(self.webhooks.jwks))

    def webhook_signature_headers(self, request_id: str, body: bytes) -> dict[str, str]:
        """The ``X-Fal-Webhook-*`` headers this simulator sends with ``body`` (as a webhook of ``request_id``)."""
        return self.webhooks.signature_headers(request_id, body)

    def listing_records(self) -> list[dict]:
        """Every request as fal's request listing knows it (falsim/listing.py), lost ones included."""
        return self.engine.listing_records()

    # -- faults --

    def set_faults(self, faults: dict[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
        """Switch faults at runtime; the next call sees the change.

        ``faults`` replaces every probability (names left out become 0); None keeps them.
        ``settings`` are any of FAULT_SETTINGS (``latency_seconds``, ``download_rate_bytes``,
        ``fault_delay``, ``listing_lag_seconds``, ``locked``, ``retired``); those not given keep their value.
        Everything is validated before anything changes: an unknown name or an out-of-range value
        raises ValueError naming the field and the allowed values. Returns ``fault_settings()``.
        """
        return self.injector.update(faults, **settings)

    def fault_settings(self) -> dict:
        """The fault probabilities and their settings, as ``GET /_sim/faults`` shows them."""
        return self.injector.snapshot()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt
