"""Quotas across a job's life, through the simulator: reserve, settle, release, delete."""
from __future__ import annotations

from decimal import Decimal

import pytest

from generations.models import Generation
from generations.services.cancel import generation_cancel
from generations.services.create import generation_create
from generations.services.delete import StillActive, generation_delete
from storage.models import StoredObject, UsageEntry, UserQuota
from storage.quotas import QuotaExceeded, estimate_bytes, usage_for
from storage.reconcile import storage_reconcile
from tests.generations.test_pipeline import create, track_until

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status
ESTIMATE_6S_1080P25 = estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True)


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def run_to_end(generation, task_queue):
    task_queue.run_all()
    track_until(generation, *Generation.TERMINAL, Status.STORING)
    task_queue.run_all()
    generation.refresh_from_db()
    return generation


def test_create_reserves_price_bytes_and_one_active_job(studio, user):
    generation = create(user)
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0.48"), ESTIMATE_6S_1080P25, 1)
    entry = UsageEntry.objects.get()
    assert (entry.event, entry.job, entry.user_id) == ("reserve", generation.pk, user.pk)


def test_success_charges_the_price_and_settles_bytes_to_the_real_size(studio, user, task_queue):
    generation = run_to_end(create(user), task_queue)
    assert generation.status == Status.SUCCEEDED
    real = sum(StoredObject.objects.filter(owner=user).values_list("size", flat=True))
    assert real == generation.video.file.size + generation.video.poster.size
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0.48"), real, 0)
    assert list(UsageEntry.objects.values_list("event", "bytes", "usd", "jobs")) == [
        ("reserve", ESTIMATE_6S_1080P25, Decimal("0.48"), 1),
        ("settle", real - ESTIMATE_6S_1080P25, Decimal("0"), -1),
    ]


def test_fal_error_behind_completed_releases_everything(studio, user, task_queue):
    generation = run_to_end(create(user, prompt="x [sim:422]"), task_queue)
    assert generation.status == Status.FAILED
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0"), 0, 0)
    assert UsageEntry.objects.get(event="release").note.endswith("spend released")


def test_rejected_submit_releases_everything(studio, user, task_queue, monkeypatch):
    from fal_protocol.client import FalRejected

    def reject(*args, **kwargs):
        raise FalRejected("fal answered 422: prompt: bad", status_code=422,
                          detail=[{"loc": ["body", "prompt"], "msg": "bad"}])

    monkeypatch.setattr("fal_protocol.client.FalQueueClient.submit", reject)
    generation = create(user)
    task_queue.run_all()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == (Status.FAILED, "rejected")
    assert "prompt: bad" in generation.error_message
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0"), 0, 0)


def test_cancel_while_queued_releases_spend(studio, user, task_queue):
    generation = create(user, prompt="x [sim:slow]")
    task_queue.run_all()
    generation_cancel(generation)
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0"), 0, 0)


def test_cancel_after_fal_reported_running_keeps_the_charge(studio, user, task_queue):
    generation = create(user, prompt="x [sim:slow]")
    task_queue.run_all()
    track_until(generation, Status.RUNNING)
    generation_cancel(generation)
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0.48"), 0, 0)
    assert UsageEntry.objects.get(event="release").note == "canceled (canceled), charged"


def test_lost_upstream_releases_everything(studio, user, task_queue):
    generation = run_to_end(create(user, prompt="x [sim:lost]"), task_queue)
    assert generation.error_code == "lost_upstream"
    assert usage_for(user).spend_usd == Decimal("0")


def test_settling_twice_changes_nothing(studio, user, task_queue):
    from generations.billing import generation_settle

    generation = run_to_end(create(user), task_queue)
    before = list(UsageEntry.objects.values_list("event", "bytes", "usd", "jobs"))
    generation_settle(generation)
    generation_settle(generation)
    assert list(UsageEntry.objects.values_list("event", "bytes", "usd", "jobs")) == before


def test_delete_removes_objects_and_frees_bytes_but_keeps_the_spend(storage_backend, studio, user, task_queue):
    from django.core.files.storage import default_storage

    generation = run_to_end(create(user), task_queue)
    keys = list(StoredObject.objects.values_list("key", flat=True))
    generation_delete(generation)
    generation_delete(generation)  # idempotent
    assert not Generation.objects.exists() and not StoredObject.objects.exists()
    assert not any(default_storage.exists(key) for key in keys)
    usage = usage_for(user)
    assert (usage.spend_usd, usage.bytes, usage.active_jobs) == (Decimal("0.48"), 0, 0)
    assert storage_reconcile().clean


def test_delete_of_an_active_generation_is_refused(studio, user):
    generation = create(user)
    with pytest.raises(StillActive):
        generation_delete(generation)
    assert Generation.objects.filter(pk=generation.pk).exists()


@pytest.mark.parametrize("limit, override, words", [
    ("active_jobs", {"active_jobs": 1}, "Active jobs limit reached: using 1 of 1"),
    ("monthly_spend_usd", {"monthly_spend_usd": Decimal("0.50")}, "Monthly spend limit reached: using $0.48 of $0.50"),
    ("storage_bytes", {"storage_bytes": ESTIMATE_6S_1080P25 + 1000}, "Storage limit reached"),
])
def test_over_quota_is_refused_clearly_and_nothing_is_written_or_sent(studio, user, task_queue, limit, override, words):
    UserQuota.objects.create(user=user, **override)
    create(user)
    task_queue.calls.clear()
    before = list(UsageEntry.objects.values_list("pk", flat=True))
    with pytest.raises(QuotaExceeded) as info:
        generation_create(owner=user, model="t2v", input={"prompt": "one more"})
    assert info.value.limit == limit
    assert str(info.value).startswith(words)
    assert info.value.hint
    assert Generation.objects.count() == 1
    assert list(UsageEntry.objects.values_list("pk", flat=True)) == before
    assert task_queue.calls == [] and studio.stats()["submits"] == 0


def test_an_overrun_blocks_new_jobs_until_usage_is_back_under_the_limit(studio, user, task_queue):
    generation = run_to_end(create(user), task_queue)
    used = usage_for(user).bytes
    UserQuota.objects.update_or_create(user=user, defaults={"storage_bytes": used - 1})  # below what is stored
    with pytest.raises(QuotaExceeded) as info:
        generation_create(owner=user, model="t2v", input={"prompt": "more"})
    assert info.value.limit == "storage_bytes" and info.value.hint == "Delete videos you no longer need."
    generation_delete(generation)
    UserQuota.objects.filter(user=user).update(storage_bytes=ESTIMATE_6S_1080P25)
    assert generation_create(owner=user, model="t2v", input={"prompt": "more"})[1] is True


def test_usage_is_per_user(studio, user, other_user):
    create(user)
    assert (usage_for(other_user).active_jobs, usage_for(other_user).bytes) == (0, 0)


def test_reconcile_reports_a_missing_object_and_ledger_drift(storage_backend, studio, user, task_queue):
    from django.core.files.storage import default_storage

    generation = run_to_end(create(user), task_queue)
    assert storage_reconcile().clean
    default_storage.delete(generation.video.poster.key)
    UsageEntry.objects.create(user=user, event="adjust", bytes=5, month=UsageEntry.objects.first().month)
    drift = storage_reconcile()
    assert drift.missing_objects == [generation.video.poster.key]
    ledger, expected = drift.bytes_by_user[user.pk]
    assert ledger - expected == 5
