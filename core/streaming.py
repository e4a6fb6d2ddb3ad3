"""Streamed response bodies that suit the server they run under, chunk by chunk.

Django serves a streamed body of the other kind by reading all of it first: a sync iterator under
ASGI (uvicorn, `make run` and `make run-prod`) and an async one under WSGI (the test client, the
tests' live server) are collected into a list before a byte is sent. A status stream would then
send nothing until it ended and a video download would sit whole in memory. `streamed_response`
adapts the body to the server instead, one chunk at a time.

`in_db_thread` is how async code reaches the ORM: on a small shared pool of threads, so that an
open stream costs a coroutine rather than a thread of its own. An async body under WSGI is stepped
in the thread serving it, with no event loop; there `in_db_thread` calls straight through, on that
thread's connection (the one a test's transaction is on), and `blocking_allowed()` says so.
"""
from __future__ import annotations

import contextvars
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection
from django.http import HttpRequest, StreamingHttpResponse

T = TypeVar("T")
Chunks = Iterable[bytes] | Iterable[str] | AsyncIterable[bytes] | AsyncIterable[str]

# Database work of async code (stream reads and slot renewals): a few threads, each keeping its own
# connection open between calls (opening one per call would cost more than the read).
DB_THREADS = 8
_db_pool = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="studio-db")
_END = object()
_stepped_in_serving_thread = contextvars.ContextVar("stepped_in_serving_thread", default=False)


def blocking_allowed() -> bool:
    """Whether this coroutine is stepped, with no event loop, in a thread that serves it alone (an
    async body under WSGI): it may block, and must, for it cannot wait on a loop."""
    return _stepped_in_serving_thread.get()


async def in_db_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the shared database pool, awaited. A call that fails on the database closes
    its thread's connection, so after a restart one call fails and the next reconnects."""
    if blocking_allowed():
        return fn(*args)

    def call() -> T:
        try:
            return fn(*args)
        except DatabaseError:
            connection.close()
            raise

    return await sync_to_async(call, thread_sensitive=False, executor=_db_pool)()


def streamed_response(request: HttpRequest, chunks: Chunks, *, on_close: Callable[[], None] | None = None,
                      **kwargs: Any) -> StreamingHttpResponse:
    """A StreamingHttpResponse sending `chunks` (sync or async) as they come, under either server.

    `on_close` runs when the server closes the response: after the last chunk, when the client went
    away, or before the first (Django closes a response in every case)."""
    if isinstance(request, ASGIRequest):
        body: Any = chunks if isinstance(chunks, AsyncIterable) else _stepped_async(chunks)
    else:
        body = _stepped_sync(chunks) if isinstance(chunks, AsyncIterable) else chunks
    closing = _ClosingAsync(body, on_close) if isinstance(body, AsyncIterable) else _ClosingSync(body, on_close)
    return StreamingHttpResponse(closing, **kwargs)


def event_stream_response(request: HttpRequest, events: AsyncIterable[str], *,
                          on_close: Callable[[], None] | None = None) -> StreamingHttpResponse:
    """Server-sent `events` as they come, uncached and unbuffered by proxies."""
    response = streamed_response(request, events, on_close=on_close, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event through at once
    return response


class _Closing:
    """A body with a close() that Django calls when it is done with the response."""

    def __init__(self, body: Any, on_close: Callable[[], None] | None) -> None:
        self._body, self._on_close = body, on_close

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._on_close is not None:
                self._on_close()


class _ClosingSync(_Closing):
    def __iter__(self) -> Iterator[Any]:
        return iter(self._body)


class _ClosingAsync(_Closing):
    def __aiter__(self) -> AsyncIterator[Any]:
        return cast("AsyncIterator[Any]", self._body.__aiter__())


async def _stepped_async(chunks: Iterable[Any]) -> AsyncIterator[Any]:
    """A sync iterator read one chunk at a time off the event loop (a file read may block)."""
    iterator = iter(chunks)

    def step() -> Any:
        return next(iterator, _END)

    try:
        while (chunk := await sync_to_async(step, thread_sensitive=False)()) is not _END:
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=False)()


def _stepped_sync(chunks: AsyncIterable[Any]) -> Iterator[Any]:
    """An async iterator stepped in the thread serving it — under WSGI the thread is the stream's
    anyway. No event loop runs: in this mode the body's awaits complete at once (`in_db_thread`
    calls straight through, and code that waits asks `blocking_allowed()` and blocks instead), so
    Django's ORM, which refuses to run under a running loop, works on the request's connection.
    Closing the iterator early closes the async one too."""
    iterator = chunks.__aiter__()
    context = contextvars.copy_context()
    context.run(_stepped_in_serving_thread.set, True)
    try:
        while True:
            try:
                chunk = context.run(_complete_at_once, iterator.__anext__())
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            context.run(_complete_at_once, aclose())


def _complete_at_once(awaitable: Awaitable[T]) -> T:
    step = awaitable.__await__()
    try:
        step.send(None)
    except StopIteration as done:
        return cast("T", done.value)
    step.close()
    raise RuntimeError("a streamed body under WSGI awaited something that needs an event loop")
