from decimal import Decimal

import pytest

from generations.services.create import generation_create
from storage.models import UserQuota
from storage.quotas import estimate_bytes

pytestmark = pytest.mark.django_db


def test_usage_endpoint_reports_usage_against_limits(client, user, other_user, task_queue, settings):
    UserQuota.objects.create(user=user, monthly_spend_usd=Decimal("20"))
    generation_create(owner=user, model="t2v-fast", input={"prompt": "x", "duration": 20})
    generation_create(owner=other_user, model="t2v", input={"prompt": "not mine"})
    client.force_login(user)
    body = client.get("/api/v1/usage/").json()
    assert body["storage_bytes"] == {"used": estimate_bytes(duration=20, resolution="1080p", fps=25, audio=True),
                                     "limit": settings.STUDIO_DEFAULT_STORAGE_BYTES}
    assert body["monthly_spend_usd"] == {"used": "0.80", "limit": "20.00"}
    assert body["active_jobs"] == {"used": 1, "limit": settings.STUDIO_DEFAULT_ACTIVE_JOBS}
    assert len(body["month"]) == 7


def test_usage_needs_a_signed_in_user(client):
    response = client.get("/api/v1/usage/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_the_studio_page_shows_usage(client, user, task_queue):
    generation_create(owner=user, model="t2v", input={"prompt": "x"})
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Spend in" in page and "$0.48 of $50.00" in page and "Active jobs: 1 of 5" in page
