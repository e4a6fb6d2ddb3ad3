"""STUDIO_MAX_API_KEYS: a user holds at most that many live keys, wherever a key is made (REST API, web
page, admin, command line), and two creates at once cannot both take the last place."""
from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts import keys as keys_module
from accounts.keys import TooManyApiKeys, api_key_create, api_key_revoke
from accounts.models import ApiKey
from tests.moderation_fixtures import admin_client, superuser  # noqa: F401

LIMIT = 3


@pytest.fixture
def key_limit(settings) -> int:
    settings.STUDIO_MAX_API_KEYS = LIMIT
    return LIMIT


def fill(user, n: int = LIMIT) -> list[ApiKey]:
    return [api_key_create(user=user, name=f"key {i}")[0] for i in range(n)]


@pytest.mark.django_db
def test_the_service_refuses_one_key_too_many_and_revoking_makes_room(user, other_user, key_limit):
    keys = fill(user)
    with pytest.raises(TooManyApiKeys) as refused:
        api_key_create(user=user, name="one too many")
    assert (refused.value.limit, refused.value.live) == (LIMIT, LIMIT)
    assert "STUDIO_MAX_API_KEYS" in str(refused.value) and "Revoke" in str(refused.value)
    assert ApiKey.objects.filter(user=user).count() == LIMIT
    assert api_key_create(user=other_user, name="theirs")[0].user == other_user  # per user

    api_key_revoke(keys[0])  # revoked keys do not count
    assert api_key_create(user=user, name="in its place")[0].name == "in its place"
    assert ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() == LIMIT


@pytest.mark.django_db
def test_the_rest_api_answers_409_too_many_keys(user, key_limit):
    fill(user, LIMIT - 1)
    client = APIClient()
    client.force_login(user)
    assert client.post("/api/v1/keys/", {"name": "last one"}, format="json").status_code == 201

    refused = client.post("/api/v1/keys/", {"name": "one too many"}, format="json")

    body = refused.json()
    assert refused.status_code == 409 and set(body) == {"code", "message", "details"}
    assert body["code"] == "too_many_keys" and "Revoke" in body["message"]
    assert body["details"] == {"limit": LIMIT, "live": LIMIT,
                               "hint": "Revoke a key you no longer use (DELETE /api/v1/keys/{id}/) to make room."}
    assert ApiKey.objects.filter(user=user).count() == LIMIT


@pytest.mark.django_db
def test_the_web_page_shows_a_form_error(user, key_limit):
    fill(user)
    client = Client()
    client.force_login(user)

    page = client.post("/accounts/keys/", {"name": "one too many"})

    assert page.status_code == 200
    assert "API key limit reached" in page.context["form"].non_field_errors()[0]
    assert "API key limit reached" in page.content.decode()
    assert "new_key" not in client.session and ApiKey.objects.filter(user=user).count() == LIMIT


@pytest.mark.django_db
def test_the_admin_refuses_with_a_form_error(admin_client, user, key_limit):  # noqa: F811
    fill(user)

    page = admin_client.post("/admin/accounts/apikey/add/", {"user": user.pk, "name": "one too many"})

    assert page.status_code == 200
    assert "API key limit reached" in page.content.decode()
    assert "shown only now" not in page.content.decode()
    assert ApiKey.objects.filter(user=user).count() == LIMIT


@pytest.mark.django_db
def test_the_command_exits_non_zero_with_the_reason(user, key_limit, capsys):
    fill(user)
    with pytest.raises(CommandError, match="API key limit reached.*Revoke"):
        call_command("create_api_key", user.username)
    assert ApiKey.objects.filter(user=user).count() == LIMIT


@pytest.mark.django_db(transaction=True)
def test_two_creates_at_once_cannot_both_take_the_last_place(user, key_limit, monkeypatch):
    # given: one place left, and creates that, once they have counted the keys, wait for each other
    # (for up to a second: under the service's lock the other one cannot count meanwhile), so that
    # without the lock both would count the same free place
    fill(user, LIMIT - 1)
    start, counted = threading.Barrier(2), threading.Barrier(2)
    count_keys = keys_module.api_key_room_check

    def count_then_wait(owner) -> None:
        count_keys(owner)
        try:
            counted.wait(timeout=1)
        except threading.BrokenBarrierError:
            pass

    monkeypatch.setattr(keys_module, "api_key_room_check", count_then_wait)
    outcomes: list[str] = []

    def create(n: int) -> None:
        try:
            start.wait()
            api_key_create(user=user, name=f"racer {n}")
            outcomes.append("created")
        except TooManyApiKeys:
            outcomes.append("refused")
        finally:
            connection.close()

    # when: two threads create a key at the same moment
    threads = [threading.Thread(target=create, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then: exactly one got it
    assert sorted(outcomes) == ["created", "refused"]
    assert ApiKey.objects.filter(user=user).count() == LIMIT
