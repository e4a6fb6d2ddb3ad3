"""The prompt blocklist: matching rules, rejection before anything is reserved or sent (service, web,
REST), edits in the admin applying at once, and the audit log showing each refusal and edit."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.ltx import InputError
from generations.models import Generation
from generations.services.create import generation_create
from moderation.blocklist import PromptBlocked, blocklist_match
from moderation.models import AuditEntry, BlockedTerm
from moderation.services import blocked_term_save
from storage.models import UsageEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def terms(db):
    BlockedTerm.objects.create(term="forbidden fruit")
    BlockedTerm.objects.create(term="gore")
    BlockedTerm.objects.create(term=r"\bkill(s|ing)?\s+(a|the)\s+\w+", kind=BlockedTerm.Kind.PATTERN)
    BlockedTerm.objects.create(term="sunset", is_active=False)


@pytest.mark.parametrize("prompt, match", [
    ("A FORBIDDEN   Fruit on a table", "forbidden   fruit"),
    ("Lots of gore.", "gore"),
    ("ｇｏｒｅ in full-width letters", "gore"),
    ("the hero is killing the dragon", "killing the dragon"),
    ("A sunset over the sea", None),  # inactive term
    ("Gorey details of a gorge", None),  # whole words only
    ("A skill the team needs", None),
])
def test_matching_rules(terms, prompt, match):
    hit = blocklist_match(prompt)
    assert (hit[1] if hit else None) == match


def test_a_blocked_prompt_is_refused_before_anything_is_written_reserved_or_enqueued(terms, user, task_queue):
    with pytest.raises(PromptBlocked) as info:
        generation_create(owner=user, model="t2v", input={"prompt": "Show the gore"})
    assert isinstance(info.value, InputError)
    assert info.value.errors == {"prompt": "This prompt contains a blocked term ('gore') and was not accepted. "
                                           "Please rephrase it."}
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (user, "prompt_blocked", "user",
                                                                               str(user.pk))
    assert entry.after == {"term_id": BlockedTerm.objects.get(term="gore").pk, "match": "gore",
                           "prompt": "Show the gore"}


def test_the_web_form_shows_the_rejection_on_the_prompt(terms, client, user, task_queue):
    client.force_login(user)
    page = client.post("/new/", {"prompt": "forbidden fruit", "mode": "text", "tier": "pro", "duration": "6",
                                 "resolution": "1080p", "fps": "25", "generate_audio": "on", "project": "",
                                 "idempotency_key": "k1"})
    assert page.status_code == 200
    assert page.context["form"].errors["prompt"] == [
        "This prompt contains a blocked term ('forbidden fruit') and was not accepted. Please rephrase it."]
    assert not Generation.objects.exists() and not UsageEntry.objects.exists()


def test_the_api_names_input_prompt(terms, user, task_queue):
    _, raw = api_key_create(user=user, name="k")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.post("/api/v1/generations/", {"model": "t2v", "input": {"prompt": "They kill a man"}}, format="json")
    body = response.json()
    assert response.status_code == 422 and body["code"] == "validation_error"
    assert list(body["details"]) == ["input.prompt"] and "blocked term ('kill a man')" in body["details"]["input.prompt"]
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []


def test_terms_edited_in_the_admin_apply_to_the_next_create_and_are_audited(admin_client, superuser, user, task_queue):
    generation_create(owner=user, model="t2v", input={"prompt": "A quiet meadow"})  # compiles an empty list
    response = admin_client.post("/admin/moderation/blockedterm/add/",
                                 {"term": "meadow", "kind": "word", "is_active": "on", "note": "test"})
    assert response.status_code == 302
    with pytest.raises(PromptBlocked):
        generation_create(owner=user, model="t2v", input={"prompt": "A quiet meadow"})
    term = BlockedTerm.objects.get()
    assert term.created_by == superuser
    admin_client.post(f"/admin/moderation/blockedterm/{term.pk}/change/",
                      {"term": "meadow", "kind": "word", "note": "off again"})
    generation_create(owner=user, model="t2v", input={"prompt": "A quiet meadow"})
    assert Generation.objects.count() == 2
    changes = AuditEntry.objects.filter(action="blocklist_change").order_by("id")
    assert [(e.before.get("is_active"), e.after["is_active"]) for e in changes] == [(None, True), (True, False)]


def test_an_invalid_pattern_is_refused_in_the_admin(admin_client):
    response = admin_client.post("/admin/moderation/blockedterm/add/", {"term": "(unclosed", "kind": "pattern",
                                                                        "is_active": "on"})
    assert response.status_code == 200 and "not a valid regular expression" in response.content.decode()
    assert not BlockedTerm.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.parametrize("fields, field, problem", [
    ({"term": "bad\x00word"}, "term", "must not contain NUL characters (U+0000)"),
    ({"term": "bad\ud800word"}, "term", "must be valid Unicode text: it holds a lone surrogate (U+D800)"),
    ({"term": "fine", "note": "why\x00"}, "note", "must not contain NUL characters (U+0000)"),
])
def test_blocked_term_save_refuses_text_that_cannot_be_stored(superuser, fields, field, problem):
    with pytest.raises(ValidationError) as info:
        blocked_term_save(BlockedTerm(**fields), actor=superuser, reason="test")
    assert list(info.value.message_dict) == [field] and info.value.message_dict[field][0].startswith(problem)
    assert not BlockedTerm.objects.exists() and not AuditEntry.objects.exists()


def test_a_moderator_may_add_terms_but_not_delete_them(moderator_client):
    assert moderator_client.post("/admin/moderation/blockedterm/add/",
                                 {"term": "spam", "kind": "word", "is_active": "on"}).status_code == 302
    term = BlockedTerm.objects.get()
    assert moderator_client.post(f"/admin/moderation/blockedterm/{term.pk}/delete/", {"post": "yes"}).status_code == 403
    assert BlockedTerm.objects.filter(pk=term.pk).exists()
