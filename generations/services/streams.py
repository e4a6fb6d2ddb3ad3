"""Slots for status and event streams: each open stream costs its web process memory and reads, so
one user may hold at most STUDIO_MAX_STREAMS_PER_USER of them at a time, counted across every process.

A slot is a row with an expiry. While its stream runs, its process renews it (every SLOT_SECONDS / 3,
all of the process's slots in one UPDATE: `slots_held`), and the stream deletes it when it ends; the
row of a stream whose process died expires after SLOT_SECONDS and is removed by the next take of that
user, so the count cannot leak.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
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


def stream_slots_renew(pks: Collection[int]) -> set[int]:
    """Extend the slots `pks` by SLOT_SECONDS, in one UPDATE; the ones that are gone (they expired
    while their process stalled and were removed: their streams are no longer counted and should end)."""
    if not pks:
        return set()
    StreamSlot.objects.filter(pk__in=pks).update(expires_at=timezone.now() + timedelta(seconds=SLOT_SECONDS))
    return set(pks) - set(StreamSlot.objects.filter(pk__in=pks).values_list("pk", flat=True))


class SlotsHeld:
    """The slots of this process's open streams, renewed together by one thread while any is held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._thread: threading.Thread | None = None

    def hold(self, slot: StreamSlot) -> None:
        with self._lock:
            self._held.add(slot.pk)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="studio-stream-slots", daemon=True)
                self._thread.start()

    def drop(self, slot: StreamSlot) -> None:
        with self._lock:
            self._held.discard(slot.pk)
            self._lost.discard(slot.pk)

    def lost(self, slot: StreamSlot) -> bool:
        """Whether `slot` expired and was removed: its stream should end."""
        return slot.pk in self._lost

    def _renew(self) -> None:
        try:
            while True:
                time.sleep(SLOT_SECONDS / 3)
                with self._lock:
                    held = set(self._held)
                    if not held:
                        self._thread = None
                        return
                try:
                    lost = stream_slots_renew(held)
                except DatabaseError:  # a blip: the slots have two more chances before they expire
                    connection.close()
                    continue
                with self._lock:
                    self._lost |= lost & self._held
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
            connection.close()


slots_held = SlotsHeld()


def stream_slot_release(slot: StreamSlot) -> None:
    """Give `slot` back (idempotent)."""
    StreamSlot.objects.filter(pk=slot.pk).delete()


def _held_expiries(user: User) -> list:
    return list(StreamSlot.objects.filter(user=user).values_list("expires_at", flat=True))
