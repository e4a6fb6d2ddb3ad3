"""The studio in a real browser: sign in and the lockout after wrong passwords, create a project,
generate, watch it live, play, seek, download, delete; image-to-video; inline errors; cancel;
isolation. Screenshots of the main pages at laptop and phone sizes go to test-artifacts/screenshots/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from generations.models import Generation
from generations.services.create import generation_create
from tests.processes import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WAIT_MS = 30_000
SHOTS = ROOT / "test-artifacts" / "screenshots"
SIZES = {"laptop": (1280, 800), "phone": (390, 844)}


def sign_in(page: Page, base: str, username: str = "alice", password: str = "alice-password") -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/", timeout=WAIT_MS)


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def submit_new(page: Page, base: str, prompt: str) -> str:
    page.goto(f"{base}/new/")
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    return page.url


def test_generate_watch_play_seek_download_delete(studio, page: Page, user):
    page.set_default_timeout(WAIT_MS)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{studio}/accounts/login/")
    shoot(page, "login")
    sign_in(page, studio)

    page.goto(f"{studio}/projects/")
    page.get_by_label("Name").fill("Trailer")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Trailer")).to_be_visible()
    shoot(page, "projects")
    page.locator("main").get_by_role("link", name="New video").click()
    expect(page.get_by_label("Project")).to_have_value(re.compile(r"[0-9a-f-]{36}"))

    # A job ahead of ours on the simulator's single runner, so ours waits in the queue.
    generation_create(owner=user, model="t2v", input={"prompt": "A job ahead in the queue"})
    page.get_by_label("Prompt").fill("A red fox running through fresh snow at dawn")
    expect(page.locator("#price")).to_have_text("$0.48")
    page.get_by_label("Resolution").select_option("1440p")
    expect(page.locator("#price")).to_have_text("$0.96")
    page.get_by_label("Resolution").select_option("1080p")
    shoot(page, "new")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    url = page.url
    generation = Generation.objects.get(pk=url.rstrip("/").rsplit("/", 1)[1])
    assert generation.project.name == "Trailer"

    # Live updates: the status text changes while the page (and its URL) stays the same, over the
    # page's event stream, without polling the status URL.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.evaluate("window.__sameDocument = true")
    status = page.locator("#status")
    seen = [status.text_content().strip()]
    page.wait_for_function("(first) => document.querySelector('#status').textContent.trim() !== first",
                           arg=seen[0], timeout=WAIT_MS)
    seen.append(status.text_content().strip())
    assert page.evaluate("window.__sameDocument === true") and page.url == url
    if page.locator("#queue-position").is_visible():
        seen.append(page.locator("#queue-position").inner_text())
        shoot(page, "detail-queued")
    assert seen[0] != seen[1], seen
    assert not [url for url in asked if url.endswith("/status")], asked

    # Finished: the page shows the player (after its one reload) and plays the stored MP4 with seeking.
    video = page.locator("video#player")
    expect(video).to_be_visible(timeout=60_000)
    assert page.url == url
    page.evaluate("() => { const v = document.querySelector('#player'); "
                  "v.preload = 'auto'; v.muted = true; v.play(); }")
    page.wait_for_function("document.querySelector('#player').readyState === 4", timeout=WAIT_MS)
    assert abs(page.evaluate("document.querySelector('#player').duration") - 6) < 0.1
    landed = page.evaluate("""() => new Promise((resolve) => {
        const v = document.querySelector('#player'); v.pause();
        v.addEventListener('seeked', () => resolve(v.currentTime), {once: true}); v.currentTime = 3; })""")
    assert abs(landed - 3) < 0.5
    expect(page.locator("#meta-duration")).to_have_text("6 s")
    shoot(page, "detail-player")

    generation.refresh_from_db()
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename == generation.video.file_name
    assert download.value.suggested_filename.endswith(".mp4")

    page.goto(f"{studio}/")
    expect(page.locator("article.card img").first).to_be_visible()
    shoot(page, "videos")
    page.goto(f"{studio}/usage/")
    shoot(page, "usage")
    used_before = page.locator("[data-usage=bytes]").inner_text()
    page.goto(url)
    page.locator("#delete").click()
    shoot(page, "confirm-delete")
    page.locator("#confirm-delete").click()
    expect(page.get_by_text("Video deleted.")).to_be_visible()
    page.goto(f"{studio}/usage/")
    assert page.locator("[data-usage=bytes]").inner_text() != used_before
    assert not Generation.objects.filter(pk=generation.pk).exists()

    page.goto(f"{studio}/accounts/keys/")
    page.get_by_label("Name").fill("laptop script")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key-value")).to_contain_text("ltx_")
    shoot(page, "api-keys")


def test_the_gallery_cards_follow_their_jobs_without_a_reload(studio, page: Page, user):
    # given: two jobs on the simulator's single runner (2 s each), so the second waits in its queue
    page.set_default_timeout(WAIT_MS)
    sign_in(page, studio)
    first, _ = generation_create(owner=user, model="t2v", input={"prompt": "A heron lifts off the water"})
    second, _ = generation_create(owner=user, model="t2v", input={"prompt": "Rain on a tin roof at night"})

    # when: the gallery is open while they run
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{studio}/")
    page.evaluate("window.__sameDocument = true")
    cards = [page.locator(f'article.card[data-generation="{g.pk}"]') for g in (first, second)]
    for card in cards:
        expect(card).to_have_attribute("data-live", "")

    # then: each card turns into the finished video's card, poster and all, in the same document
    for card in cards:
        expect(card.locator("img")).to_be_visible(timeout=60_000)
        expect(card.locator(".status")).to_have_text("Succeeded")
        expect(card).not_to_have_attribute("data-live", "")
    assert page.evaluate("window.__sameDocument === true")
    assert page.evaluate("document.querySelector('article.card img').naturalWidth") > 0
    streams = [url for url in asked if "/generations/events?" in url]
    assert streams and str(first.pk) in streams[0] and str(second.pk) in streams[0], asked  # one for both
    assert len([url for url in asked if url.rstrip("/") == studio]) == 1, asked  # the page loaded once
    shoot(page, "videos-live")


def test_image_to_video_with_a_previewed_upload(studio, page: Page, user, tmp_path):
    page.set_default_timeout(WAIT_MS)
    image, end_image = tmp_path / "start.png", tmp_path / "end.heic"
    Image.new("RGB", (320, 180), (30, 120, 200)).save(image)
    Image.new("RGB", (320, 180), (200, 120, 30)).save(end_image, format="HEIF")
    sign_in(page, studio)
    page.goto(f"{studio}/new/")
    expect(page.locator("#id_image")).to_be_hidden()
    expect(page.get_by_label("Match the image")).to_be_hidden()  # text to video has no image to match
    expect(page.locator("#image-preview")).to_be_hidden()
    page.get_by_label("Image to video").check()
    # Image to video starts on its default, "match the image"; the preview frame follows the image's shape.
    expect(page.get_by_label("Match the image")).to_be_checked()
    page.locator("#id_image").set_input_files(str(image))
    expect(page.locator("#image-preview")).to_be_visible()
    assert page.evaluate("document.querySelector('#image-preview').naturalWidth") == 320
    expect(page.locator("#frame")).to_have_attribute("data-orientation", "landscape")
    # A HEIF end image: browsers cannot show it, so its preview is the studio's JPEG of it.
    page.locator("#id_end_image").set_input_files(str(end_image))
    expect(page.locator("#end-image-preview")).to_be_visible()
    assert page.evaluate("document.querySelector('#end-image-preview').src").startswith("blob:")
    page.wait_for_function("document.querySelector('#end-image-preview').naturalWidth === 320")
    page.get_by_label("Fast").check()
    page.get_by_label("Duration").select_option("20")
    expect(page.locator("#id_fps option[value='50']")).to_be_disabled()
    expect(page.locator("#price")).to_have_text("$0.80")
    page.get_by_label("Prompt").fill("The still comes alive: waves roll in")
    shoot(page, "new-image")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    generation = Generation.objects.get()
    assert generation.model_id == "fal-ai/ltx-2.3/image-to-video/fast"
    assert generation.input["image_url"] == "studio:start-image" and generation.start_image is not None
    assert generation.input["end_image_url"] == "studio:end-image" and generation.end_image is not None
    assert (generation.input["duration"], generation.input["aspect_ratio"]) == (20, "auto")
    expect(page.locator("#start-image img")).to_be_visible()
    expect(page.locator("#end-image img")).to_be_visible()
    assert page.evaluate("document.querySelector('#end-image img').naturalWidth") == 320


def shoot_into(page: Page, folder: Path, name: str) -> list[Path]:
    """Full-page screenshots of the current page at desktop and phone sizes into `folder`; the
    viewport is left at phone size."""
    shots = []
    for size, (width, height) in (("desktop", (1280, 800)), ("phone", (390, 844))):
        page.set_viewport_size({"width": width, "height": height})
        shots.append(folder / f"{name}-{size}.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
    return shots


def player_box(page: Page) -> dict[str, float]:
    box = page.locator("video#player").bounding_box()
    assert box is not None
    return box


def test_a_portrait_video_made_on_a_phone(studio, page: Page, user, tmp_path):
    """LTX-2.3 text to video in 9:16 from the form at phone width: the simulator renders it portrait,
    the player's box on the page is portrait (and fits the screen), and so is its gallery card."""
    page.set_default_timeout(WAIT_MS)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, studio)
    page.goto(f"{studio}/new/")
    page.get_by_label("Prompt").fill("A lighthouse keeper climbs the spiral stairs at night")
    expect(page.get_by_label("Landscape 16:9")).to_be_checked()
    page.get_by_label("Portrait 9:16").check()
    expect(page.locator("#frame")).to_have_attribute("data-orientation", "portrait")
    page.get_by_label("Frame rate").select_option("24")
    expect(page.locator("#output-size")).to_have_text("1080 × 1920 · 24 fps · 6 s")
    expect(page.locator("#price")).to_have_text("$0.48")
    frame = page.locator("#frame").bounding_box()
    assert frame is not None and frame["height"] > frame["width"]
    shoot_into(page, tmp_path, "new-portrait")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    generation = Generation.objects.get()
    assert generation.model_id == "fal-ai/ltx-2.3/text-to-video"
    assert (generation.input["aspect_ratio"], generation.input["fps"]) == ("9:16", 24)

    expect(page.locator("#status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("video#player")).to_be_visible()
    page.evaluate("() => { const v = document.querySelector('#player'); "
                  "v.preload = 'auto'; v.muted = true; v.play(); }")
    page.wait_for_function("document.querySelector('#player').readyState >= 2", timeout=WAIT_MS)
    width, height = page.evaluate("() => { const v = document.querySelector('#player'); "
                                  "return [v.videoWidth, v.videoHeight]; }")
    assert 0 < width < height, (width, height)
    generation.refresh_from_db()
    assert generation.video is not None and (generation.video.width, generation.video.height) == (width, height)
    assert generation.video.fps == 24
    box = player_box(page)
    assert box["height"] > box["width"] and box["width"] <= 390 and box["height"] <= 0.7 * 844 + 1, box
    expect(page.locator("#meta-aspect")).to_have_text("Portrait 9:16")
    expect(page.locator("#meta-model")).to_contain_text("LTX-2.3 t2v")
    detail_shots = shoot_into(page, tmp_path, "detail-portrait")
    page.set_viewport_size({"width": 1280, "height": 800})
    box = player_box(page)
    assert box["height"] > box["width"] and box["height"] <= 0.7 * 800 + 1, box  # not three screens tall

    page.goto(f"{studio}/")
    card = page.locator(f'article[data-generation="{generation.pk}"]')
    poster = card.locator(".thumb img")
    expect(poster).to_be_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=poster.element_handle())
    assert page.evaluate("(img) => img.naturalWidth < img.naturalHeight", poster.element_handle())
    for size, (view_width, view_height) in (("desktop", (1280, 800)), ("phone", (390, 844))):
        page.set_viewport_size({"width": view_width, "height": view_height})
        shown = poster.bounding_box()
        assert shown is not None and shown["height"] > shown["width"], (size, shown)
    gallery_shots = shoot_into(page, tmp_path, "gallery-portrait")
    assert all(shot.stat().st_size > 0 for shot in detail_shots + gallery_shots)


def test_server_side_errors_are_shown_inline(studio, page: Page, user):
    page.set_default_timeout(WAIT_MS)
    sign_in(page, studio)
    page.goto(f"{studio}/new/")
    page.get_by_role("button", name="Generate video").click()
    expect(page.locator("#id_prompt_error")).to_contain_text("This field is required")
    # Bypass the page's script: a 12 s video is not offered for the pro tier.
    page.get_by_label("Prompt").fill("Too long for pro")
    page.evaluate("""() => { const s = document.querySelector('#id_duration');
        for (const o of s.options) { o.disabled = false; } s.value = '12';
        document.querySelector('#generation-form').submit(); }""")
    expect(page.locator("#id_duration_error")).to_contain_text("allowed values: 6, 8, 10")
    shoot(page, "new-errors")
    assert Generation.objects.count() == 0


def test_repeated_wrong_passwords_end_on_the_lockout_page(live_server, page: Page, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    page.set_default_timeout(WAIT_MS)

    def try_password(password: str) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    try_password("first-guess")
    expect(page.locator("#login-form")).to_contain_text("Please enter a correct username and password")
    try_password("second-guess")
    expect(page.get_by_role("heading", name="Too many sign-in attempts")).to_be_visible()
    expect(page.locator("#locked-out")).to_contain_text("paused for 15 minutes")
    shoot(page, "locked-out")
    try_password("alice-password")
    expect(page.get_by_role("heading", name="Too many sign-in attempts")).to_be_visible()
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r".*/accounts/login/\?next=/$"))


def test_cancel_a_queued_job_and_other_users_get_404(studio, page: Page, browser, user, other_user):
    page.set_default_timeout(WAIT_MS)
    sign_in(page, studio)
    submit_new(page, studio, "First job takes the only runner")
    second = submit_new(page, studio, "Second job waits in the queue")
    expect(page.locator("#status")).to_have_text("Queued", timeout=WAIT_MS)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_have_text("Canceled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert Generation.objects.get(pk=second.rstrip("/").rsplit("/", 1)[1]).status == "canceled"

    context = browser.new_context()
    try:
        intruder = context.new_page()
        sign_in(intruder, studio, "bob", "bob-password")
        assert intruder.goto(second).status == 404
        assert intruder.goto(second + "status").status == 404
    finally:
        context.close()
