"""The web studio through Django's test client: every page, forms and their errors, isolation, CSRF."""
from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.keys import api_key_create
from accounts.models import ApiKey
from generations.images import ImageRejected, image_to_data_uri
from generations.models import Generation, Project
from generations.services.create import generation_create
from generations.services.projects import project_get_or_create
from storage.models import UserQuota
from storage.quotas import usage_for
from tests.factories import GenerationFactory
from tests.media_fetch import fetch

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client, user, task_queue):
    client.force_login(user)
    return client


def form_data(**overrides):
    data = {"prompt": "A lighthouse in a storm", "mode": "text", "tier": "pro", "duration": "6",
            "resolution": "1080p", "fps": "25", "generate_audio": "on", "project": "", "idempotency_key": "key-1"}
    data.update(overrides)
    return data


def png_bytes(size=(64, 36), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def succeeded(owner, project=None, prompt="A finished video") -> Generation:
    return GenerationFactory(owner=owner, project=project, prompt=prompt, with_video=True, stored_files=True,
                             video_fields={"audio_codec": "aac"}, status="succeeded", finished_at=timezone.now())


# --- accounts -----------------------------------------------------------------------------------

def test_pages_require_sign_in(client, db):
    for name in ("generations:list", "generations:new", "generations:projects", "generations:usage",
                 "accounts:api-keys"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_sign_in_and_out(client, user):
    page = client.get("/accounts/login/")
    assert b"csrfmiddlewaretoken" in page.content and b'for="id_username"' in page.content
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/accounts/logout/").status_code in (200, 302)
    assert client.get("/").status_code == 302


def test_wrong_password_gives_the_generic_message(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert b"Please enter a correct username and password" in response.content


def test_suspended_user_is_told_so_but_only_with_the_right_password(client, user):
    user.is_active = False
    user.save()
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 200 and b"This account is suspended" in response.content
    assert "_auth_user_id" not in client.session
    wrong = client.post("/accounts/login/", {"username": "alice", "password": "guess"})
    assert b"suspended" not in wrong.content


def test_signup_creates_and_signs_in(client, db, django_user_model):
    assert b"Create an account" in client.get("/accounts/login/").content
    response = client.post("/accounts/signup/", {"username": "carol", "email": "", "password1": "a-Strong-pass-42",
                                                 "password2": "a-Strong-pass-42"})
    assert response.status_code == 302
    assert django_user_model.objects.filter(username="carol").exists()
    assert client.get("/").status_code == 200


def test_signup_can_be_switched_off(client, db, settings):
    settings.STUDIO_ALLOW_SIGNUP = False
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", {"username": "x"}).status_code == 404
    assert b"Create an account" not in client.get("/accounts/login/").content


def test_password_change_and_reset(alice, user, mailoutbox):
    response = alice.post("/accounts/password_change/", {"old_password": "alice-password",
                                                         "new_password1": "n3w-Secret-pass",
                                                         "new_password2": "n3w-Secret-pass"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("n3w-Secret-pass")
    user.email = "alice@example.com"
    user.save()
    anonymous = Client()
    assert anonymous.post("/accounts/password_reset/", {"email": "alice@example.com"}).status_code == 302
    assert len(mailoutbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    form_page = anonymous.get(link, follow=True)
    assert b"Choose a new password" in form_page.content


# --- new generation -----------------------------------------------------------------------------

def test_new_form_offers_valid_choices_the_price_and_budget(alice):
    page = alice.get("/new/")
    html = page.content.decode()
    assert page.status_code == 200 and "csrfmiddlewaretoken" in html
    assert 'name="idempotency_key"' in html
    assert "$0.36" in html  # pro, 6 s, 1080p
    assert "Budget left" in html and "$50.00" in html
    assert 'id="price-table"' in html and '"2160p": "0.24"' in html
    assert 'accept="image/png,image/jpeg,image/webp,image/avif,image/heif,image/heic,.heic,.heif"' in html


def test_submit_creates_one_job_and_redirects_to_it(alice, user):
    response = alice.post("/new/", form_data())
    generation = Generation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generations/{generation.pk}/"
    assert generation.owner == user and generation.model_id == "fal-ai/ltx-2/text-to-video"
    assert generation.input["prompt"] == "A lighthouse in a storm" and generation.cost_usd == Decimal("0.36")


def test_submitting_twice_creates_one_job(alice):
    first = alice.post("/new/", form_data(idempotency_key="same"))
    second = alice.post("/new/", form_data(idempotency_key="same"))
    assert Generation.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_resubmitting_a_key_with_other_settings_asks_to_check_them(alice):
    alice.post("/new/", form_data(idempotency_key="same"))
    response = alice.post("/new/", form_data(idempotency_key="same", duration="8"))
    assert b"already submitted" in response.content and Generation.objects.count() == 1
    assert 'value="same"' not in response.content.decode()  # a fresh key lets the user submit the new settings


def test_fast_tier_and_project(alice, user):
    project = project_get_or_create(user, "Trailers")
    alice.post("/new/", form_data(tier="fast", duration="20", project=str(project.pk)))
    generation = Generation.objects.get()
    assert generation.model_id.endswith("/fast") and generation.project == project
    assert generation.cost_usd == Decimal("0.80")


@pytest.mark.parametrize("overrides, field, text", [
    ({"prompt": ""}, "prompt", "This field is required"),
    ({"prompt": "x" * 2501}, "prompt", "at most 2500"),
    ({"duration": "12"}, "duration", "not allowed; allowed values: 6, 8, 10"),
    ({"tier": "fast", "duration": "12", "fps": "50"}, "duration", "only available at 25 fps and 1080p"),
    ({"resolution": "720p"}, "resolution", "Select a valid choice"),
    ({"mode": "image"}, "image", "Choose a start image"),
])
def test_errors_are_shown_next_to_their_field(alice, overrides, field, text):
    response = alice.post("/new/", form_data(**overrides))
    assert response.status_code == 200 and Generation.objects.count() == 0
    html = response.content.decode()
    assert re.search(rf'id="id_{field}_error"[^>]*><li>[^<]*{re.escape(text)}', html), (
        html[html.find("errorlist"):][:500])


def test_quota_error_is_a_form_error(alice, user):
    UserQuota.objects.create(user=user, monthly_spend_usd=Decimal("0.10"))
    response = alice.post("/new/", form_data())
    assert Generation.objects.count() == 0
    assert b"Monthly spend limit reached" in response.content and b'class="errorlist nonfield"' in response.content


def test_image_to_video_with_an_upload(alice, media_root):
    image = SimpleUploadedFile("start.png", png_bytes(), content_type="image/png")
    response = alice.post("/new/", {**form_data(mode="image"), "image": image})
    assert response.status_code == 302
    generation = Generation.objects.get()
    assert generation.model_id == "fal-ai/ltx-2/image-to-video"
    # The start image is kept as its own stored object; the input holds a short reference, not the bytes.
    assert generation.input["image_url"] == "studio:start-image"
    assert generation.start_image.content_type == "image/png" and generation.start_image.size == len(png_bytes())


def test_a_renamed_non_image_is_rejected(alice):
    fake = SimpleUploadedFile("start.png", b"<html>not an image</html>", content_type="image/png")
    response = alice.post("/new/", {**form_data(mode="image"), "image": fake})
    assert b"not a readable image" in response.content and Generation.objects.count() == 0


def test_image_checks():
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("AVIF", "image/avif")):
        uri = image_to_data_uri(SimpleUploadedFile("x", png_bytes(fmt=fmt)), max_bytes=10_000_000)
        assert uri.startswith(f"data:{mime};base64,")
    with pytest.raises(ImageRejected, match="GIF images are not supported"):
        image_to_data_uri(SimpleUploadedFile("x", png_bytes(fmt="GIF")), max_bytes=10_000_000)
    with pytest.raises(ImageRejected, match="at most"):
        image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10)
    truncated = png_bytes((400, 400))[:300]
    with pytest.raises(ImageRejected, match="not a readable image"):
        image_to_data_uri(SimpleUploadedFile("x", truncated), max_bytes=10_000_000)


def test_edit_and_rerun_prefills_the_form(alice, user):
    generation, _ = generation_create(owner=user, model="t2v-fast", input={"prompt": "Old prompt", "duration": 8,
                                                                          "fps": 50, "generate_audio": False})
    html = alice.get(f"/new/?from={generation.pk}").content.decode()
    assert "Old prompt" in html
    assert re.search(r'value="fast"[^>]*checked', html) and re.search(r'<option value="8" selected', html)
    assert re.search(r'<option value="50" selected', html)
    assert 'name="generate_audio" id="id_generate_audio" checked' not in html


def test_edit_and_rerun_of_an_image_job_reuses_its_image(alice, user, media_root):
    data_uri = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    source, _ = generation_create(owner=user, model="i2v", input={"prompt": "Start", "image_url": data_uri})
    response = alice.post("/new/", form_data(mode="image", reuse_image_of=str(source.pk), idempotency_key="k2"))
    assert response.status_code == 302
    rerun = Generation.objects.exclude(pk=source.pk).get()
    assert rerun.input["image_url"] == "studio:start-image"
    assert rerun.start_image.sha256 == source.start_image.sha256 and rerun.start_image.key != source.start_image.key


# --- job view, gallery, player ------------------------------------------------------------------

def test_detail_and_status_json(alice, user):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    Generation.objects.filter(pk=generation.pk).update(status="queued", queue_position=3,
                                                       logs=[{"message": "warming up", "level": "INFO"}])
    html = alice.get(f"/generations/{generation.pk}/").content.decode()
    assert "Queued" in html and "warming up" in html and 'id="cancel"' in html and "csrfmiddlewaretoken" in html
    data = alice.get(f"/generations/{generation.pk}/status").json()
    assert data["status"] == "queued" and data["queue_position"] == 3 and data["logs"] == ["warming up"]
    assert data["terminal"] is False and data["elapsed_seconds"] >= 0


def test_cancel(alice, user):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    response = alice.post(f"/generations/{generation.pk}/cancel")
    assert response.status_code == 302
    generation.refresh_from_db()
    assert generation.status == "canceled"
    assert alice.get(f"/generations/{generation.pk}/status").json()["terminal"] is True
    assert alice.get(f"/generations/{generation.pk}/cancel").status_code == 405


def test_failed_job_shows_its_reason(alice, user):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    Generation.objects.filter(pk=generation.pk).update(status="failed", error_message="fal could not make this video")
    html = alice.get(f"/generations/{generation.pk}/").content.decode()
    assert "Failed: " in html and "fal could not make this video" in html


def test_player_metadata_download_and_poster(alice, user, media_root):
    generation = succeeded(user)
    html = alice.get(f"/generations/{generation.pk}/").content.decode()
    assert f'src="/generations/{generation.pk}/video"' in html and "<video" in html and "controls" in html
    assert "1920×1080" in html and "150" in html and "6 s" in html and "2.0\xa0KB" in html and "aac" in html
    assert f'href="/generations/{generation.pk}/video?download=1"' in html
    listing = alice.get("/").content.decode()
    assert f'src="/generations/{generation.pk}/poster"' in listing
    status, headers, _ = fetch(alice, f"/generations/{generation.pk}/video?download=1")
    assert status == 200
    assert "attachment" in headers["Content-Disposition"] and "ltx-video.mp4" in headers["Content-Disposition"]
    status, _, body = fetch(alice, f"/generations/{generation.pk}/video", Range="bytes=0-9")
    assert (status, len(body)) == (206, 10)


def test_delete_needs_confirmation_and_frees_usage(alice, user, media_root):
    generation = succeeded(user)
    before = usage_for(user).bytes
    page = alice.get(f"/generations/{generation.pk}/delete")
    assert b"Delete this video?" in page.content and Generation.objects.filter(pk=generation.pk).exists()
    response = alice.post(f"/generations/{generation.pk}/delete")
    assert response.status_code == 302 and not Generation.objects.filter(pk=generation.pk).exists()
    assert usage_for(user).bytes < before or before == 0


def test_active_jobs_cannot_be_deleted(alice, user):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    alice.post(f"/generations/{generation.pk}/delete")
    assert Generation.objects.filter(pk=generation.pk).exists()


def test_rerun_creates_one_new_job_with_the_same_input(alice, user, media_root):
    generation = succeeded(user, prompt="Again please")
    first = alice.post(f"/generations/{generation.pk}/rerun", {"idempotency_key": "rerun-1"})
    second = alice.post(f"/generations/{generation.pk}/rerun", {"idempotency_key": "rerun-1"})
    assert first["Location"] == second["Location"] and Generation.objects.count() == 2
    new = Generation.objects.exclude(pk=generation.pk).get()
    assert new.input == generation.input and new.status == "pending"
    Generation.objects.filter(pk=new.pk).update(status="failed")
    alice.post(f"/generations/{new.pk}/rerun", {"idempotency_key": "rerun-2"})
    assert Generation.objects.count() == 3


def test_rerun_of_an_image_job_with_an_uploaded_start_image_reruns_it(alice, user, media_root):
    """The job stores its uploaded image as its own object (`image_url` = studio:start-image); a re-run
    hands the same bytes to the new job instead of failing to validate that reference."""
    data_uri = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    source, _ = generation_create(owner=user, model="i2v", input={"prompt": "The fox looks up", "image_url": data_uri})
    Generation.objects.filter(pk=source.pk).update(status="failed")
    response = alice.post(f"/generations/{source.pk}/rerun", {"idempotency_key": "rerun-image"})
    rerun = Generation.objects.exclude(pk=source.pk).get()
    assert response["Location"] == f"/generations/{rerun.pk}/"
    assert (rerun.model_id, rerun.input) == (source.model_id, source.input)
    assert rerun.start_image.sha256 == source.start_image.sha256 and rerun.start_image.key != source.start_image.key


def test_an_active_job_is_not_rerun(alice, user):
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    response = alice.post(f"/generations/{generation.pk}/rerun", {"idempotency_key": "too-soon"}, follow=True)
    assert "still running" in response.content.decode()
    assert Generation.objects.count() == 1


# --- projects, usage, keys ----------------------------------------------------------------------

def test_projects_create_rename_page_and_delete(alice, user, media_root):
    response = alice.post("/projects/", {"name": "Shorts"})
    project = Project.objects.get(owner=user, name="Shorts")
    assert response["Location"] == f"/projects/{project.pk}/"
    assert b"already have a project" in alice.post("/projects/", {"name": "Shorts"}).content
    alice.post(f"/projects/{project.pk}/", {"name": "Short films"})
    project.refresh_from_db()
    assert project.name == "Short films"
    UserQuota.objects.create(user=user, active_jobs=30)
    for i in range(26):
        generation_create(owner=user, model="t2v", input={"prompt": f"clip {i:02d}"}, project=project)
    Generation.objects.update(status="succeeded")
    first = alice.get(f"/projects/{project.pk}/").content.decode()
    assert "clip 25" in first and "clip 00" not in first and "Page 1 of 2" in first
    assert "clip 00" in alice.get(f"/projects/{project.pk}/?page=2").content.decode()
    assert b"26 videos" in alice.get(f"/projects/{project.pk}/delete").content
    alice.post(f"/projects/{project.pk}/delete")
    assert not Project.objects.filter(pk=project.pk).exists() and Generation.objects.count() == 0


def test_busy_project_is_not_deleted(alice, user):
    project = project_get_or_create(user, "Busy")
    generation_create(owner=user, model="t2v", input={"prompt": "running"}, project=project)
    response = alice.post(f"/projects/{project.pk}/delete", follow=True)
    assert b"Not deleted" in response.content and Project.objects.filter(pk=project.pk).exists()


def test_usage_page(alice, user):
    generation_create(owner=user, model="t2v", input={"prompt": "Waves"})
    html = alice.get("/usage/").content.decode()
    assert "$0.36 of $50.00" in html and "1 of 5" in html and "15.6\xa0MB of 9.3\xa0GB" in html


def test_api_keys_create_shown_once_list_and_revoke(alice, user):
    response = alice.post("/accounts/keys/", {"name": "laptop"}, follow=True)
    key = ApiKey.objects.get(user=user)
    raw = re.search(r'id="new-key-value">(ltx_[^<]+)<', response.content.decode()).group(1)
    assert raw.startswith(key.prefix) and "Copy" in response.content.decode()
    again = alice.get("/accounts/keys/").content.decode()
    assert raw not in again and key.prefix in again and "never" in again
    alice.post(f"/accounts/keys/{key.pk}/revoke")
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- isolation and CSRF -------------------------------------------------------------------------

def test_other_users_objects_are_404(client, user, other_user, media_root, task_queue):
    generation = succeeded(user)
    project = generation.project
    key, _ = api_key_create(user=user, name="mine")
    client.force_login(other_user)
    for url in (f"/generations/{generation.pk}/", f"/generations/{generation.pk}/status",
                f"/generations/{generation.pk}/delete", f"/generations/{generation.pk}/video",
                f"/generations/{generation.pk}/poster", f"/projects/{project.pk}/", f"/projects/{project.pk}/delete"):
        assert client.get(url).status_code == 404, url
    for url in (f"/generations/{generation.pk}/cancel", f"/generations/{generation.pk}/rerun",
                f"/generations/{generation.pk}/delete", f"/projects/{project.pk}/", f"/projects/{project.pk}/delete",
                f"/accounts/keys/{key.pk}/revoke"):
        assert client.post(url).status_code == 404, url
    assert generation.prompt not in client.get("/").content.decode()
    assert "Old prompt" not in client.get(f"/new/?from={generation.pk}").content.decode()
    assert Generation.objects.filter(pk=generation.pk).exists() and ApiKey.objects.get().revoked_at is None


def test_forms_are_csrf_protected(user, task_queue):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/new/", form_data()).status_code == 403
    assert client.post("/projects/", {"name": "x"}).status_code == 403
    assert client.post("/accounts/keys/", {"name": "x"}).status_code == 403
    for url in ("/new/", "/projects/", "/accounts/keys/", "/accounts/password_change/"):
        assert b"csrfmiddlewaretoken" in client.get(url).content, url


def heif_upload(name="photo.heic"):
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (30, 90, 160)).save(buffer, format="HEIF")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/heic")


def test_heif_start_images_are_accepted_and_previewed_by_the_server(alice):
    preview = alice.post(reverse("generations:image-preview"), {"image": heif_upload()})
    assert preview.status_code == 200 and preview["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(preview.content)) as image:
        assert image.format == "JPEG" and max(image.size) == 480
    assert image_to_data_uri(heif_upload(), max_bytes=10_000_000).startswith("data:image/heif;base64,")


def test_the_preview_endpoint_rejects_non_images_and_needs_sign_in(alice):
    not_image = SimpleUploadedFile("x.heic", b"plain text", content_type="image/heic")
    response = alice.post(reverse("generations:image-preview"), {"image": not_image})
    assert response.status_code == 415 and "HEIF" in response.content.decode()
    assert Client().post(reverse("generations:image-preview"), {"image": heif_upload()}).status_code == 302
