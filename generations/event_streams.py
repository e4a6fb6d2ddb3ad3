"""Server-sent events about generations: the gateway's `…/status/stream`, the REST API's
`/api/v1/generations/{id}/events/` and the web pages' live status (web/live.py) share this loop and
differ only in the body they send and how many jobs one stream follows.

An event is sent each time a body changes, a keep-alive comment when nothing did for
STUDIO_SSE_KEEPALIVE_SECONDS. A generation is followed until `ended` accepts its body or it is gone,
and the stream ends when none is left, or after STUDIO_SSE_MAX_SECONDS. The stream holds one of its
user's stream slots (services/streams.py), renewed with the process's others while it runs; the
caller releases it when the server closes the response. Waiting costs a coroutine (watch.py), not a thread, and a quiet
stream reads nothing.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from django.conf import settings

from core.streaming import blocking_allowed
from generations.models import StreamSlot
from generations.services.streams import SLOT_SECONDS, slots_held, stream_slots_renew
from generations.watch import Reading, watched

Body = dict[str, Any]


Read = Callable[[list[uuid.UUID]], Mapping[uuid.UUID, Reading]]


def each(read_one: Callable[[uuid.UUID], Reading | None]) -> Read:
    """A `Read` of several rows made of a reading of one (for streams that follow a single job)."""
    return lambda pks: {pk: reading for pk in pks if (reading := read_one(pk)) is not None}


async def change_events(pks: Iterable[uuid.UUID], read: Read, *, slot: StreamSlot, ended: Callable[[Body], bool],
                        shown: Callable[[Body], Body] = lambda body: body) -> AsyncIterator[str]:
    """`data:` events of each generation of `pks`, its body as `read(the rows still followed)` gives it
    (a row it leaves out is gone) and as `shown` presents it, following a row until `ended(body)` or
    it is gone, and the others still — see the module docstring. One stream can follow a whole page of
    jobs (the gallery's cards), read together."""
    following = list(dict.fromkeys(pks))
    last_bodies: dict[uuid.UUID, Body] = {}
    started = last_sent = last_renewed = time.monotonic()
    # Stepped in a thread of its own (WSGI), a stream renews its own slot; else the process renews them all.
    renews_itself = blocking_allowed()
    if not renews_itself:
        slots_held.hold(slot)

    every = min(settings.STUDIO_SSE_KEEPALIVE_SECONDS, SLOT_SECONDS / 3)
    try:
        async for bodies in watched(lambda: read(list(following)), every=every):
            for pk in list(following):
                body = bodies.get(pk)
                if not isinstance(body, dict):  # the generation is gone
                    following.remove(pk)
                    continue
                if body != last_bodies.get(pk):
                    yield f"data: {json.dumps(shown(body))}\n\n"
                    last_bodies[pk], last_sent = body, time.monotonic()
                if ended(body):
                    following.remove(pk)
            if not following:
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
