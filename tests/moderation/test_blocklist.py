"""The prompt blocklist: matching rules, rejection before anything is reserved or sent (service, web,
REST), edits in the admin applying at once, and the audit log showing each refusal and edit."""
from __future__ import annotations

import logging

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
    ("A FORBIDDEN   Fruit on a table", "FORBIDDEN   Fruit"),  # reported as the user wrote it
    ("Lots of gore.", "gore"),
    ("ｇｏｒｅ in full-width letters", "ｇｏｒｅ"),
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
    assert list(body["details"]) == ["input.prompt"]
    assert "blocked term ('kill a man')" in body["details"]["input.prompt"]
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


@pytest.mark.parametrize("pattern, reason", [
    ("(unclosed", "missing ): (unclosed"),
    ("gore(?=s)", "invalid perl operator: (?="),  # Python's re would take it; RE2 has no lookarounds
])
def test_an_invalid_pattern_is_refused_in_the_admin(admin_client, pattern, reason):
    response = admin_client.post("/admin/moderation/blockedterm/add/", {"term": pattern, "kind": "pattern",
                                                                        "is_active": "on"})
    page = response.content.decode()
    assert response.status_code == 200 and "not a valid regular expression" in page and reason in page
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


# --- look-alikes, invisible characters and word boundaries ----------------------------------------

@pytest.fixture
def lookalike_terms(db):
    BlockedTerm.objects.create(term="forbidden")
    BlockedTerm.objects.create(term="two words")
    BlockedTerm.objects.create(term="porn")
    BlockedTerm.objects.create(term="ass")
    BlockedTerm.objects.create(term="kill")


@pytest.mark.parametrize("prompt, match", [
    ("a for\u200bbidden scene", "for\u200bbidden"),  # zero width space
    ("a for\u00adbidden scene", "for\u00adbidden"),  # soft hyphen
    ("a forbid\u200dden scene", "forbid\u200dden"),  # zero width joiner
    ("a \u2060forbidden\ufeff scene", "forbidden"),  # word joiner, BOM around it: not part of the word
    ("a f\u043erbidden scene", "f\u043erbidden"),  # Cyrillic о
    ("F\u043eRB\u0456DD\u0435N", "F\u043eRB\u0456DD\u0435N"),  # Cyrillic о, і, е among capitals
    ("FΟRBΙDDΕN", "FΟRBΙDDΕN"),  # Greek capitals Ο, Ι, Ε
    ("forbi\u0301dden", "forbi\u0301dden"),  # combining acute accent
    ("forbidde\u0301n\u0301!", "forbidde\u0301n\u0301"),  # a mark on the last letter is reported with it
    ("forbíddén", "forbíddén"),  # precomposed accented letters
    ("a_forbidden_scene", "forbidden"),  # `_` separates words
    ("a‿forbidden‿scene", "forbidden"),  # and so does other connector punctuation
    ("ＦＯＲＢＩＤＤＥＮ", "ＦＯＲＢＩＤＤＥＮ"),
    ("KILL IT", "KILL"),  # an ASCII capital I stays an i (its skeleton would be l)
    ("two\u200bwords", "two\u200bwords"),  # a phrase: whitespace or invisible characters between its words
    ("two_words", "two_words"),
    ("two \u2060 \u00a0words", "two \u2060 \u00a0words"),
    ("TWO\n\twords", "TWO\n\twords"),
])
def test_look_alike_spellings_are_folded(lookalike_terms, prompt, match):
    hit = blocklist_match(prompt)
    assert hit is not None and hit[1] == match


@pytest.mark.parametrize("prompt", [
    "A pom dog with a pom-pom hat",  # skeletons equate m and rn: `porn` must not hit `pom`
    "A classy bass player in a compass factory, an assessment",  # whole words: `ass` is not in these
    "Skills, killer whales and a kilt",
    "Illuminated lilies, ill 1111 ||| Il lI",  # I, l, 1 and | stay apart
    "twowords on a sign; two, words",  # a phrase needs whitespace or an invisible character between
    "Forbiddenness",
    "Café in Zürich, naïve art, smørrebrød, Straße",
    "Москва ночью, Αθήνα το πρωί, 東京の夜",
    "mass_effect class_action",
])
def test_ordinary_prompts_are_not_blocked_by_folding(lookalike_terms, prompt):
    assert blocklist_match(prompt) is None


def test_terms_typed_with_look_alikes_or_accents_match_plain_prompts(db):
    BlockedTerm.objects.create(term="g\u043er\u0435")  # Cyrillic о and е
    BlockedTerm.objects.create(term="Sc\u00e8ne\u200b")  # an accent and a stray zero width space
    assert blocklist_match("Lots of GORE")[1] == "GORE"
    assert blocklist_match("a scene")[1] == "scene"


def test_a_look_alike_prompt_is_refused_before_anything_is_written(lookalike_terms, user, task_queue):
    with pytest.raises(PromptBlocked) as info:
        generation_create(owner=user, model="t2v", input={"prompt": "A f\u043erbidden sc\u0435ne"})
    assert info.value.errors == {"prompt": "This prompt contains a blocked term ('f\u043erbidden') and was not "
                                           "accepted. Please rephrase it."}
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []
    assert AuditEntry.objects.get().after["match"] == "f\u043erbidden"


def test_a_word_term_with_nothing_visible_is_refused(superuser):
    with pytest.raises(ValidationError) as info:
        blocked_term_save(BlockedTerm(term="\u200b\u0301\u200d"), actor=superuser)
    assert list(info.value.message_dict) == ["term"]
    assert not BlockedTerm.objects.exists() and not AuditEntry.objects.exists()


# --- patterns run on RE2 --------------------------------------------------------------------------

def test_a_pattern_that_backtracks_under_re_finishes_at_once(user, task_queue):
    """`^(a+)+$` against a+b takes time doubling per character under Python's re (its 50,000
    characters would never finish); RE2 runs in time linear in the prompt."""
    BlockedTerm.objects.create(term="^(a+)+$", kind=BlockedTerm.Kind.PATTERN)
    assert blocklist_match("a" * 50_000 + "b") is None
    assert blocklist_match("a" * 50_000)[1] == "a" * 50_000
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "a" * 2_499 + "b"})
    assert Generation.objects.get().pk == generation.pk


def test_patterns_match_the_folded_prompt(terms):
    assert blocklist_match("They k\u0456ll_the dragon")[1] == "k\u0456ll_the dragon"
    assert blocklist_match("THEY K\u0406LL THE DRAGON")[1] == "K\u0406LL THE DRAGON"


@pytest.mark.parametrize("pattern, reason", [
    (r"(fruit)\s+\1", "invalid escape sequence: \\1"),
    (r"gore(?=s)", "invalid perl operator: (?="),
    (r"(?<!no )gore", "invalid perl operator: (?<"),
    (r"a{2000}", "invalid repetition size: {2000}"),
])
def test_a_pattern_re2_cannot_run_is_refused_on_save(superuser, pattern, reason):
    with pytest.raises(ValidationError) as info:
        blocked_term_save(BlockedTerm(term=pattern, kind=BlockedTerm.Kind.PATTERN), actor=superuser)
    assert list(info.value.message_dict) == ["term"]
    message = info.value.message_dict["term"][0]
    assert message.startswith("not a valid regular expression (RE2 syntax") and reason in message
    assert not BlockedTerm.objects.exists() and not AuditEntry.objects.exists()


def test_a_stored_pattern_re2_cannot_run_is_skipped_with_a_warning(db, caplog):
    bad = BlockedTerm.objects.create(term=r"(fruit)\s+\1", kind=BlockedTerm.Kind.PATTERN)  # saved before RE2
    BlockedTerm.objects.create(term="gore")
    with caplog.at_level(logging.WARNING, logger="moderation.blocklist"):
        assert blocklist_match("fruit fruit") is None
        assert blocklist_match("some gore")[1] == "gore"
    warnings = [r.getMessage() for r in caplog.records if r.name == "moderation.blocklist"]
    assert len(warnings) == 1 and f"blocked term {bad.pk}" in warnings[0] and "invalid escape sequence" in warnings[0]
