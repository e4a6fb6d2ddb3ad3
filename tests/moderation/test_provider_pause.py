"""The "pause provider" switch: new jobs are accepted as held, pending ones are held, nothing is
submitted; resuming submits held jobs oldest first, round-robin per user. Banner, REST status, dashboard."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.models import Generation, ProviderSwitch
from generations.services.provider_switch import fair_order
from generations.services.submit import generation_submit
from generations.services.tracking import tracker_tick
from moderation.models import AuditEntry
from moderation.services import provider_pause, provider_resume
from storage.quotas import usage_for
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db
Status = Generation.Status


def test_fair_order_interleaves_users_oldest_first():
    rows = [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("c1", "C"), ("b2", "B")]
    assert fair_order(rows) == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_paused_jobs_are_accepted_as_held_and_never_submitted(superuser, user, task_queue,
                                                            django_capture_on_commit_callbacks):
    waiting = GenerationFactory(owner=user, prompt="created before the pause")
    with django_capture_on_commit_callbacks(execute=True):
        assert provider_pause(actor=superuser, reason="fal incident") == 1
    assert Generation.objects.get(pk=waiting.pk).status == Status.HELD
    task_queue.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        held = GenerationFactory(owner=user, prompt="created during the pause")
    assert held.status == Status.HELD and held.next_poll_at is None
    assert task_queue.calls == []
    usage = usage_for(user)
    # held jobs hold their reservation (t2v is LTX-2.3's: $0.48 each)
    assert usage.active_jobs == 2 and str(usage.spend_usd) == "0.9600"
    assert tracker_tick() == 0
    generation_submit(held.pk)  # a stray submit task does nothing
    assert Generation.objects.get(pk=held.pk).status == Status.HELD
    assert not held.attempts.exists()
    _, raw = api_key_create(user=user, name="k")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get(f"/api/v1/generations/{held.pk}/").json()["status"] == "held"


def test_a_submit_that_races_the_pause_holds_its_job(superuser, user, task_queue):
    generation = GenerationFactory(owner=user)
    ProviderSwitch.objects.create(paused=True)
    generation_submit(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == Status.HELD and not generation.attempts.exists()


def test_resume_submits_held_jobs_in_fair_order(superuser, user, other_user, task_queue,
                                               django_capture_on_commit_callbacks):
    provider_pause(actor=superuser, reason="maintenance")
    a1, a2, a3 = (GenerationFactory(owner=user, prompt=f"alice {i}") for i in range(3))
    b1 = GenerationFactory(owner=other_user, prompt="bob 1")
    task_queue.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        released = provider_resume(actor=superuser, reason="fal is back")
    assert released == [str(a1.pk), str(b1.pk), str(a2.pk), str(a3.pk)]
    submits = [args[0] for name, args in task_queue.calls if name.endswith("generation_submit_task")]
    assert submits == released
    assert set(Generation.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert provider_resume(actor=superuser, reason="again") == []
    log = list(AuditEntry.objects.order_by("id").values_list("action", "reason"))
    assert log == [("provider_pause", "maintenance"), ("provider_resume", "fal is back")]
    assert AuditEntry.objects.get(action="provider_resume").after["released_jobs"] == released


def test_users_see_a_banner_while_paused(client, superuser, user):
    client.force_login(user)
    assert 'id="provider-paused"' not in client.get("/").content.decode()
    provider_pause(actor=superuser, reason="x")
    assert 'id="provider-paused"' in client.get("/").content.decode()


def test_the_dashboard_switch_is_for_superusers(admin_client, moderator, user, task_queue):
    from django.test import Client

    moderator_client = Client()
    moderator_client.force_login(moderator)
    page = moderator_client.get("/admin/dashboard/").content.decode()
    assert 'id="provider-form"' not in page
    assert moderator_client.post("/admin/dashboard/", {"reason": "nope"}).status_code == 403
    assert not ProviderSwitch.objects.filter(paused=True).exists()
    assert admin_client.post("/admin/dashboard/", {"reason": "incident 42"}).status_code == 302
    assert ProviderSwitch.objects.get().paused
    assert "Paused" in admin_client.get("/admin/dashboard/").content.decode()
    assert "Provider paused" in admin_client.get("/admin/").content.decode()
    admin_client.post("/admin/dashboard/", {"reason": "fixed"})
    assert not ProviderSwitch.objects.get().paused
