"""fal refusing the studio's account (locked, out of balance, unknown key) is an outage of the provider,
not a property of a job: the studio pauses itself, holds jobs uncharged, tells the staff, probes fal
and resumes by itself (generations/services/provider.py). Real jobs against the simulator, whose
account can be locked (`locked`) like fal's."""
from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from fal_protocol.client import FalAccountBlocked
from generations.models import Generation, GenerationAttempt, ProviderSwitch
from generations.services.provider import provider_probe_if_due
from generations.services.store import generation_store
from generations.services.tracking import tracker_run
from generations.tasks import sweep_task
from generations.upstream import reset_fal_client
from moderation.models import AuditEntry
from moderation.services import provider_pause, provider_resume
from storage.quotas import usage_for
from studio.health import run_checks
from studio.metrics import render_metrics
from tests.factories import SuperuserFactory
from tests.generations.test_image_to_video import image_bytes
from tests.generations.test_pipeline import create, track_until
from tests.generations.test_upstream_faults import finish, ledger

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status


@pytest.fixture
def studio(fal_sim, media_root, task_queue, settings, db):
    settings.STUDIO_PROVIDER_PROBE_SECONDS = 0
    SuperuserFactory(username="ops", email="ops@example.com")
    return fal_sim


def switch() -> ProviderSwitch:
    return ProviderSwitch.objects.get()


@pytest.mark.parametrize("lock, cause", [
    ("Exhausted balance. Top up your balance at fal.ai/dashboard/billing", "balance_exhausted"),
    ("TOP_UP", "balance_exhausted"),
    ("Admin lock. Please contact support@fal.ai", "account_locked"),
])
def test_a_locked_account_holds_the_job_uncharged_and_pauses_the_studio(studio, user, task_queue, lock, cause):
    studio.set_faults({}, locked=lock)
    generation = create(user)
    task_queue.run_all()

    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.submit_attempts, row.error_code) == (Status.HELD, 0, "")
    assert row.attempts.get(kind="submit").outcome == GenerationAttempt.Outcome.UNAVAILABLE
    assert (switch().paused, switch().cause) == (True, cause)
    assert ledger(row) == ["reserve"]  # reserved, never charged
    assert studio.stats()["locked_refusals"] == 1 and studio.requests() == []
    entry = AuditEntry.objects.get(action="provider_pause")
    assert (entry.actor_name, entry.after["cause"]) == ("system", cause)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@example.com"]
    assert "paused" in mail.outbox[0].subject

    # Later jobs wait too, and nothing more reaches fal.
    second = create(user, prompt="made during the lock")
    task_queue.run_all()
    assert Generation.objects.get(pk=second.pk).status == Status.HELD
    assert studio.stats()["locked_refusals"] == 1 and len(mail.outbox) == 1


def test_the_probe_keeps_the_pause_while_fal_refuses_and_resumes_when_it_accepts(studio, user, task_queue):
    studio.set_faults({}, locked="Exhausted balance")
    generation = create(user)
    task_queue.run_all()
    assert provider_probe_if_due() == "still refused"
    assert switch().paused and "still refused" in switch().probe_result
    assert Generation.objects.get(pk=generation.pk).status == Status.HELD

    studio.set_faults({}, locked="")
    task_queue.calls.clear()
    assert provider_probe_if_due() == "resumed"
    assert not switch().paused and switch().cause == ""
    assert AuditEntry.objects.filter(action="provider_resume", actor_name="system").count() == 1
    assert len(mail.outbox) == 2 and "resumed" in mail.outbox[1].subject
    row = finish(generation, task_queue)
    assert row.status == Status.SUCCEEDED
    assert studio.submits_for(row.input) == 1
    assert ledger(row) == ["reserve", "settle"]


def test_the_tracking_chain_probes_during_an_automatic_pause_with_no_job_in_flight(studio, user, task_queue):
    studio.set_faults({}, locked="Admin lock")
    create(user)
    task_queue.run_all()
    assert sweep_task() is True  # held jobs are not tracked, but the pause needs probing: a chain runs
    (_, (token,)), *_ = [call for call in task_queue.calls if call[0].endswith("tracker_run_task")]
    assert tracker_run(token, run_seconds=0.5) == "renewed" and switch().paused
    studio.set_faults({}, locked="")
    tracker_run(token, run_seconds=0.5)
    assert not switch().paused


def test_an_unknown_key_pauses_with_its_own_cause(studio, user, task_queue, settings):
    settings.FAL_KEY = "not-the-simulators-key"
    reset_fal_client()
    generation = create(user)
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.HELD
    assert switch().cause == "bad_key"
    assert provider_probe_if_due() == "still refused"
    settings.FAL_KEY = "test-fal-key"  # the operator fixed FAL_KEY
    reset_fal_client()
    assert provider_probe_if_due() == "resumed"


def test_jobs_already_at_fal_are_polled_and_stored_through_a_lock(studio, user, task_queue):
    generation = create(user)
    task_queue.run_all()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED
    studio.set_faults({}, locked="Exhausted balance")  # status, result and files keep answering, as on fal
    row = finish(generation, task_queue)
    assert row.status == Status.SUCCEEDED


def test_status_reads_refused_for_the_account_never_fail_a_job_in_flight(studio, user, task_queue, settings):
    generation = create(user)
    task_queue.run_all()
    settings.FAL_KEY = "revoked"
    reset_fal_client()
    row = track_until(generation, Status.QUEUED, Status.RUNNING, Status.FAILED)
    assert row.status != Status.FAILED
    assert row.attempts.filter(kind="status", http_status=401).exists()
    assert switch().cause == "bad_key"  # new submits wait meanwhile
    settings.FAL_KEY = "test-fal-key"
    reset_fal_client()
    assert finish(row, task_queue).status == Status.SUCCEEDED


def test_a_result_fetch_refused_for_the_account_keeps_the_job_storing(studio, user, task_queue, monkeypatch):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    task_queue.calls.clear()

    def locked(self, url):
        raise FalAccountBlocked("fal answered 403: User is locked. Reason: Admin lock", reason="account_locked",
                                status_code=403)

    with monkeypatch.context() as patch:
        patch.setattr("fal_protocol.client.FalQueueClient.result", locked)
        generation_store(generation.pk)
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.error_code) == (Status.STORING, "")
    assert switch().cause == "account_locked"
    generation_store(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED


def test_a_start_image_upload_refused_for_the_account_holds_the_job(studio, user, task_queue, settings):
    settings.STUDIO_FAL_DATA_URI_MAX_BYTES = 100  # the image goes through fal's storage upload, which a lock refuses
    import base64

    image = "data:image/png;base64," + base64.b64encode(image_bytes()).decode()
    generation = create(user, model="i2v", image_url=image)
    studio.set_faults({}, locked="Exhausted balance")
    task_queue.run_all()
    row = Generation.objects.get(pk=generation.pk)
    assert (row.status, row.submit_attempts) == (Status.HELD, 0)
    assert not row.attempts.filter(kind="submit").exists() and studio.stats()["image_uploaded"] == 0


def test_an_automatic_pause_never_overrides_or_ends_a_moderators_pause(studio, user, superuser_for_pause):
    provider_pause(actor=superuser_for_pause, reason="planned maintenance")
    from fal_protocol.client import FalAccountBlocked
    from generations.services.provider import provider_outage
    from generations.services.provider_switch import provider_resume as switch_resume

    provider_outage(FalAccountBlocked("fal answered 403: User is locked", reason="account_locked"))
    assert switch_resume(actor=None, reason="probe worked", automatic_only=True) is None
    assert (switch().paused, switch().cause, switch().reason) == (True, "", "planned maintenance")
    assert provider_probe_if_due() is None  # nothing to probe: a person paused it
    provider_resume(actor=superuser_for_pause, reason="done")
    assert not switch().paused


@pytest.fixture
def superuser_for_pause(db):
    return SuperuserFactory(username="root")


def test_users_staff_health_and_metrics_see_an_automatic_pause(studio, user, task_queue):
    studio.set_faults({}, locked="Exhausted balance")
    create(user)
    task_queue.run_all()

    client = Client()
    client.force_login(user)
    banner = client.get("/").content.decode()
    assert 'id="provider-paused"' in banner and "nothing is charged" in banner
    assert "Exhausted" not in banner  # the account's troubles are the operators' business

    staff = Client()
    staff.force_login(type(user).objects.get(username="ops"))
    page = staff.get("/admin/dashboard/").content.decode()
    assert "Paused automatically" in page and 'data-cause="balance_exhausted"' in page
    assert "Exhausted balance" in page

    checks = run_checks()
    assert not checks["provider"].ok and "paused automatically" in checks["provider"].detail
    assert all(checks[name].ok for name in ("database", "broker"))  # a warning, not an outage of the studio
    metrics = render_metrics()
    assert 'studio_provider_paused{cause="balance_exhausted"} 1' in metrics
    assert 'studio_provider_paused{cause="manual"} 0' in metrics


def test_every_submit_asks_fal_for_no_fallback_and_no_kept_payloads(studio, user, task_queue, settings):
    finish(create(user), task_queue)
    settings.STUDIO_FAL_STORE_IO = True
    reset_fal_client()
    finish(create(user, prompt="kept"), task_queue)
    sent = sorted(studio.requests(), key=lambda request: request["submitted_at"])
    assert [(request["fallbacks_disabled"], request["store_io"]) for request in sent] == [(True, False), (True, True)]


def test_held_jobs_during_an_automatic_pause_keep_their_reservation(studio, user, task_queue):
    studio.set_faults({}, locked="Exhausted balance")
    create(user)
    task_queue.run_all()
    usage = usage_for(user)
    assert (usage.active_jobs, str(usage.spend_usd)) == (1, "0.4800")  # reserved, not charged, not lost
