"""Fixtures and helpers for the admin and moderation tests: the roles and their signed-in clients,
and running an admin action (imported into tests/admin/conftest.py and tests/moderation/conftest.py).
Generations in any state come from tests/factories.py."""
from __future__ import annotations

import pytest

from tests.factories import ModeratorFactory, SuperuserFactory


@pytest.fixture
def superuser(db):
    return SuperuserFactory(username="root", password="root-password")


@pytest.fixture
def moderator(db):
    return ModeratorFactory(username="mod", password="mod-password")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def moderator_client(client, moderator):
    client.force_login(moderator)
    return client


def run_action(client, model_path: str, action: str, pks, reason: str | None = "a reason"):
    """Run an admin action the way the browser does: select, confirm with a reason. Returns the last response."""
    url = f"/admin/{model_path}/"
    first = client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "index": 0})
    if reason is None or first.status_code != 200:
        return first
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks], "apply": "yes",
                             "reason": reason}, follow=True)
