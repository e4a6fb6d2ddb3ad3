"""Following many fal status streams (`GET …/requests/{id}/status/stream?logs=1`) at once.

fal sends the request's status object when the stream opens and again at every change (a log line,
a new place in the queue, the start, the end), a keep-alive comment every 15 s, and closes the
stream after COMPLETED. Following it instead of polling brings each change within a network's
delay, at one open connection per job instead of a call per job-second.

All streams share one asyncio event loop in a thread of their own and one `httpx.AsyncClient`, so a
thousand of them cost a thousand coroutines. The caller's thread talks to them through three calls:
`follow` (start following a request, unless already at `limit`), `take` (the events and endings since
the last take) and `close`. A stream that fails or goes quiet simply ends: its caller polls instead.
This module knows nothing of Django.
"""
from __future__ import annotations

import asyncio
import collections
import json
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
        self._loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
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

    def take(self) -> Taken[K]:
        """The events and endings since the last take (thread-safe; each is handed out once)."""
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
        if self._client is None:
            self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout, follow_redirects=False,
                                             transport=self._transport,
                                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=0))
        task = self._loop.create_task(self._follow(key, status_url))
        with self._lock:
            self._open[key] = task

    async def _follow(self, key: K, status_url: str) -> None:
        completed = False
        try:
            assert self._client is not None
            async with self._client.stream("GET", f"{status_url}/stream", params={"logs": "1"}) as response:
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

    async def _shutdown(self) -> None:
        with self._lock:
            tasks = [task for task in self._open.values() if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


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
