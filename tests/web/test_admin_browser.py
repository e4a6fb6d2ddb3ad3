"""The admin in a real browser: a superuser signs in, filters the generation list, plays a video
inline on its detail page and hides it; the owner's page then no longer plays it."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from generations.models import Generation
from generations.services.create import generation_create
from moderation.models import AuditEntry
from tests.conftest import wait_until
from tests.factories import SuperuserFactory
from tests.web.test_browser import WAIT_MS, shoot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_filter_play_inline_and_hide(studio, page: Page, browser, user, db):
    page.set_default_timeout(WAIT_MS)
    SuperuserFactory(username="root", password="root-password")
    video, _ = generation_create(owner=user, model="t2v", input={"prompt": "A red fox in fresh snow"})
    broken, _ = generation_create(owner=user, model="t2v", input={"prompt": "[sim:422] a broken job"})
    wait_until(lambda: set(Generation.objects.values_list("status", flat=True)) == {"succeeded", "failed"},
               timeout=60)

    page.goto(f"{studio}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#operations")).to_be_visible()
    page.goto(f"{studio}/admin/generations/generation/")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    page.locator("#changelist-filter").get_by_role("link", name="Succeeded", exact=True).click()
    expect(page).to_have_url(f"{studio}/admin/generations/generation/?status__exact=succeeded")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    shoot(page, "admin-generations")
    page.locator("#result_list tbody tr").first.get_by_role("link", name=str(video.pk)[:8]).click()

    player = page.locator("video#admin-player")
    expect(player).to_be_visible()
    expect(page.locator("img#admin-poster")).to_be_visible()
    page.evaluate("() => { const v = document.querySelector('#admin-player'); "
                  "v.preload = 'auto'; v.muted = true; v.play(); }")
    page.wait_for_function("document.querySelector('#admin-player').readyState >= 2", timeout=WAIT_MS)
    assert abs(page.evaluate("document.querySelector('#admin-player').duration") - 6) < 0.1
    assert page.evaluate("document.querySelector('#admin-poster').naturalWidth") > 0
    shoot(page, "admin-generation")

    page.locator("#action-hide").click()
    page.locator("#id_reason").fill("Reported as graphic")
    page.locator("#reason-submit").click()
    expect(page.get_by_text("Hide: 1 done.")).to_be_visible()
    hidden = Generation.objects.get(pk=video.pk)
    assert hidden.is_hidden and hidden.hidden_reason == "Reported as graphic"
    assert AuditEntry.objects.get().action == "hide"

    owner = browser.new_context()
    try:
        owner_page = owner.new_page()
        sign_in(owner_page, studio)
        owner_page.goto(f"{studio}/generations/{video.pk}/")
        expect(owner_page.get_by_text("Hidden by a moderator.")).to_be_visible()
        expect(owner_page.locator("#hidden-reason")).to_have_text("Reason: Reported as graphic")
        expect(owner_page.locator("video#player")).to_have_count(0)
        assert owner_page.request.get(f"{studio}/generations/{video.pk}/video").status == 404
    finally:
        owner.close()


def test_pause_provider_holds_new_jobs_with_a_banner_and_resume_runs_them(studio, page: Page, browser, user,
                                                                           db):
    page.set_default_timeout(WAIT_MS)
    SuperuserFactory(username="root", password="root-password")
    page.goto(f"{studio}/admin/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#provider-state")).to_have_text("Running")
    page.locator("#id_reason").fill("fal incident")
    page.locator("#provider-toggle").click()
    expect(page.locator("#provider-state")).to_have_text("Paused")
    shoot(page, "admin-dashboard")

    owner = browser.new_context()
    try:
        owner_page = owner.new_page()
        owner_page.set_default_timeout(WAIT_MS)
        sign_in(owner_page, studio)
        expect(owner_page.locator("#provider-paused")).to_be_visible()
        owner_page.goto(f"{studio}/new/")
        owner_page.get_by_label("Prompt").fill("Waits for the provider")
        owner_page.get_by_role("button", name="Generate video").click()
        expect(owner_page.locator("#status")).to_have_text("Held")
        generation = Generation.objects.get()
        page.wait_for_timeout(1500)  # a worker cluster is running: it must leave the job alone
        assert Generation.objects.get(pk=generation.pk).status == "held" and not generation.attempts.exists()

        page.locator("#id_reason").fill("fal is back")
        page.locator("#provider-toggle").click()
        expect(page.get_by_text("1 held job(s) submitted")).to_be_visible()
        expect(owner_page.locator("video#player")).to_be_visible(timeout=60_000)
        assert Generation.objects.get(pk=generation.pk).status == "succeeded"
        owner_page.reload()
        expect(owner_page.locator("#provider-paused")).to_have_count(0)
    finally:
        owner.close()
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "provider_pause", "provider_resume"]
