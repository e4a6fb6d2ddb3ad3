"""Sign-in throttling (django-axes, studio/settings.py): after the failure limit, one username from one
address is locked out, right password or not, on the studio's form and the admin's alike."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.base_user import AbstractBaseUser
from django.test import Client

from web.account_forms import SUSPENDED_MESSAGE

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
LIMIT = 3
GENERIC = b"Please enter a correct username and password"


@pytest.fixture(autouse=True)
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(client: Client, username: str, password: str, *, address: str = "127.0.0.1", path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, username: str, times: int, **kwargs) -> list:
    return [sign_in(client, username, "wrong-guess", **kwargs) for _ in range(times)]


def test_the_limit_locks_that_username_from_that_address_even_with_the_right_password(client, user):
    before = fail(client, "alice", LIMIT - 1)
    assert [(r.status_code, GENERIC in r.content) for r in before] == [(200, True)] * (LIMIT - 1)

    limit_reached = sign_in(client, "alice", "wrong-guess")
    assert limit_reached.status_code == 429 and limit_reached["Retry-After"] == "900"
    assert b"Too many sign-in attempts" in limit_reached.content and b"paused for 15 minutes" in limit_reached.content

    right = sign_in(client, "alice", "alice-password")
    assert right.status_code == 429 and not signed_in(client)
    assert list(AccessAttempt.objects.values_list("username", "ip_address")) == [("alice", "127.0.0.1")]


def test_the_lockout_touches_neither_other_addresses_nor_other_usernames(client, user, other_user):
    fail(client, "alice", LIMIT)
    assert sign_in(client, "alice", "alice-password").status_code == 429

    elsewhere = Client()
    assert sign_in(elsewhere, "alice", "alice-password", address="203.0.113.9").status_code == 302
    assert signed_in(elsewhere)
    someone_else = Client()
    assert sign_in(someone_else, "bob", "bob-password").status_code == 302 and signed_in(someone_else)


def test_the_lockout_ends_after_the_cool_off(client, user):
    fail(client, "alice", LIMIT)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))

    response = sign_in(client, "alice", "alice-password")
    assert response.status_code == 302 and signed_in(client)
    assert not AccessAttempt.objects.exists()


def test_a_successful_sign_in_starts_the_count_again(client, user):
    fail(client, "alice", LIMIT - 1)
    assert sign_in(client, "alice", "alice-password").status_code == 302
    assert not AccessAttempt.objects.exists()

    again = fail(Client(), "alice", LIMIT - 1)
    assert [r.status_code for r in again] == [200] * (LIMIT - 1)
    assert AccessAttempt.objects.get().failures_since_start == LIMIT - 1


def test_a_locked_out_sign_in_never_has_its_password_checked_not_even_for_a_suspended_account(
        client, user, monkeypatch):
    user.is_active = False
    user.save()
    fail(client, "alice", LIMIT)
    checked = []
    real_check = AbstractBaseUser.check_password
    monkeypatch.setattr(AbstractBaseUser, "check_password",
                        lambda self, raw: checked.append(raw) or real_check(self, raw))

    response = sign_in(client, "alice", "alice-password")
    assert response.status_code == 429
    assert SUSPENDED_MESSAGE.encode() not in response.content and b"suspended" not in response.content
    assert checked == []  # neither the backends nor the suspended-account message looked at it


def test_the_admin_sign_in_is_locked_out_the_same_way(client, admin_user):
    username = admin_user.get_username()
    assert [r.status_code for r in fail(client, username, LIMIT - 1, path="/admin/login/")] == [200] * (LIMIT - 1)
    assert sign_in(client, username, "wrong-guess", path="/admin/login/").status_code == 429

    response = sign_in(client, username, "password", path="/admin/login/")  # pytest-django's admin_user
    assert response.status_code == 429 and b"Too many sign-in attempts" in response.content
    assert not signed_in(client)


@pytest.mark.parametrize("name", ["STUDIO_LOGIN_FAILURE_LIMIT", "STUDIO_LOGIN_LOCKOUT_MINUTES"])
def test_a_limit_or_lockout_of_zero_is_refused_at_start_up(name):
    # To django-axes a limit of 0 locks every sign-in out and a lockout of 0 never ends.
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**os.environ, name: "0"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "STUDIO_LOGIN_FAILURE_LIMIT and STUDIO_LOGIN_LOCKOUT_MINUTES must be at least 1" in run.stderr


def test_behind_a_trusted_proxy_the_address_that_proxy_saw_is_counted(client, user, settings):
    settings.STUDIO_TRUST_FORWARDED_HEADERS = True
    proxy = "127.0.0.1"

    def via_proxy(forwarded_for: str, password: str = "wrong-guess"):
        return client.post("/accounts/login/", {"username": "alice", "password": password},
                           REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded_for)

    # The attacker varies what it claims; the proxy appends the address it really saw.
    statuses = [via_proxy(f"10.9.9.{n}, 198.51.100.7").status_code for n in range(LIMIT)]
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["198.51.100.7"]
    # Another client behind the same proxy is not locked out with it.
    assert via_proxy("203.0.113.5", "alice-password").status_code == 302


def test_without_a_trusted_proxy_forwarded_for_is_ignored(client, user):
    for n in range(LIMIT):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong-guess"},
                    REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["192.0.2.1"]
