"""User reports from the web page and the API; distinct reporters; the automatic hide after
STUDIO_REPORTS_TO_HIDE of them, flagged for review, with every step in the audit log."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.media_links import media_link
from generations.models import Generation
from moderation.models import AuditEntry, VideoReport
from moderation.services import ReportRefused, report_create
from tests.factories import StaffFactory, SucceededGenerationFactory
from tests.media_fetch import fetch

pytestmark = pytest.mark.django_db


@pytest.fixture
def video(user, media_root, task_queue, tmp_path):
    return SucceededGenerationFactory(owner=user, prompt="A cowboy at high noon", tmp_path=tmp_path)


def api_for(user) -> APIClient:
    _, raw = api_key_create(user=user, name="k")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_report_from_the_api_once_per_user(user, video):
    api = api_for(user)
    first = api.post(f"/api/v1/generations/{video.pk}/report/", {"reason": "Looks violent"}, format="json")
    assert first.status_code == 201
    assert first.json() == {"id": VideoReport.objects.get().pk, "generation": str(video.pk), "reason": "Looks violent",
                            "created_at": first.json()["created_at"]}
    again = api.post(f"/api/v1/generations/{video.pk}/report/", {"reason": "Really"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert VideoReport.objects.count() == 1 and AuditEntry.objects.filter(action="report").count() == 1


def test_report_errors_use_the_error_shape(user, other_user, video):
    blank = api_for(user).post(f"/api/v1/generations/{video.pk}/report/", {"reason": ""}, format="json")
    assert blank.status_code == 422 and blank.json()["code"] == "validation_error"
    assert "reason" in blank.json()["details"]
    stranger = api_for(other_user).post(f"/api/v1/generations/{video.pk}/report/", {"reason": "x"}, format="json")
    assert stranger.status_code == 404 and stranger.json()["code"] == "not_found"
    assert not VideoReport.objects.exists() and not AuditEntry.objects.exists()


def test_the_report_endpoint_is_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/generations/{id}/report/"]["post"]
    assert {"201", "200", "404", "422"} <= set(operation["responses"])
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReportCreateRequest")
    assert schema["components"]["schemas"]["ReportCreateRequest"]["required"] == ["reason"]


def test_report_from_the_web_page(client, user, video):
    client.force_login(user)
    page = client.get(f"/generations/{video.pk}/").content.decode()
    assert f'action="/generations/{video.pk}/report"' in page
    response = client.post(f"/generations/{video.pk}/report", {"reason": "Not what I asked for"}, follow=True)
    assert "the moderators will review this video" in response.content.decode()
    report = VideoReport.objects.get()
    assert (report.reporter, report.generation_id, report.reason) == (user, video.pk, "Not what I asked for")
    flagged = Generation.objects.get(pk=video.pk)
    assert flagged.flagged_at is not None and not flagged.is_hidden


def test_a_reason_with_a_nul_is_refused_on_the_web_page_and_nothing_is_recorded(client, user, video):
    client.force_login(user)
    response = client.post(f"/generations/{video.pk}/report", {"reason": "Looks \x00 violent"}, follow=True)
    assert "Not reported: the reason must not contain NUL characters (U+0000)." in response.content.decode()
    assert not VideoReport.objects.exists() and not AuditEntry.objects.exists()
    assert Generation.objects.get(pk=video.pk).flagged_at is None


@pytest.mark.parametrize("reason, problem", [
    ("Looks \x00 violent", "must not contain NUL characters (U+0000)"),
    ("Looks \ud800 violent", "must be valid Unicode text: it holds a lone surrogate (U+D800)"),
])
def test_report_create_refuses_a_reason_that_cannot_be_stored(user, video, reason, problem):
    with pytest.raises(ReportRefused, match=f"^the reason {re.escape(problem)}"):
        report_create(generation=video, reporter=user, reason=reason)
    assert not VideoReport.objects.exists() and not AuditEntry.objects.exists()


def test_three_distinct_reporters_hide_it_automatically_and_queue_it_for_review(user, db, video,
                                                                               admin_client):
    # In this studio only the owner and staff can view a video; anyone who can view it can report it.
    staff = [StaffFactory(username=f"staff{i}") for i in range(2)]
    link = media_link(video.pk, "video").removeprefix("http://127.0.0.1:8000")
    owner = Client()
    owner.force_login(user)
    owner.post(f"/generations/{video.pk}/report", {"reason": "first"})
    api_for(staff[0]).post(f"/api/v1/generations/{video.pk}/report/", {"reason": "second"}, format="json")
    api_for(staff[0]).post(f"/api/v1/generations/{video.pk}/report/", {"reason": "second again"}, format="json")
    assert not Generation.objects.get(pk=video.pk).is_hidden  # two distinct reporters so far
    assert fetch(owner, link)[0] == 200  # streamed (filesystem) or via a presigned redirect (S3)
    staff_client = Client()
    staff_client.force_login(staff[1])
    staff_client.post(f"/generations/{video.pk}/report", {"reason": "third"})

    hidden = Generation.objects.get(pk=video.pk)
    assert hidden.is_hidden and hidden.flagged_at is not None
    assert hidden.hidden_reason == "hidden automatically after 3 reports; waiting for review"
    assert owner.get(link).status_code == 404 and owner.get(f"/generations/{video.pk}/video").status_code == 404
    log = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action"))
    assert log == [("alice", "report"), ("system", "flag"), ("staff0", "report"), ("staff1", "report"),
                   ("system", "auto_hide")]
    # …and moderators find it in the review queue and in the audit log
    queue = admin_client.get("/admin/generations/generation/", {"moderation": "review"})
    assert [g.pk for g in queue.context["cl"].result_list] == [video.pk]
    assert "3 reports" in queue.content.decode()
    reported = admin_client.get("/admin/generations/generation/", {"moderation": "reported", "q": "alice"})
    assert [g.pk for g in reported.context["cl"].result_list] == [video.pk]
    assert "3 reports" in reported.content.decode() and "9 reports" not in reported.content.decode()
    audit_page = admin_client.get("/admin/moderation/auditentry/", {"action__exact": "auto_hide"}).content.decode()
    assert "hidden automatically after 3 reports" in audit_page and "system" in audit_page


def test_the_threshold_comes_from_settings(settings, user, django_user_model, video):
    from moderation.services import report_create

    settings.STUDIO_REPORTS_TO_HIDE = 1
    report_create(generation=video, reporter=user, reason="one is enough")
    assert Generation.objects.get(pk=video.pk).is_hidden
