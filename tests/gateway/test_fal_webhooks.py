"""`?fal_webhook=`: fal's body and headers, signed with the studio's Ed25519 key and verifiable
with the JWKS it publishes — by our own verifier and by a consumer following fal's recipe by hand."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from fal_protocol import signature as fal_signature
from generations.models import Generation
from tests.gateway.test_queue_routes import run_until_finished, submitted
from tests.processes import ROOT
from tests.webhooks.test_delivery import make_due
from webhooks.models import SigningKey, WebhookDelivery
from webhooks.services import FAL_MAX_ATTEMPTS, webhook_delivery_send
from webhooks.signing_keys import new_signing_key, studio_jwks

pytestmark = pytest.mark.django_db(transaction=True)
T2V = "/fal/fal-ai/ltx-2/text-to-video"


def published_jwks() -> dict:
    response = Client().get("/fal/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age" in response["Cache-Control"]
    return response.json()


def verify_like_fals_docs(headers: dict[str, str], body: bytes, jwks: dict) -> bool:
    """fal's documented recipe, written out by hand: the message is request id, user id, timestamp
    and the hex SHA-256 of the raw body, one per line; the signature is hex Ed25519."""
    lowered = {name.lower(): value for name, value in headers.items()}
    message = "\n".join([lowered["x-fal-webhook-request-id"], lowered["x-fal-webhook-user-id"],
                         lowered["x-fal-webhook-timestamp"], hashlib.sha256(body).hexdigest()]).encode()
    if abs(time.time() - int(lowered["x-fal-webhook-timestamp"])) > 300:
        return False
    for jwk in jwks["keys"]:
        key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
        try:
            key.verify(bytes.fromhex(lowered["x-fal-webhook-signature"]), message)
            return True
        except InvalidSignature:
            continue
    return False


def job_with_webhook(gw, receiver, task_queue, body=None) -> Generation:
    return submitted(gw, body=body, path=f"{T2V}?fal_webhook={receiver.url('/fal')}")


def test_a_finished_job_posts_fals_body_once_signed_with_the_published_key(gw, user, fal_sim, media_root,
                                                                             task_queue, receiver):
    generation = run_until_finished(job_with_webhook(gw, receiver, task_queue), task_queue)
    task_queue.run_all()
    assert generation.status == "succeeded"
    [received] = receiver.at("/fal")
    body = received.payload
    assert body["request_id"] == body["gateway_request_id"] == str(generation.pk)
    assert body["status"] == "OK"
    video = body["payload"]["video"]
    assert (video["content_type"], video["file_size"]) == ("video/mp4", generation.video.file_size)
    headers = {name.lower(): value for name, value in received.headers.items()}
    assert headers["x-fal-webhook-request-id"] == str(generation.pk)
    assert headers["x-fal-webhook-user-id"] == str(user.pk)
    jwks = published_jwks()
    assert fal_signature.verify(received.headers, received.body, jwks) == str(generation.pk)
    assert verify_like_fals_docs(received.headers, received.body, jwks)
    # Only the end of the job is sent to fal's webhook (no queued/running events).
    assert WebhookDelivery.objects.get(url=receiver.url("/fal")).max_attempts == FAL_MAX_ATTEMPTS


def test_tampered_or_stale_deliveries_are_rejected_by_a_verifying_consumer(gw, fal_sim, media_root, task_queue,
                                                                          receiver):
    run_until_finished(job_with_webhook(gw, receiver, task_queue), task_queue)
    task_queue.run_all()
    [received] = receiver.at("/fal")
    jwks = published_jwks()
    tampered_body = received.body.replace(b'"OK"', b'"ERROR"')
    assert tampered_body != received.body
    forged_id = {**received.headers, "X-Fal-Webhook-Request-Id": "someone-else"}
    stale = {**received.headers, "X-Fal-Webhook-Timestamp": str(int(time.time()) - 3600)}
    for headers, body in ((received.headers, tampered_body), (forged_id, received.body), (stale, received.body)):
        assert not verify_like_fals_docs(headers, body, jwks)
        with pytest.raises(fal_signature.FalSignatureError):
            fal_signature.verify(headers, body, jwks)
    # Another key's JWKS (the simulator's, which signs fal's side) does not verify the studio's webhooks.
    with pytest.raises(fal_signature.FalSignatureError, match="no key"):
        fal_signature.verify(received.headers, received.body, fal_sim.jwks())


def test_a_failed_job_posts_error_with_fals_detail(gw, fal_sim, media_root, task_queue, receiver):
    generation = run_until_finished(
        job_with_webhook(gw, receiver, task_queue, body={"prompt": "a fox [sim:422]"}), task_queue)
    task_queue.run_all()
    assert generation.status == "failed"
    [received] = receiver.at("/fal")
    body = received.payload
    assert (body["status"], body["error"]) == ("ERROR", "Invalid status code: 422")
    assert body["payload"]["detail"][0]["msg"] == generation.error_message
    assert fal_signature.verify(received.headers, received.body, published_jwks())


def test_a_refused_delivery_is_retried_until_the_consumer_accepts_it(gw, fal_sim, media_root, task_queue, receiver):
    receiver.script("500", "200")
    generation = run_until_finished(job_with_webhook(gw, receiver, task_queue), task_queue)
    task_queue.run_all()
    delivery = WebhookDelivery.objects.get(url=receiver.url("/fal"))
    assert (delivery.status, delivery.attempt_count) == ("pending", 1)
    make_due(delivery)
    webhook_delivery_send(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == ("delivered", 2)
    first, second = receiver.at("/fal")
    assert first.body == second.body and second.payload["request_id"] == str(generation.pk)
    assert fal_signature.verify(second.headers, second.body, published_jwks())


def test_jobs_without_fal_webhook_send_nothing_to_it(gw, fal_sim, media_root, task_queue, receiver):
    run_until_finished(submitted(gw), task_queue)
    task_queue.run_all()
    assert receiver.received == [] and not WebhookDelivery.objects.exists()


# --- the signing key ------------------------------------------------------------------------------

def test_in_development_one_key_is_made_and_kept(settings):
    settings.STUDIO_SIGNING_KEY = ""
    first = studio_jwks()
    assert studio_jwks() == first and SigningKey.objects.count() == 1
    assert first["keys"][0]["kty"] == "OKP" and first["keys"][0]["crv"] == "Ed25519"


def test_the_configured_key_is_the_one_published(settings):
    settings.STUDIO_SIGNING_KEY = new_signing_key()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    expected = fal_signature.public_jwk(
        Ed25519PrivateKey.from_private_bytes(base64.b64decode(settings.STUDIO_SIGNING_KEY)).public_key())
    assert published_jwks() == {"keys": [expected]}
    assert not SigningKey.objects.exists()


def test_a_malformed_key_is_a_configuration_error(settings):
    settings.STUDIO_SIGNING_KEY = "not base64!"
    with pytest.raises(ImproperlyConfigured, match="STUDIO_SIGNING_KEY"):
        studio_jwks()


def test_production_refuses_to_start_without_a_signing_key():
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "studio.example.com"}
    env.pop("STUDIO_SIGNING_KEY", None)
    command = [sys.executable, "-c", "import django; django.setup()"]
    failed = subprocess.run(command, cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "studio.settings"},
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "STUDIO_SIGNING_KEY must be set" in failed.stderr
    started = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**env, "DJANGO_SETTINGS_MODULE": "studio.settings",
                                  "STUDIO_SIGNING_KEY": new_signing_key()})
    assert started.returncode == 0, started.stderr
