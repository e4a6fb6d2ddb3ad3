"""The only place that hands work to django-q2. Tasks receive ids, never model instances.

The tasks' dotted paths are named once, here (each names a function of generations/tasks.py).
"""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django_q.tasks import async_task

SUBMIT_TASK = "generations.tasks.generation_submit_task"
STORE_TASK = "generations.tasks.generation_store_task"
CANCEL_UPSTREAM_TASK = "generations.tasks.generation_cancel_upstream_task"
TRACKER_TASK = "generations.tasks.tracker_run_task"
AMBIGUOUS_SUBMITS_TASK = "generations.tasks.ambiguous_submits_resolve_task"
SWEEP_TASK = "generations.tasks.sweep_task"  # scheduled every minute (migration 0002)


def enqueue_on_commit(func_path: str, *args: Any) -> None:
    """Enqueue `func_path(*args)` once the current transaction commits (at once outside one).

    A process that dies between the commit and the enqueue loses the enqueue; the tracker and the
    sweeper find such rows through `next_poll_at`, so nothing is lost for good.
    """
    transaction.on_commit(lambda: enqueue(func_path, *args))


def enqueue(func_path: str, *args: Any) -> None:
    async_task(func_path, *args, save=False)
