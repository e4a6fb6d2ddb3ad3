"""On the embedded defaults, every process opens the SQLite file in write-ahead log mode
(studio/settings.py): a page or an event stream reading does not hold up the worker writing."""
from __future__ import annotations

import sqlite3

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sqlite_file() -> str:
    if connection.vendor != "sqlite":
        pytest.skip("the journal mode is SQLite's")
    connection.ensure_connection()
    return connection.settings_dict["NAME"]


def test_a_connection_opens_the_file_in_wal_mode_syncing_at_checkpoints(sqlite_file):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone() == ("wal",)
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone() == (1,)  # NORMAL


def test_a_writer_commits_while_a_reader_is_in_the_middle_of_a_read(sqlite_file):
    reader = sqlite3.connect(sqlite_file, isolation_level=None)
    writer = sqlite3.connect(sqlite_file, isolation_level=None, timeout=0.5)
    try:
        writer.execute("CREATE TABLE journal_probe (n INTEGER)")
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM journal_probe").fetchone() == (0,)
        # With the rollback journal this commit waits for the reader and fails: "database is locked".
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO journal_probe VALUES (1)")
        writer.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM journal_probe").fetchone() == (0,)  # its snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM journal_probe").fetchone() == (1,)
    finally:
        reader.close()
        writer.execute("DROP TABLE IF EXISTS journal_probe")
        writer.close()
