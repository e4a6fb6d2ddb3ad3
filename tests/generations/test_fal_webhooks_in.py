"""fal's webhooks to the studio: a verified hint that makes the studio read the status at once."""
from __future__ import annotations

import json
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.cache import cache
from django.test import Client

from fal_protocol.signature import public_jwk, signature_headers
from generations.models import Generation
from generations.services import fal_webhooks
from generations.services.create import generation_create
from generations.services.submit import generation_submit
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db
Status = Generation.Status


@pytest.fixture
def webhooks_on(settings, fal_sim):
    settings.STUDIO_FAL_WEBHOOKS = True
    settings.FAL_WEBHOOK_JWKS_URL = f"{fal_sim.url}/.well-known/jwks.json"
    return fal_sim


def queued(user, task_queue) -> Generation:
    """A job submitted to the simulator (its request id and URLs recorded), not yet polled."""
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "a fox"})
    generation_submit(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED
    return generation


def post(generation: Generation, headers: dict[str, str], body: bytes):
    return Client().post(f"/api/v1/fal-webhooks/{generation.webhook_token}", body, content_type="application/json",
                         headers=headers)


def signed_by(key: Ed25519PrivateKey, request_id: str, body: bytes) -> dict[str, str]:
    return signature_headers(key, request_id=request_id, user_id="fal-user", body=body)


def test_submits_carry_the_jobs_own_webhook_url(webhooks_on, settings, user, task_queue):
    settings.STUDIO_BASE_URL = "https://studio.example.com"
    generation = queued(user, task_queue)
    [sent] = webhooks_on.requests()
    assert sent["webhook_url"] == f"https://studio.example.com/api/v1/fal-webhooks/{generation.webhook_token}"


def test_without_the_setting_no_webhook_is_asked_for(fal_sim, settings, user, task_queue):
    settings.STUDIO_FAL_WEBHOOKS = False
    queued(user, task_queue)
    assert fal_sim.requests()[0]["webhook_url"] is None


def test_a_genuine_webhook_makes_the_studio_read_and_record_the_status_at_once(webhooks_on, user, task_queue,
                                                                              django_capture_on_commit_callbacks):
    generation = queued(user, task_queue)
    wait_until(lambda: webhooks_on.completed_at(generation.fal_request_id), timeout=10)
    body = json.dumps({"request_id": generation.fal_request_id, "status": "OK", "payload": {}}).encode()
    headers = webhooks_on.webhook_signature_headers(generation.fal_request_id, body)
    with (mock.patch.object(fal_webhooks, "get_fal_client", wraps=fal_webhooks.get_fal_client) as client,
          django_capture_on_commit_callbacks(execute=True)):
        response = post(generation, headers, body)
    assert response.status_code == 200 and response.json() == {"outcome": "applied"}
    assert client.call_count == 1  # the status was read from fal, not taken from the payload
    generation.refresh_from_db()
    assert generation.status == Status.STORING and generation.completed_at is not None
    assert "generation_store_task" in task_queue.names()
    # A repeat (fal retries webhooks) finds nothing to do.
    assert post(generation, headers, body).json() == {"outcome": "ignored"}


def test_the_payload_is_not_trusted_over_fals_own_status(webhooks_on, user, task_queue):
    webhooks_on.run_seconds = 30  # still running upstream
    generation = queued(user, task_queue)
    body = json.dumps({"request_id": generation.fal_request_id, "status": "OK", "payload": {"video": {}}}).encode()
    response = post(generation, webhooks_on.webhook_signature_headers(generation.fal_request_id, body), body)
    assert response.json() == {"outcome": "applied"}
    assert Generation.objects.get(pk=generation.pk).status in (Status.QUEUED, Status.RUNNING)


def test_forged_or_foreign_webhooks_are_refused_and_change_nothing(webhooks_on, user, task_queue):
    generation = queued(user, task_queue)
    body = json.dumps({"request_id": generation.fal_request_id, "status": "OK"}).encode()
    forged = signed_by(Ed25519PrivateKey.generate(), generation.fal_request_id, body)
    other_request = webhooks_on.webhook_signature_headers("another-request", body)
    tampered = webhooks_on.webhook_signature_headers(generation.fal_request_id, body)
    with mock.patch.object(fal_webhooks, "get_fal_client") as client:
        assert post(generation, forged, body).status_code == 401
        assert post(generation, other_request, body).status_code == 401
        assert post(generation, tampered, body + b" ").status_code == 401
        unknown = Client().post("/api/v1/fal-webhooks/nope", body, content_type="application/json", headers=tampered)
        assert unknown.status_code == 404
    client.assert_not_called()
    assert Generation.objects.get(pk=generation.pk).status == Status.QUEUED


def test_rotated_keys_are_refetched_once(webhooks_on, user, task_queue):
    generation = queued(user, task_queue)
    stale = {"keys": [public_jwk(Ed25519PrivateKey.generate().public_key())]}
    cache.set(fal_webhooks.JWKS_CACHE_KEY, stale, 3600)
    body = b'{"status":"OK"}'
    response = post(generation, webhooks_on.webhook_signature_headers(generation.fal_request_id, body), body)
    assert response.status_code == 200
    assert cache.get(fal_webhooks.JWKS_CACHE_KEY) == webhooks_on.jwks()


def test_unreachable_keys_are_503_so_fal_retries(settings, webhooks_on, user, task_queue):
    generation = queued(user, task_queue)
    settings.FAL_WEBHOOK_JWKS_URL = "http://127.0.0.1:9/jwks.json"
    body = b"{}"
    response = post(generation, webhooks_on.webhook_signature_headers(generation.fal_request_id, body), body)
    assert response.status_code == 503 and "public keys" in response.json()["message"]


def test_only_post_is_accepted(user, task_queue, fal_sim):
    generation = queued(user, task_queue)
    assert Client().get(f"/api/v1/fal-webhooks/{generation.webhook_token}").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_the_simulators_real_webhook_finishes_tracking_without_the_tracker(webhooks_on, live_server, settings, user,
                                                                           task_queue):
    settings.STUDIO_BASE_URL = live_server.url
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    generation = queued(user, task_queue)
    stored = wait_until(lambda: Generation.objects.filter(pk=generation.pk, status=Status.STORING).first(), timeout=15)
    assert stored.completed_at is not None
    # Nothing ticked the tracker in this test: the webhook did it, and fal's side saw it delivered.
    assert wait_until(lambda: webhooks_on.requests()[0]["webhook_delivered_at"], timeout=10)


@pytest.mark.django_db(transaction=True)
def test_fals_webhook_rescues_an_ambiguous_submit_fal_did_receive(webhooks_on, user, task_queue, media_root):
    """The submit's answer was lost (the connection reset after fal queued it): fal's signed webhook to
    the job's own URL names the request, so the job is tracked and stored instead of failing as
    `submit_unknown` with fal's video paid for and thrown away. Still sent once."""
    from generations.services.tracking import tracker_tick
    from tests.generations.test_pipeline import track_until

    webhooks_on.set_faults({"submit_reset_after_accept": 1.0})
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "a fox"})
    generation_submit(generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == (Status.SUBMITTING, None)
    webhooks_on.set_faults({})
    [sent] = webhooks_on.requests()
    wait_until(lambda: webhooks_on.completed_at(sent["request_id"]), timeout=10)

    body = json.dumps({"request_id": sent["request_id"], "status": "OK", "payload": {}}).encode()
    response = post(generation, webhooks_on.webhook_signature_headers(sent["request_id"], body), body)
    assert response.json() == {"outcome": "due"}
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == (Status.QUEUED, sent["request_id"])
    assert generation.fal_status_url.endswith(f"/fal-ai/ltx-2.3/requests/{sent['request_id']}/status")

    task_queue.run_all()
    row = track_until(generation, Status.STORING, Status.SUCCEEDED)
    task_queue.run_all()
    tracker_tick()
    row.refresh_from_db()
    assert row.status == Status.SUCCEEDED and row.video is not None
    assert webhooks_on.submits_for(row.input) == 1
    assert list(row.attempts.filter(kind="submit").values_list("outcome", flat=True)) == ["ambiguous"]
