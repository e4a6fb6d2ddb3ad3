"""Riding out a database that blinks (a restart, a failover) where giving up would lose something."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")
# Tries over about half a minute: long enough for a PostgreSQL restart or a managed failover.
TRIES = 8


def through_a_database_blip(step: Callable[[], T]) -> T:
    """Run `step`, and again on a fresh connection while the database is unreachable, up to TRIES times.

    Only for steps that are safe to repeat (each write a compare-and-set) and that hold something the
    database does not have yet — fal's answer to a submit, for one. Call outside `atomic`: the broken
    connection is closed before each new try. The last failure is raised.
    """
    for attempt in range(TRIES):
        try:
            return step()
        except (OperationalError, InterfaceError) as exc:
            if attempt == TRIES - 1 or connection.in_atomic_block:
                raise
            log.warning("database unreachable (%s); trying again", exc)
            connection.close()
            time.sleep(min(0.25 * 2 ** attempt, 8.0))
    raise AssertionError("unreachable")
