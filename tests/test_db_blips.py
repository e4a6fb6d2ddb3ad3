"""core/db_blips.py: a step that records something only this process knows rides out a database blip."""
from __future__ import annotations

import pytest
from django.db import OperationalError

from core import db_blips


def test_a_step_is_tried_again_on_a_fresh_connection_until_the_database_answers(monkeypatch):
    closed, slept, calls = [], [], []
    monkeypatch.setattr(db_blips.connection, "close", lambda: closed.append(1))
    monkeypatch.setattr(db_blips.time, "sleep", slept.append)

    def step():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("terminating connection due to administrator command")
        return "recorded"

    assert db_blips.through_a_database_blip(step) == "recorded"
    assert (len(calls), len(closed), slept) == (3, 2, [0.25, 0.5])


def test_a_database_that_stays_away_raises_the_last_error_and_other_errors_at_once(monkeypatch):
    monkeypatch.setattr(db_blips.connection, "close", lambda: None)
    monkeypatch.setattr(db_blips.time, "sleep", lambda seconds: None)
    calls = []

    def down():
        calls.append(1)
        raise OperationalError(f"down {len(calls)}")

    with pytest.raises(OperationalError, match=f"down {db_blips.TRIES}"):
        db_blips.through_a_database_blip(down)
    assert len(calls) == db_blips.TRIES

    def broken():
        calls.append(1)
        raise ValueError("a bug, not a blip")

    calls.clear()
    with pytest.raises(ValueError):
        db_blips.through_a_database_blip(broken)
    assert len(calls) == 1
