"""Fixtures shared by the generations tests: a REST client signed in with the user's API key."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.keys import api_key_create


def key_client(user, name: str) -> APIClient:
    _, raw = api_key_create(user=user, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return key_client(user, "tests")
