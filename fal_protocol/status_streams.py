"""Following many fal status streams (`GET …/requests/{id}/status/stream?logs=1`) at once.

fal sends the request's status object when the stream opens and again at every change (a log line,
a new place in the queue, the start, the end), a keep-alive comment every 15 s, and closes the
stream after COMPLETED. Following it instead of polling brings each change within a network's
delay, at one open connection per job instead of a call per job-second.

All streams share one asyncio event loop in a thread of their own and a few `httpx.AsyncClient`s
(STREAMS_PER_CLIENT streams each), so a thousand of them cost a thousand coroutines. The caller's
thread talks to them through four calls: `follow` (start following a request, unless already at
`limit`), `take` (the events and endings since the last take), `wait` (until a stream completes or
ends) and `close`. A stream that fails or goes quiet simply ends: its caller polls instead.
This module knows nothing of Django.
"""
from __future__ import annotations

import asyncio
import collections
import json
import math
import threading
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from fal_protocol.client import FalStatus, status_from
from fal_protocol.queue import COMPLETED

K = TypeVar("K", bound=Hashable)

# fal keeps a quiet stream open with a comment every 15 s: twice that with nothing means it is dead.
QUIET_TIMEOUT = 30.0
# httpcore's connection pool looks at every connection it holds whenever a request starts or ends,
# so one client holding thousands of streams spends the loop's time in those looks (quadratic):
# streams are spread over clients of at most about this many each.
STREAMS_PER_CLIENT = 100


@dataclass
class Taken(Generic[K]):
    """What the streams brought since the last `take`: status events in arrival order, and the keys
    of the streams that ended without COMPLETED (those requests are to be polled again)."""

    events: list[tuple[K, FalStatus]] = field(default_factory=list)
    ended: list[K] = field(default_factory=list)


class StatusStreams(Generic[K]):
    """Status streams of fal requests, each followed under a key of the caller's (a job id)."""

    def __init__(self, *, key: str, limit: int, connect_timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.limit = limit
        self._headers = {"Authorization": f"Key {key}", "User-Agent": "ltx-studio", "Accept": "text/event-stream"}
        self._timeout = httpx.Timeout(QUIET_TIMEOUT, connect=connect_timeout)
        self._transport = transport
        self._lock = threading.Lock()
        self._open: dict[K, asyncio.Task[None] | None] = {}
        self._events: collections.deque[tuple[K, FalStatus]] = collections.deque()
        self._ended: collections.deque[K] = collections.deque()
        self._finished = threading.Event()  # a stream completed or ended since the last take
        self._loop = asyncio.new_event_loop()
        self._clients: list[httpx.AsyncClient] = []
        self._started = 0  # streams started so far: the next one goes to client `_started % len(_clients)`
        self._thread = threading.Thread(target=self._loop.run_forever, name="fal-status-streams", daemon=True)
        self._thread.start()

    def following(self, key: K) -> bool:
        with self._lock:
            return key in self._open

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def follow(self, key: K, status_url: str) -> bool:
        """Start following the stream of the request whose status URL is `status_url`. False when it
        is already followed or `limit` streams are open."""
        with self._lock:
            if key in self._open or len(self._open) >= self.limit:
                return False
            self._open[key] = None  # reserved; the task is set on the loop
        self._loop.call_soon_threadsafe(self._start, key, status_url)
        return True

    def wait(self, timeout: float) -> bool:
        """Block until a stream has completed or ended since the last `take`, or `timeout` seconds
        have passed; whether one has. (News within a stage does not wake the caller: it can wait.)"""
        return self._finished.wait(timeout)

    def take(self) -> Taken[K]:
        """The events and endings since the last take (thread-safe; each is handed out once)."""
        self._finished.clear()  # before draining: whatever comes after it wakes the next wait
        taken: Taken[K] = Taken()
        while self._events:
            taken.events.append(self._events.popleft())
        while self._ended:
            taken.ended.append(self._ended.popleft())
        return taken

    def close(self) -> None:
        """Stop following every stream and end the loop's thread; the streams were neither
        completed nor ended (call `take` first for what had come)."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- on the loop --

    def _start(self, key: K, status_url: str) -> None:
        if not self._clients:
            tls = httpx.create_ssl_context()  # one for all: building one costs milliseconds
            self._clients = [
                httpx.AsyncClient(headers=self._headers, timeout=self._timeout, follow_redirects=False, verify=tls,
                                  transport=self._transport,
                                  limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))
                for _ in range(max(1, math.ceil(self.limit / STREAMS_PER_CLIENT)))]
        client = self._clients[self._started % len(self._clients)]
        self._started += 1
        task = self._loop.create_task(self._follow(key, client, status_url))
        with self._lock:
            self._open[key] = task

    async def _follow(self, key: K, client: httpx.AsyncClient, status_url: str) -> None:
        completed = False
        try:
            async with client.stream("GET", f"{status_url}/stream", params={"logs": "1"}) as response:
                if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
                        "text/event-stream"):
                    return
                async for data in _event_data(response):
                    status = status_from(_json_or_none(data))
                    if status is None:
                        return
                    self._events.append((key, status))
                    if status.status == COMPLETED:
                        completed = True
                        return
        except (httpx.HTTPError, OSError):
            return  # refused, reset or quiet too long: the caller polls instead
        finally:
            with self._lock:
                self._open.pop(key, None)
            if not completed:
                self._ended.append(key)
            self._finished.set()

    async def _shutdown(self) -> None:
        with self._lock:
            tasks = [task for task in self._open.values() if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients:
            await client.aclose()


async def _event_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (comments and other fields skipped)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
