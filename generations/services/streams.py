"""Slots for the gateway's status streams: each open stream holds a thread of a web process, so one
user may hold at most STUDIO_MAX_STREAMS_PER_USER of them at a time, counted across every process.

A slot is a row with an expiry. The stream renews it while it runs (every SLOT_SECONDS / 3) and
deletes it when it ends; the row of a stream whose process died expires after SLOT_SECONDS and is
removed by the next take of that user, so the count cannot leak.
"""
from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.locking import user_row_lock
from generations.models import StreamSlot

SLOT_SECONDS = 30


class TooManyStreams(Exception):
    """The user already holds `limit` open streams; one may free in about `retry_after` seconds."""

    def __init__(self, *, limit: int, retry_after: int) -> None:
        self.limit, self.retry_after = limit, retry_after
        super().__init__(f"you already have {limit} open status streams, the most allowed at once "
                         f"(STUDIO_MAX_STREAMS_PER_USER); close one, or poll the status URL instead")


def stream_slot_take(user: User) -> StreamSlot:
    """A slot for one more open stream of `user`, or TooManyStreams (nothing written).

    Runs its own transaction under the user's row lock, so two opens at once are counted one after
    the other. Slots expired meanwhile (their process died) are removed first."""
    now = timezone.now()
    with transaction.atomic():
        user_row_lock(user.pk)
        StreamSlot.objects.filter(user=user, expires_at__lte=now).delete()
        held = _held_expiries(user)
        if len(held) >= settings.STUDIO_MAX_STREAMS_PER_USER:
            # The soonest a slot frees without a stream ending: when a dead process's slot expires.
            soonest = min(held, default=now + timedelta(seconds=SLOT_SECONDS))
            raise TooManyStreams(limit=settings.STUDIO_MAX_STREAMS_PER_USER,
                                 retry_after=max(1, math.ceil((soonest - now).total_seconds())))
        return StreamSlot.objects.create(user=user, expires_at=now + timedelta(seconds=SLOT_SECONDS))


def stream_slot_renew(slot: StreamSlot) -> bool:
    """Extend `slot` by SLOT_SECONDS. False when it is gone (it expired while its stream stalled and
    was removed): the stream is no longer counted and should end."""
    renewed = StreamSlot.objects.filter(pk=slot.pk).update(expires_at=timezone.now() + timedelta(seconds=SLOT_SECONDS))
    return renewed == 1


def stream_slot_release(slot: StreamSlot) -> None:
    """Give `slot` back (idempotent)."""
    StreamSlot.objects.filter(pk=slot.pk).delete()


def _held_expiries(user: User) -> list:
    return list(StreamSlot.objects.filter(user=user).values_list("expires_at", flat=True))
