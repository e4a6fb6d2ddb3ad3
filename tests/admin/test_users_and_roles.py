"""Users in the admin (suspend/reinstate with a reason, quota overrides, usage, recent jobs) and the
permission boundaries of the moderator role."""
from __future__ import annotations

import html
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.models import Generation
from moderation.generation_actions import generation_refund
from moderation.models import AuditEntry, Suspension
from moderation.services import SuspendRefused, quota_override_set, user_suspend
from storage.models import UsageEntry, UserQuota
from tests.factories import GenerationFactory, RunningGenerationFactory, SucceededGenerationFactory
from tests.moderation_fixtures import run_action
from web.account_forms import SUSPENDED_MESSAGE

pytestmark = pytest.mark.django_db
USERS = "auth/user"
Status = Generation.Status


def test_the_moderator_group_has_exactly_the_review_hide_flag_suspend_permissions(db):
    codenames = set(Group.objects.get(name="moderator").permissions.values_list("content_type__app_label", "codename"))
    assert codenames == {
        ("generations", "view_generation"), ("generations", "moderate_generation"),
        ("generations", "view_generationattempt"), ("generations", "view_generationevent"),
        ("generations", "view_project"), ("auth", "view_user"), ("storage", "view_userquota"),
        ("moderation", "suspend_user"), ("moderation", "view_suspension"), ("moderation", "view_auditentry"),
        ("moderation", "view_videoreport"), ("moderation", "view_blockedterm"), ("moderation", "add_blockedterm"),
        ("moderation", "change_blockedterm"),
    }


# --- suspend / reinstate ------------------------------------------------------------------------

def test_suspend_blocks_sign_in_sessions_and_keys_and_cancels_only_jobs_not_at_fal(
        admin_client, superuser, user, task_queue, media_root, tmp_path):
    waiting, held = GenerationFactory(owner=user, prompt="waiting"), GenerationFactory(owner=user, prompt="held")
    at_fal, done = RunningGenerationFactory(owner=user), SucceededGenerationFactory(owner=user, tmp_path=tmp_path)
    Generation.objects.filter(pk=held.pk).update(status=Status.HELD)
    _, raw = api_key_create(user=user, name="script")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    session = Client()
    session.force_login(user)
    assert api.get("/api/v1/usage/").status_code == 200 and session.get("/").status_code == 200

    confirm = run_action(admin_client, USERS, "suspend", [user.pk], reason=None)
    assert b'id="reason-form"' in confirm.content
    assert Client().post("/accounts/login/", {"username": "alice", "password": "alice-password"}).status_code == 302
    run_action(admin_client, USERS, "suspend", [user.pk], reason="spamming prompts")

    user.refresh_from_db()
    assert not user.is_active
    statuses = dict(Generation.objects.values_list("pk", "status"))
    assert statuses == {waiting.pk: "canceled", held.pk: "canceled", at_fal.pk: "running", done.pk: "succeeded"}
    assert set(Generation.objects.filter(error_code="suspended").values_list("pk", flat=True)) == {waiting.pk, held.pk}
    assert api.get("/api/v1/usage/").status_code == 401
    assert session.get("/").status_code == 302  # the open session no longer counts
    login = Client().post("/accounts/login/", {"username": "alice", "password": "alice-password"})
    assert html.escape(SUSPENDED_MESSAGE) in login.content.decode()
    entry = AuditEntry.objects.get(action="suspend")
    assert (entry.actor, entry.target_id, entry.reason, entry.before, entry.after["is_active"]) == (
        superuser, str(user.pk), "spamming prompts", {"is_active": True}, False)
    assert set(entry.after["canceled_jobs"]) == {str(waiting.pk), str(held.pk)}
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "spamming prompts" in page and "suspended" in page

    run_action(admin_client, USERS, "reinstate", [user.pk], reason="appeal accepted")
    user.refresh_from_db()
    assert user.is_active and api.get("/api/v1/usage/").status_code == 200
    assert Suspension.objects.get().lifted_reason == "appeal accepted"
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["suspend", "reinstate"]


def test_suspending_twice_records_once_and_new_jobs_are_refused(admin_client, superuser, user, task_queue):
    from generations.services.create import OwnerSuspended, generation_create

    assert user_suspend(user, actor=superuser, reason="first") == []
    assert user_suspend(user, actor=superuser, reason="again") is None
    with pytest.raises(OwnerSuspended):
        generation_create(owner=user, model="t2v", input={"prompt": "still here"})
    assert AuditEntry.objects.filter(action="suspend").count() == 1 and not Generation.objects.exists()
    assert not UsageEntry.objects.exists()


def test_a_moderator_can_suspend_users_but_not_superusers_or_themselves(moderator_client, moderator, user, superuser):
    run_action(moderator_client, USERS, "suspend", [user.pk], reason="abuse")
    user.refresh_from_db()
    assert not user.is_active
    response = run_action(moderator_client, USERS, "suspend", [superuser.pk], reason="coup")
    assert "only a superuser can suspend a superuser" in response.content.decode()
    superuser.refresh_from_db()
    assert superuser.is_active
    with pytest.raises(SuspendRefused):
        user_suspend(moderator, actor=moderator, reason="oops")
    assert AuditEntry.objects.filter(action="suspend").count() == 1


def test_the_plain_user_form_cannot_flip_is_active(admin_client, user):
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert 'name="is_active"' not in page


# --- quota overrides, usage, recent generations -------------------------------------------------

def quota_form(user, **quota):
    data = {"username": user.username, "first_name": "", "last_name": "", "email": "", "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00", "quota-TOTAL_FORMS": "1", "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0", "quota-MAX_NUM_FORMS": "1", "quota-0-user": user.pk, "quota-0-id": ""}
    data.update({f"quota-0-{k}": v for k, v in quota.items()})
    return data


def test_a_superuser_sets_quota_overrides_and_they_are_audited(admin_client, superuser, user):
    response = admin_client.post(f"/admin/auth/user/{user.pk}/change/",
                                 quota_form(user, storage_bytes="", monthly_spend_usd="5.00", active_jobs="1"))
    assert response.status_code == 302, response.content.decode()[:2000]
    quota = UserQuota.objects.get(user=user)
    assert (quota.storage_bytes, quota.monthly_spend_usd, quota.active_jobs) == (None, Decimal("5.00"), 1)
    entry = AuditEntry.objects.get(action="quota_change")
    assert (entry.actor, entry.before, entry.after) == (
        superuser, {"storage_bytes": None, "monthly_spend_usd": None, "active_jobs": None},
        {"storage_bytes": None, "monthly_spend_usd": "5.00", "active_jobs": 1})


def test_a_moderator_sees_usage_and_quota_but_cannot_change_them(moderator_client, moderator, user, task_queue):
    UserQuota.objects.create(user=user, active_jobs=3)
    job = GenerationFactory(owner=user, prompt="A lighthouse in a storm")
    page = moderator_client.get(f"/admin/auth/user/{user.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "active jobs 1 of 3" in html and "spend $0.48 of $50.00" in html
    assert f"/admin/generations/generation/{job.pk}/change/" in html and "A lighthouse in a storm" in html
    assert 'name="quota-0-active_jobs"' not in html
    assert moderator_client.post(f"/admin/auth/user/{user.pk}/change/",
                                 quota_form(user, active_jobs="100")).status_code == 403
    assert UserQuota.objects.get(user=user).active_jobs == 3
    with pytest.raises(PermissionDenied):
        quota_override_set(user=user, actor=moderator, active_jobs=100)
    assert not AuditEntry.objects.exists()


# --- moderator boundaries -----------------------------------------------------------------------

def test_a_moderator_cannot_refund_in_the_admin_or_the_service(moderator_client, moderator, user, media_root,
                                                                task_queue, tmp_path):
    video = SucceededGenerationFactory(owner=user, tmp_path=tmp_path)
    changelist = moderator_client.get("/admin/generations/generation/")
    actions = [value for value, _ in changelist.context["action_form"].fields["action"].choices if value]
    assert actions == ["hide", "unhide", "flag", "mark_reviewed"]
    run_action(moderator_client, "generations/generation", "refund", [video.pk], reason="please")
    with pytest.raises(PermissionDenied):
        generation_refund(video, actor=moderator, reason="please")
    assert not UsageEntry.objects.filter(event="refund").exists() and not AuditEntry.objects.exists()
    assert Generation.objects.get(pk=video.pk).refunded_at is None
    # …but can hide
    run_action(moderator_client, "generations/generation", "hide", [video.pk], reason="gore")
    assert Generation.objects.get(pk=video.pk).is_hidden


def test_a_moderator_cannot_see_api_keys_ledger_or_task_queues(moderator_client, user):
    api_key_create(user=user, name="secret")
    index = moderator_client.get("/admin/").content.decode()
    assert "/admin/accounts/apikey/" not in index and "/admin/django_q/" not in index
    for path in ("/admin/accounts/apikey/", "/admin/storage/usageentry/", "/admin/django_q/failure/",
                 "/admin/django_q/success/"):
        assert moderator_client.get(path).status_code == 403, path
    for path in ("/admin/generations/generation/", "/admin/moderation/auditentry/", "/admin/moderation/videoreport/",
                 "/admin/moderation/blockedterm/", "/admin/auth/user/", "/admin/dashboard/"):
        assert moderator_client.get(path).status_code == 200, path


def test_superusers_reach_api_keys_without_secrets_and_the_task_views(admin_client, user):
    key, raw = api_key_create(user=user, name="secret")
    page = admin_client.get("/admin/accounts/apikey/").content.decode()
    assert key.prefix in page and raw not in page and key.digest not in page
    for path in ("/admin/django_q/failure/", "/admin/django_q/success/", "/admin/django_q/schedule/",
                 "/admin/django_q/ormq/", "/admin/storage/usageentry/"):
        assert admin_client.get(path).status_code == 200, path


def test_the_audit_log_cannot_be_added_changed_or_deleted(admin_client, superuser, user):
    user_suspend(user, actor=superuser, reason="why")
    entry = AuditEntry.objects.get()
    assert "why" in admin_client.get("/admin/moderation/auditentry/").content.decode()
    assert admin_client.get("/admin/moderation/auditentry/add/").status_code == 403
    assert admin_client.post(f"/admin/moderation/auditentry/{entry.pk}/change/",
                             {"reason": "edited"}).status_code == 403
    assert admin_client.post(f"/admin/moderation/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get().reason == "why"


def test_a_superuser_creates_an_api_key_in_the_admin_and_sees_it_once(admin_client, user):
    from accounts.keys import digest
    from accounts.models import ApiKey

    assert admin_client.get("/admin/auth/user/add/").status_code == 200
    response = admin_client.post("/admin/accounts/apikey/add/", {"user": user.pk, "name": "render farm"}, follow=True)
    key = ApiKey.objects.get()
    shown = [str(m) for m in response.context["messages"] if "shown only now" in str(m)]
    raw = shown[0].rsplit(" ", 1)[1]
    assert (key.user, key.name, key.digest, key.prefix) == (user, "render farm", digest(raw), raw[:12])
    assert raw not in admin_client.get("/admin/accounts/apikey/").content.decode()
