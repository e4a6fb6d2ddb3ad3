"""The webhook sender: fal's completion webhooks, signed as fal signs them, retried with backoff.

On completion, a request's ``fal_webhook`` receives fal's body (``status`` OK with the result as
``payload``, or ERROR with the error body), signed as fal does (Ed25519 over
``request_id\\nuser_id\\ntimestamp\\nsha256hex(body)``, ``fal_protocol.signature``) with the
simulator's own key, published at ``/.well-known/jwks.json``. Failed deliveries are retried with
exponential backoff from a few background threads.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fal_protocol import signature

if TYPE_CHECKING:
    from falsim.engine import Failure

USER_ID = "falsim-user"


def completion_body(request_id: str, failure: Failure | None, output: dict[str, Any] | None) -> bytes:
    """fal's webhook body for a completed request: its ``output``, or its ``failure`` (engine.Failure)."""
    if failure is None:
        body = {"request_id": request_id, "gateway_request_id": request_id, "status": "OK", "payload": output}
    else:
        body = {"request_id": request_id, "gateway_request_id": request_id, "status": "ERROR",
                "error": f"Invalid status code: {failure.status_code}", "payload": failure.body}
    return json.dumps(body).encode("utf-8")


class WebhookSender:
    """Delivers webhooks from a few background threads; retries with exponential backoff.

    ``on_attempt(request_id, ok, final, error)`` is told of every attempt (the engine's record).
    """

    def __init__(self, on_attempt: Callable[[str, bool, bool, str | None], None], max_attempts: int,
                 backoff: float, timeout: float, threads: int = 4) -> None:
        self.on_attempt = on_attempt
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = backoff
        self.timeout = timeout
        self.thread_count = threads
        self._signing_key = Ed25519PrivateKey.generate()
        self.jwks = {"keys": [signature.public_jwk(self._signing_key.public_key())]}
        self._heap: list = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None

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

    def signature_headers(self, request_id: str, body: bytes) -> dict[str, str]:
        return signature.signature_headers(self._signing_key, request_id=request_id, user_id=USER_ID, body=body)

    def enqueue(self, request_id: str, url: str, body: bytes, attempt: int = 1, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), request_id, url, body, attempt))
            self._cond.notify()

    def _next_job(self) -> tuple[float, int, str, str, bytes, int] | None:
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
            self.on_attempt(request_id, error is None, final, error)
            if not final:
                self.enqueue(request_id, url, body, attempt + 1, self.backoff * 2 ** (attempt - 1))

    def _deliver(self, request_id: str, url: str, body: bytes) -> str | None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "falsim-webhook/1.0",
            **self.signature_headers(request_id, body),
        }
        assert self._client is not None, "start() first"
        try:
            response = self._client.post(url, content=body, headers=headers)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
