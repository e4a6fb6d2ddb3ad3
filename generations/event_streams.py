"""Server-sent events about one generation: the gateway's `…/status/stream` and the REST API's
`/api/v1/generations/{id}/events/` share this loop and differ only in the body they send.

An event is sent each time the body changes, a keep-alive comment when nothing did for
STUDIO_SSE_KEEPALIVE_SECONDS, and the stream ends after the body that `ended` accepts, after
STUDIO_SSE_MAX_SECONDS, or when the generation is gone. The stream holds one of its user's stream
slots (services/streams.py), renewed with the process's others while it runs; the caller releases it
when the server closes the response. Waiting costs a coroutine (watch.py), not a thread, and a quiet
stream reads nothing.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from django.conf import settings

from core.streaming import blocking_allowed
from generations.models import StreamSlot
from generations.services.streams import SLOT_SECONDS, slots_held, stream_slots_renew
from generations.watch import Reading, watched

Body = dict[str, Any]


async def change_events(pk: uuid.UUID, read: Callable[[], Reading | None], *, slot: StreamSlot,
                        ended: Callable[[Body], bool],
                        shown: Callable[[Body], Body] = lambda body: body) -> AsyncIterator[str]:
    """`data:` events of `read()`'s body for generation `pk` (as `shown` presents each one) until
    `ended(body)` — see the module docstring."""
    last_body: Body | None = None
    started = last_sent = last_renewed = time.monotonic()
    # Stepped in a thread of its own (WSGI), a stream renews its own slot; else the process renews them all.
    renews_itself = blocking_allowed()
    if not renews_itself:
        slots_held.hold(slot)
    try:
        async for body in watched(pk, read, every=min(settings.STUDIO_SSE_KEEPALIVE_SECONDS, SLOT_SECONDS / 3)):
            if not isinstance(body, dict):  # the generation is gone
                return
            if body != last_body:
                yield f"data: {json.dumps(shown(body))}\n\n"
                last_body, last_sent = body, time.monotonic()
            if ended(body):
                return
            now = time.monotonic()
            if now - started >= settings.STUDIO_SSE_MAX_SECONDS:
                yield ": this stream reached its time limit (STUDIO_SSE_MAX_SECONDS); poll the status URL\n\n"
                return
            if renews_itself and now - last_renewed >= SLOT_SECONDS / 3:
                if stream_slots_renew({slot.pk}):
                    return
                last_renewed = now
            if slots_held.lost(slot):  # it expired while this process stalled: no longer counted
                return
            if now - last_sent >= settings.STUDIO_SSE_KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
    finally:
        slots_held.drop(slot)
