"""The webhook admin is read-only: staff can look, nobody can add, change or delete there."""
from __future__ import annotations

import pytest

from generations.services.create import generation_create
from generations.transitions import transition
from tests.factories import SuperuserFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    client.force_login(SuperuserFactory(username="root"))
    return client


def test_staff_can_read_endpoints_and_deliveries_but_never_the_secret(admin_client, user, task_queue, settings):
    # given
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    endpoint = webhook_endpoint_create(owner=user, url="http://127.0.0.1:9/hook")
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "x"})
    transition(generation.pk, from_=["pending"], to="canceled")
    delivery = WebhookDelivery.objects.get()
    # when
    pages = {path: admin_client.get(path) for path in (
        "/admin/webhooks/webhookendpoint/", f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        "/admin/webhooks/webhookdelivery/", f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/",
        "/admin/webhooks/webhookevent/", "/admin/webhooks/jobwebhooksecret/",
    )}
    # then
    assert {path: page.status_code for path, page in pages.items()} == dict.fromkeys(pages, 200)
    assert all(endpoint.secret not in page.content.decode() for page in pages.values())
    assert admin_client.get("/admin/webhooks/webhookendpoint/add/").status_code == 403
    assert admin_client.post(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/delete/",
                             {"post": "yes"}).status_code == 403
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
