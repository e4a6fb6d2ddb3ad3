"""The web studio through Django's test client: every page, forms and their errors, isolation, CSRF."""
from __future__ import annotations

import io
import json
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
from generations.models import EndpointOverride, Generation, Project
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
    assert "$0.48" in html  # LTX-2.3 pro, 6 s, 1080p
    assert "Budget left" in html and "$50.00" in html
    assert 'id="price-table"' in html and '"2160p": "0.32"' in html
    assert 'accept="image/png,image/jpeg,image/webp,image/avif,image/heif,image/heic,.heic,.heif"' in html


def test_submit_creates_one_job_and_redirects_to_it(alice, user):
    response = alice.post("/new/", form_data())
    generation = Generation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generations/{generation.pk}/"
    assert generation.owner == user and generation.model_id == "fal-ai/ltx-2.3/text-to-video"
    assert generation.input["prompt"] == "A lighthouse in a storm" and generation.cost_usd == Decimal("0.48")


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
    assert generation.model_id == "fal-ai/ltx-2.3/image-to-video"
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


# --- the catalog in the form: aspect ratio, frame rates, end image, refusals ----------------------

def price_table_of(html: str) -> dict:
    found = re.search(r'<script id="price-table" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_the_form_offers_what_ltx_2_3_offers(alice):
    html = alice.get("/new/").content.decode()
    aspects = re.findall(r'<input type="radio" name="aspect_ratio" value="([^"]+)"', html)
    assert aspects == ["16:9", "9:16", "auto"]
    assert re.search(r'value="16:9"[^>]*checked', html)  # text to video's default
    assert "Portrait 9:16" in html and "Landscape 16:9" in html and "Match the image" in html
    assert re.findall(r'<option value="(\d+)"[^>]*>\d+ fps', html) == ["24", "25", "48", "50"]
    assert 'name="end_image"' in html and "End image (optional)" in html
    table = price_table_of(html)
    assert table["models"]["t2v"]["id"] == "fal-ai/ltx-2.3/text-to-video"
    assert table["models"]["t2v"]["fields"]["aspect_ratio"] == ["16:9", "9:16"]
    assert table["models"]["i2v"]["fields"]["aspect_ratio"] == ["auto", "16:9", "9:16"]
    assert table["models"]["i2v"]["defaults"]["aspect_ratio"] == "auto"
    assert table["models"]["i2v-fast"]["fields"]["duration"] == [str(d) for d in range(6, 21, 2)]
    assert table["models"]["i2v"]["end_image"] is True and table["models"]["t2v"]["end_image"] is False
    assert table["models"]["t2v"]["price_per_second"] == {"1080p": "0.08", "1440p": "0.16", "2160p": "0.32"}
    assert table["models"]["t2v"]["refusal"] == ""


def test_the_form_offers_only_landscape_and_25_50_fps_under_ltx_2_0(alice, settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    html = alice.get("/new/").content.decode()
    fields = html[html.index('<form id="generation-form"'):html.index("</form>")]
    assert 'name="aspect_ratio"' not in fields and "9:16" not in fields and "Portrait" not in fields
    assert re.findall(r'<option value="(\d+)"[^>]*>\d+ fps', html) == ["25", "50"]
    assert 'name="end_image"' not in fields
    assert "$0.36" in html  # LTX-2.0 pro, 6 s, 1080p
    table = price_table_of(html)
    assert table["models"]["t2v"]["id"] == "fal-ai/ltx-2/text-to-video"
    assert table["models"]["i2v"]["end_image"] is False and table["models"]["i2v"]["fields"]["aspect_ratio"] == ["16:9"]
    response = alice.post("/new/", form_data())
    assert Generation.objects.get().model_id == "fal-ai/ltx-2/text-to-video" and response.status_code == 302


def test_a_portrait_text_to_video_at_24_fps(alice, user):
    response = alice.post("/new/", form_data(aspect_ratio="9:16", fps="24"))
    generation = Generation.objects.get()
    assert response["Location"] == f"/generations/{generation.pk}/"
    assert generation.model_id == "fal-ai/ltx-2.3/text-to-video"
    assert (generation.input["aspect_ratio"], generation.input["fps"], generation.input["duration"]) == ("9:16", 24, 6)
    assert generation.cost_usd == Decimal("0.48")


def test_an_image_to_video_with_start_and_end_images_stores_both(alice, media_root):
    start = SimpleUploadedFile("start.png", png_bytes(), content_type="image/png")
    end = SimpleUploadedFile("end.jpg", png_bytes((36, 64), fmt="JPEG"), content_type="image/jpeg")
    response = alice.post("/new/", {**form_data(mode="image", aspect_ratio="auto"), "image": start, "end_image": end})
    generation = Generation.objects.get()
    assert response["Location"] == f"/generations/{generation.pk}/"
    assert generation.model_id == "fal-ai/ltx-2.3/image-to-video" and generation.input["aspect_ratio"] == "auto"
    assert generation.input["image_url"] == "studio:start-image"
    assert generation.input["end_image_url"] == "studio:end-image"
    assert (generation.start_image.content_type, generation.start_image.size) == ("image/png", len(png_bytes()))
    assert generation.end_image.content_type == "image/jpeg"
    assert generation.end_image.key.endswith("/end.jpg") and generation.start_image.key.endswith("/start.png")


def test_an_end_image_is_left_out_of_a_text_to_video(alice, media_root):
    end = SimpleUploadedFile("end.png", png_bytes(), content_type="image/png")
    alice.post("/new/", {**form_data(), "end_image": end})
    generation = Generation.objects.get()
    assert "end_image_url" not in generation.input and generation.end_image is None


@pytest.mark.parametrize("overrides, files, field, text", [
    ({"aspect_ratio": "auto"}, {}, "aspect_ratio", "auto&#x27; is not allowed; allowed values: 16:9, 9:16"),
    ({"aspect_ratio": "4:3"}, {}, "aspect_ratio", "Select a valid choice"),
    ({"fps": "30"}, {}, "fps", "Select a valid choice"),
    ({"tier": "fast", "duration": "14", "fps": "48"}, {}, "duration", "only available at 25 fps and 1080p"),
    ({"mode": "image"}, {"end_image": b"<html>not an image</html>"}, "end_image", "not a readable image"),
])
def test_catalog_errors_are_shown_next_to_their_field(alice, user, media_root, overrides, files, field, text):
    uploads = {name: SimpleUploadedFile("x.png", data, content_type="image/png") for name, data in files.items()}
    if overrides.get("mode") == "image":
        uploads["image"] = SimpleUploadedFile("start.png", png_bytes(), content_type="image/png")
    response = alice.post("/new/", {**form_data(**overrides), **uploads})
    assert response.status_code == 200 and Generation.objects.count() == 0
    html = response.content.decode()
    assert re.search(rf'id="id_{field}_error"[^>]*><li>[^<]*{re.escape(text)}', html), (
        html[html.find("errorlist"):][:500])
    assert usage_for(user).spend_usd == 0


def test_a_retired_endpoint_is_a_form_error_naming_its_replacement(alice, user):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", retired=True,
                                    replacement="fal-ai/ltx-2.3/text-to-video/fast")
    page = alice.get("/new/").content.decode()
    refusal = "fal-ai/ltx-2.3/text-to-video has been retired; use fal-ai/ltx-2.3/text-to-video/fast instead"
    assert price_table_of(page)["models"]["t2v"]["refusal"] == refusal
    assert price_table_of(page)["models"]["t2v-fast"]["refusal"] == ""
    response = alice.post("/new/", form_data())
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(rf'class="errorlist nonfield"[^>]*><li>{re.escape(refusal)}</li>', html)
    assert Generation.objects.count() == 0 and usage_for(user).spend_usd == 0 and usage_for(user).active_jobs == 0
    # The replacement still works from the same form.
    alice.post("/new/", form_data(tier="fast"))
    assert Generation.objects.get().model_id == "fal-ai/ltx-2.3/text-to-video/fast"


def test_an_operator_price_shows_in_the_form(alice):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", price_per_second={"1080p": "0.10"})
    html = alice.get("/new/").content.decode()
    assert re.search(r'id="price"[^>]*>\$0\.60<', html)
    assert price_table_of(html)["models"]["t2v"]["price_per_second"]["1080p"] == "0.10"


def test_the_new_page_reads_the_overrides_in_few_queries(alice, django_assert_max_num_queries):
    alice.get("/new/")
    for endpoint_id in ("fal-ai/ltx-2.3/text-to-video", "fal-ai/ltx-2.3/image-to-video",
                        "fal-ai/ltx-2.3/image-to-video/fast", "fal-ai/ltx-2.3/text-to-video/fast"):
        EndpointOverride.objects.create(endpoint_id=endpoint_id, price_per_second={"1080p": "0.09"})
    # Session, user, usage (3), provider switch, projects, the overrides once for the table, once for the price.
    with django_assert_max_num_queries(9):
        assert alice.get("/new/").status_code == 200


@pytest.mark.parametrize("values, price", [
    ({"aspect_ratio": "9:16", "fps": "48"}, Decimal("0.48")),
    ({"aspect_ratio": "auto"}, None),  # text to video cannot match an image
    ({"mode": "image", "aspect_ratio": "auto"}, Decimal("0.36")),
    ({"tier": "fast", "duration": "12", "fps": "48"}, None),
    ({"tier": "fast", "duration": "12", "fps": "25", "aspect_ratio": "9:16"}, Decimal("0.48")),
])
def test_the_form_price_follows_what_the_model_allows(user, values, price):
    from web.forms import GenerationForm

    form = GenerationForm(form_data(**values), user=user)
    assert form.price_usd() == price


def test_edit_and_rerun_carries_aspect_fps_and_the_end_image(alice, user, media_root):
    start = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    end = image_to_data_uri(SimpleUploadedFile("y", png_bytes((36, 64))), max_bytes=10_000_000)
    source, _ = generation_create(owner=user, model="i2v", input={
        "prompt": "From here to there", "image_url": start, "end_image_url": end, "aspect_ratio": "9:16", "fps": 48})
    html = alice.get(f"/new/?from={source.pk}").content.decode()
    assert re.search(r'value="9:16"[^>]*checked', html) and re.search(r'<option value="48" selected', html)
    assert f'name="reuse_end_image_of" value="{source.pk}"' in html
    assert re.search(r'name="keep_end_image" id="id_keep_end_image" checked', html)
    assert f'src="/generations/{source.pk}/end-image"' in html and f'src="/generations/{source.pk}/start-image"' in html
    carried = form_data(mode="image", aspect_ratio="9:16", fps="48", reuse_image_of=str(source.pk),
                        reuse_end_image_of=str(source.pk), keep_end_image="on", idempotency_key="again")
    assert alice.post("/new/", carried).status_code == 302
    rerun = Generation.objects.exclude(pk=source.pk).get()
    assert (rerun.input["aspect_ratio"], rerun.input["fps"]) == ("9:16", 48)
    assert rerun.input["end_image_url"] == "studio:end-image"
    assert rerun.end_image.sha256 == source.end_image.sha256 and rerun.end_image.key != source.end_image.key
    # Unticking "use the original video's end image" leaves it out.
    dropped = {**carried, "idempotency_key": "without-end"}
    del dropped["keep_end_image"]
    alice.post("/new/", dropped)
    last = Generation.objects.exclude(pk__in=[source.pk, rerun.pk]).get()
    assert last.end_image is None and "end_image_url" not in last.input and last.start_image is not None


def test_another_users_end_image_is_not_reused(client, user, other_user, media_root, task_queue):
    start = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    source, _ = generation_create(owner=user, model="i2v", input={
        "prompt": "Mine", "image_url": start, "end_image_url": start})
    client.force_login(other_user)
    own_start = SimpleUploadedFile("start.png", png_bytes(), content_type="image/png")
    client.post("/new/", {**form_data(mode="image", reuse_end_image_of=str(source.pk), keep_end_image="on"),
                          "image": own_start})
    theirs = Generation.objects.get(owner=other_user)
    assert theirs.end_image is None and "end_image_url" not in theirs.input


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


def test_detail_shows_the_endpoint_aspect_and_the_start_and_end_images(client, user, other_user, media_root,
                                                                       task_queue):
    start = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    end = image_to_data_uri(heif_upload(), max_bytes=10_000_000)
    generation, _ = generation_create(owner=user, model="i2v-fast", input={
        "prompt": "Sunrise to sunset", "image_url": start, "end_image_url": end, "fps": 48})
    client.force_login(user)
    html = client.get(f"/generations/{generation.pk}/").content.decode()
    assert 'id="meta-model">LTX-2.3 i2v fast <span class="muted">(fal-ai/ltx-2.3/image-to-video/fast)' in html
    assert re.search(r'id="meta-aspect">Match the image<', html) and "6 s · 1080p · 48 fps" in html
    start_url, end_url = f"/generations/{generation.pk}/start-image", f"/generations/{generation.pk}/end-image"
    assert f'src="{start_url}" alt="Start image"' in html and f'src="{end_url}" alt="End image"' in html
    response = client.get(end_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.size == (480, 270)  # the HEIF end image, shown as JPEG
    Generation.objects.filter(pk=generation.pk).update(is_hidden=True)
    assert client.get(end_url).status_code == 404
    assert 'alt="End image"' not in client.get(f"/generations/{generation.pk}/").content.decode()
    Generation.objects.filter(pk=generation.pk).update(is_hidden=False)
    client.force_login(other_user)
    assert client.get(end_url).status_code == 404 and client.get(start_url).status_code == 404


def test_a_job_without_an_end_image_has_none_to_show(alice, user, media_root):
    start = image_to_data_uri(SimpleUploadedFile("x", png_bytes()), max_bytes=10_000_000)
    generation, _ = generation_create(owner=user, model="i2v", input={"prompt": "Only a start", "image_url": start})
    html = alice.get(f"/generations/{generation.pk}/").content.decode()
    assert 'alt="Start image"' in html and 'alt="End image"' not in html
    assert alice.get(f"/generations/{generation.pk}/end-image").status_code == 404
    assert alice.get(f"/generations/{generation.pk}/start-image").status_code == 200


def test_a_portrait_video_is_laid_out_as_portrait(alice, user, media_root):
    project = project_get_or_create(user, "Vertical")
    portrait = GenerationFactory(owner=user, project=project, prompt="Tall", input={"aspect_ratio": "9:16"},
                                 with_video=True, stored_files=True, status="succeeded",
                                 video_fields={"width": 1080, "height": 1920})
    landscape = succeeded(user, project=project, prompt="Wide")
    queued = GenerationFactory(owner=user, project=project, prompt="Tall, not made yet", input={"aspect_ratio": "9:16"})
    html = alice.get(f"/generations/{portrait.pk}/").content.decode()
    assert 'style="--w: 1080; --h: 1920"' in html and "1080×1920 (portrait)" in html
    assert re.search(r'id="meta-aspect">Portrait 9:16<', html)
    wide = alice.get(f"/generations/{landscape.pk}/").content.decode()
    assert 'style="--w: 1920; --h: 1080"' in wide and "(portrait)" not in wide
    for page in ("/", f"/projects/{project.pk}/"):
        listing = alice.get(page).content.decode()
        cards = {pk: listing[listing.index(f'data-generation="{pk}"'):][:600]
                 for pk in (portrait.pk, landscape.pk, queued.pk)}
        assert '<a class="thumb portrait"' in cards[portrait.pk] and 'width="1080" height="1920"' in cards[portrait.pk]
        assert '<a class="thumb"' in cards[landscape.pk] and 'width="1920" height="1080"' in cards[landscape.pk]
        assert '<a class="thumb portrait"' in cards[queued.pk] and "· portrait ·" in cards[queued.pk]


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
    assert "$0.48 of $50.00" in html and "1 of 5" in html and "15.6\xa0MB of 9.3\xa0GB" in html


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
