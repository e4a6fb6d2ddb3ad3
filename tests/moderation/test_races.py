"""Moderation actions racing each other and new jobs (real threads, one DB connection each):
refunds release once, concurrent reports hide once, and no job slips past a suspension."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connections

from generations.models import Generation
from generations.services.create import OwnerSuspended, generation_create
from moderation.generation_actions import generation_refund
from moderation.models import AuditEntry, VideoReport
from moderation.services import report_create, user_suspend
from storage.models import UsageEntry
from tests.factories import StaffFactory, SucceededGenerationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def race(workers: list[Callable[[], object]]) -> list[object]:
    """Run every worker at the same moment; returns each one's result or exception."""
    barrier = threading.Barrier(len(workers))
    results: list[object] = [None] * len(workers)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = workers[index]()
        except Exception as exc:  # noqa: BLE001 — recorded for the assertions
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_ten_simultaneous_refunds_release_once(superuser, user, media_root, task_queue, tmp_path):
    video = SucceededGenerationFactory(owner=user, tmp_path=tmp_path)
    results = race([lambda: generation_refund(video, actor=superuser, reason="race")] * 10)
    assert sum(result is not None for result in results) == 1, results
    assert UsageEntry.objects.filter(event="refund").count() == 1
    assert AuditEntry.objects.filter(action="refund").count() == 1


def test_simultaneous_reports_hide_once(settings, user, db, media_root, task_queue, tmp_path):
    settings.STUDIO_REPORTS_TO_HIDE = 3
    video = SucceededGenerationFactory(owner=user, tmp_path=tmp_path)
    reporters = [StaffFactory(username=f"staff{i}") for i in range(6)]
    results = race([lambda r=r: report_create(generation=video, reporter=r, reason="bad") for r in reporters])
    assert all(isinstance(result, tuple) and result[1] for result in results), results
    assert VideoReport.objects.count() == 6 and Generation.objects.get(pk=video.pk).is_hidden
    assert AuditEntry.objects.filter(action="auto_hide").count() == 1
    assert AuditEntry.objects.filter(action="flag", actor_name="system").count() == 1


def test_no_job_slips_past_a_suspension(superuser, user, task_queue):
    def create(i: int):
        return generation_create(owner=user, model="t2v", input={"prompt": f"race {i}"})[0]

    workers = [lambda i=i: create(i) for i in range(4)] + [lambda: user_suspend(user, actor=superuser, reason="x")]
    results = race(workers)
    created = [r for r in results[:4] if isinstance(r, Generation)]
    refused = [r for r in results[:4] if isinstance(r, OwnerSuspended)]
    assert len(created) + len(refused) == 4, results
    # every job that got in before the suspension was canceled by it; none was left waiting
    assert set(Generation.objects.values_list("status", flat=True)) <= {"canceled"}
    assert Generation.objects.count() == len(created)
    assert set(results[4]) == {str(g.pk) for g in created}
    assert UsageEntry.objects.filter(event="reserve").count() == len(created)
    assert UsageEntry.objects.filter(event="release").count() == len(created)
