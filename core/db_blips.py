"""Riding out a database that blinks (a restart, a failover) where giving up would lose something."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection, connections

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


def close_broken_connections() -> None:
    """Between the passes of a long-running loop: close this thread's database connections that an
    error left unusable (a restart, a failover), so the next query opens a fresh one, and keep the
    others. Django's `close_old_connections` also closes every connection older than CONN_MAX_AGE,
    which by default is every one: a loop passing ten times a second would open ten connections a
    second (on PostgreSQL a backend process each), idle or not."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()  # left inside a transaction: start clean, as Django would
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
