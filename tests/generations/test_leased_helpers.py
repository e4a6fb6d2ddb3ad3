"""The loop of the leased helpers (lease.run_while_leased: the tracking driver, the store driver, the
stream follower): one database connection for the process's life, replaced only once it breaks."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from generations.models import Generation
from generations.services.lease import LeasedWork, run_while_leased


@pytest.mark.django_db(transaction=True)
def test_a_helper_keeps_its_connection_between_passes_and_replaces_one_the_database_broke(monkeypatch):
    stop = threading.Event()
    used: list[object] = []

    class Passes(LeasedWork):
        def work(self) -> float:
            Generation.objects.exists()  # each pass queries, as every helper's does
            used.append(connection.connection)
            if len(used) == 3:  # the database drops the connection under this pass
                connection.errors_occurred = True
                monkeypatch.setattr(connections["default"], "is_usable", lambda: False)
            if len(used) == 5:
                stop.set()
            return 0.0

    run_while_leased("test-helper", stop, Passes)

    first, second, third, fourth, fifth = used
    assert first is second is third  # not a connection per pass
    assert fourth is not third  # the broken one was replaced before the next pass...
    assert fifth is fourth  # ...and the fresh one kept
