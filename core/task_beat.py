"""A beat the worker cluster gives as its tasks end, so `manage.py workers` can tell a cluster working
through a long backlog from one where nothing runs (core/supervisor.py).

django-q2 keeps no record of a task enqueued with `save=False`, as the studio's are: by its saved
results alone, a cluster busy for minutes with a backlog of thousands of tasks looks exactly like a
wedged one, and the supervisor would restart it, killing the work in hand. The supervisor names a
file in STUDIO_TASK_BEAT_FILE for the cluster it starts; the cluster's monitor process, which sees
every task end, touches it (at most once a second); the file's time is when a task last ended.
"""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.env import env_str

ENV = "STUDIO_TASK_BEAT_FILE"
EVERY = 1.0  # seconds: the beat is a file's time, not a count
_last_beat = 0.0


def task_ended(**kwargs: Any) -> None:
    """Receiver of django-q2's `post_execute` (sent by the monitor as each task ends): beat, when a
    supervisor asked for beats and the last one is older than EVERY."""
    global _last_beat
    path = env_str(ENV)
    now = time.monotonic()
    if not path or now - _last_beat < EVERY:
        return
    _last_beat = now
    try:
        Path(path).touch()
    except OSError:  # a beat is advice: it must never break the monitor that sends it
        pass


def last_task_ended(path: Path) -> datetime | None:
    """When the cluster beating into `path` last ended a task (None: no beat file)."""
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
    except FileNotFoundError:
        return None
