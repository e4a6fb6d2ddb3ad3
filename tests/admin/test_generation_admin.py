"""The generations admin: list, filters, search, read-only detail with player, attempts and history,
and every action through its service (with reason, audit entry and no side effects when refused)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generations.media_links import media_link
from generations.models import Generation
from generations.payloads import generation_payload
from moderation.models import AuditEntry
from storage.models import UsageEntry
from storage.quotas import usage_for
from tests.factories import FailedGenerationFactory, GenerationFactory, SucceededGenerationFactory
from tests.media_fetch import fetch
from tests.moderation_fixtures import run_action

pytestmark = pytest.mark.django_db
LIST = "/admin/generations/generation/"
Status = Generation.Status


@pytest.fixture
def video(user, media_root, task_queue, tmp_path):
    return SucceededGenerationFactory(owner=user, prompt="A cowboy at high noon", tmp_path=tmp_path)


def rows(response) -> list[str]:
    return [str(g.pk) for g in response.context["cl"].result_list]


# --- who can get in -----------------------------------------------------------------------------

def test_a_normal_user_cannot_reach_the_admin_or_the_dashboard(client, user):
    client.force_login(user)
    for path in ("/admin/", LIST, "/admin/dashboard/", "/admin/moderation/auditentry/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path


def test_anonymous_visitors_are_sent_to_the_admin_sign_in(client, db):
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"] == f"/admin/login/?next={LIST}"


# --- list ---------------------------------------------------------------------------------------

def test_list_shows_status_user_project_model_spec_cost_and_flags(admin_client, user, video, task_queue):
    Generation.objects.filter(pk=video.pk).update(is_hidden=True)
    page = admin_client.get(LIST)
    html = page.content.decode()
    assert page.status_code == 200 and rows(page) == [str(video.pk)]
    for text in (str(video.pk)[:8], "succeeded", "alice", "Inbox", "t2v", "1080p · 6 s · 25 fps", "$0.48", "hidden"):
        assert text in html, text


def test_filters_and_prompt_search(admin_client, user, other_user, video, task_queue):
    queued = GenerationFactory(owner=other_user, prompt="A lighthouse in a storm", input={"resolution": "1440p"})
    fast = Generation.objects.get(pk=GenerationFactory(owner=user, prompt="Fast fox").pk)
    Generation.objects.filter(pk=fast.pk).update(model_id="fal-ai/ltx-2/text-to-video/fast",
                                                 flagged_at=video.created_at)
    assert rows(admin_client.get(LIST, {"status__exact": "succeeded"})) == [str(video.pk)]
    assert rows(admin_client.get(LIST, {"model": "fal-ai/ltx-2/text-to-video/fast"})) == [str(fast.pk)]
    assert rows(admin_client.get(LIST, {"moderation": "review"})) == [str(fast.pk)]
    assert rows(admin_client.get(LIST, {"owner__id__exact": other_user.pk})) == [str(queued.pk)]
    assert rows(admin_client.get(LIST, {"q": "lighthouse"})) == [str(queued.pk)]
    assert rows(admin_client.get(LIST, {"q": str(video.pk)})) == [str(video.pk)]
    midnight = video.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    assert set(rows(admin_client.get(LIST, {"created_at__gte": str(midnight)}))) == {
        str(video.pk), str(queued.pk), str(fast.pk)}


def test_the_list_does_not_query_per_row(admin_client, user, task_queue):
    for i in range(2):
        GenerationFactory(owner=user, prompt=f"job {i}")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(LIST).status_code == 200
    for i in range(3):
        GenerationFactory(owner=user, prompt=f"more {i}")
    with CaptureQueriesContext(connection) as more:
        assert admin_client.get(LIST).status_code == 200
    assert len(more) == len(few)


# --- detail -------------------------------------------------------------------------------------

def test_detail_is_read_only_with_player_poster_input_upstream_attempts_and_history(admin_client, video):
    page = admin_client.get(f"{LIST}{video.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'src="/generations/{video.pk}/video"' in html and f'poster="/generations/{video.pk}/poster"' in html
    assert f'id="admin-poster" src="/generations/{video.pk}/poster"' in html
    assert f"req-{video.pk}" in html and "A cowboy at high noon" in html
    assert "250 ms" in html  # the submit attempt's duration
    history = [e.status for e in video.events.all()]
    assert history == ["pending", "submitting", "queued", "storing", "succeeded"]
    assert 'name="_save"' not in html and "<textarea" not in html  # nothing to edit here
    assert admin_client.post(f"{LIST}{video.pk}/change/", {"is_hidden": "on"}).status_code == 403
    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.post(f"{LIST}{video.pk}/delete/", {"post": "yes"}).status_code == 403
    status, _, body = fetch(admin_client, f"/generations/{video.pk}/video")
    assert status == 200 and body[4:8] == b"ftyp"


# --- hide / unhide ------------------------------------------------------------------------------

def test_hide_asks_for_a_reason_then_hides_at_once_for_the_owner_everywhere(admin_client, superuser, user, video):
    token_link = media_link(video.pk, "video").removeprefix("http://127.0.0.1:8000")
    poster_link = media_link(video.pk, "poster").removeprefix("http://127.0.0.1:8000")
    confirm = run_action(admin_client, "generations/generation", "hide", [video.pk], reason=None)
    assert confirm.status_code == 200 and b'id="reason-form"' in confirm.content
    assert not Generation.objects.get(pk=video.pk).is_hidden  # nothing happens before the reason is given
    blank = admin_client.post(LIST, {"action": "hide", "_selected_action": [video.pk], "apply": "yes", "reason": " "})
    assert blank.status_code == 200 and b"This field is required" in blank.content
    done = run_action(admin_client, "generations/generation", "hide", [video.pk], reason="nudity")
    assert "Hide: 1 done." in done.content.decode()
    hidden = Generation.objects.get(pk=video.pk)
    assert (hidden.is_hidden, hidden.hidden_reason) == (True, "nudity")
    entry = AuditEntry.objects.get(action="hide")
    assert (entry.actor, entry.actor_name, entry.target_type, entry.target_id, entry.reason) == (
        superuser, "root", "generation", str(video.pk), "nudity")
    assert (entry.before["is_hidden"], entry.after["is_hidden"]) == (False, True)
    # the owner: page says so, player gone; every URL stops working, signed links included
    client = Client()
    client.force_login(user)
    page = client.get(f"/generations/{video.pk}/").content.decode()
    assert "Hidden by a moderator." in page and "Reason: nudity" in page and 'id="player"' not in page
    for path in (f"/generations/{video.pk}/video", f"/generations/{video.pk}/video?download=1",
                 f"/generations/{video.pk}/poster", token_link, poster_link):
        assert client.get(path).status_code == 404, path
    client.logout()
    assert client.get(token_link).status_code == 404
    assert generation_payload(hidden)["video"] is None
    # staff can still play it; unhide brings it back
    assert fetch(admin_client, f"/generations/{video.pk}/video")[0] == 200
    run_action(admin_client, "generations/generation", "unhide", [video.pk], reason="false alarm")
    assert fetch(client, token_link)[0] == 200  # streamed (filesystem) or via a presigned redirect (S3)
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["hide", "unhide"]


def test_bulk_hide_counts_what_changed(admin_client, user, task_queue):
    first, second, already = (GenerationFactory(owner=user, prompt="one"), GenerationFactory(owner=user, prompt="two"),
                              GenerationFactory(owner=user, prompt="three"))
    Generation.objects.filter(pk=already.pk).update(is_hidden=True)
    done = run_action(admin_client, "generations/generation", "hide", [first.pk, second.pk, already.pk], reason="spam")
    html = done.content.decode()
    assert "Hide: 2 done." in html and "Hide: 1 needed no change." in html
    assert Generation.objects.filter(is_hidden=True).count() == 3
    assert AuditEntry.objects.filter(action="hide").count() == 2


# --- flag and review ----------------------------------------------------------------------------

def test_flag_then_mark_reviewed(admin_client, user, task_queue):
    generation = GenerationFactory(owner=user)
    run_action(admin_client, "generations/generation", "flag", [generation.pk], reason="check the prompt")
    flagged = Generation.objects.get(pk=generation.pk)
    assert flagged.flagged_at is not None and flagged.flag_reason == "check the prompt"
    assert rows(admin_client.get(LIST, {"moderation": "review"})) == [str(generation.pk)]
    run_action(admin_client, "generations/generation", "mark_reviewed", [generation.pk], reason="fine")
    reviewed = Generation.objects.get(pk=generation.pk)
    assert reviewed.flagged_at is None and reviewed.reviewed_at is not None and not reviewed.is_hidden
    assert rows(admin_client.get(LIST, {"moderation": "review"})) == []
    assert list(AuditEntry.objects.order_by("id").values_list("action", "reason")) == [
        ("flag", "check the prompt"), ("review", "fine")]


# --- refund -------------------------------------------------------------------------------------

def test_refund_releases_the_spend_once_with_the_reason_and_keeps_bytes(admin_client, user, video):
    before = usage_for(user)
    assert before.spend_usd == Decimal("0.4800")
    run_action(admin_client, "generations/generation", "refund", [video.pk], reason="blurry output")
    after = usage_for(user)
    assert (after.spend_usd, after.bytes, after.active_jobs) == (Decimal("0.0000"), before.bytes, 0)
    refund = UsageEntry.objects.get(event="refund")
    assert (refund.job, refund.usd, refund.bytes, refund.note) == (
        video.pk, Decimal("-0.4800"), 0, "refunded by root: blurry output")
    assert Generation.objects.get(pk=video.pk).refunded_at is not None
    again = run_action(admin_client, "generations/generation", "refund", [video.pk], reason="again")
    assert "Refund: 1 needed no change." in again.content.decode()
    assert UsageEntry.objects.filter(event="refund").count() == 1
    assert AuditEntry.objects.filter(action="refund").count() == 1


def test_refunding_an_active_or_never_charged_job_changes_nothing(admin_client, user, task_queue):
    active = GenerationFactory(owner=user, prompt="active")
    released = FailedGenerationFactory(owner=user, prompt="failed")
    response = run_action(admin_client, "generations/generation", "refund", [active.pk, released.pk], reason="x")
    html = response.content.decode()
    assert "Not refund:" in html and "still pending" in html and "Refund: 1 needed no change." in html
    assert not UsageEntry.objects.filter(event="refund").exists() and not AuditEntry.objects.exists()


# --- cancel, retry, delete ----------------------------------------------------------------------

def test_cancel_a_pending_job_releases_its_reservation(admin_client, user, task_queue):
    generation = GenerationFactory(owner=user)
    run_action(admin_client, "generations/generation", "cancel", [generation.pk], reason="abusive")
    canceled = Generation.objects.get(pk=generation.pk)
    assert canceled.status == Status.CANCELED
    assert canceled.error_message == "canceled by the studio's staff: abusive"
    assert usage_for(user).spend_usd == 0 and usage_for(user).active_jobs == 0
    assert AuditEntry.objects.get().after["status"] == "canceled"


def test_cancel_of_a_finished_job_is_refused(admin_client, video):
    response = run_action(admin_client, "generations/generation", "cancel", [video.pk], reason="x")
    assert "Not cancel:" in response.content.decode()
    assert Generation.objects.get(pk=video.pk).status == Status.SUCCEEDED and not AuditEntry.objects.exists()


def test_retry_runs_a_failed_job_again_for_its_owner(admin_client, user, task_queue,
                                                     django_capture_on_commit_callbacks):
    old = FailedGenerationFactory(owner=user)
    with django_capture_on_commit_callbacks(execute=True):
        run_action(admin_client, "generations/generation", "retry", [old.pk], reason="fal outage")
    new = Generation.objects.exclude(pk=old.pk).get()
    assert (new.owner, new.status, new.input) == (user, Status.PENDING, old.input)
    assert task_queue.names()[0] == "generation_submit_task"
    entry = AuditEntry.objects.get(action="retry")
    assert (entry.target_id, entry.after["new_generation"]) == (str(old.pk), str(new.pk))


def test_delete_removes_the_job_and_its_files_and_frees_bytes(admin_client, user, video):
    from django.core.files.storage import default_storage

    key = video.video.file.key
    run_action(admin_client, "generations/generation", "delete_with_files", [video.pk], reason="user asked")
    assert not Generation.objects.filter(pk=video.pk).exists() and not default_storage.exists(key)
    assert usage_for(user).bytes == 0
    entry = AuditEntry.objects.get(action="delete")
    assert entry.before["prompt"] == "A cowboy at high noon" and entry.reason == "user asked"
