"""Signing and verifying webhooks (webhooks/signing.py): the scheme integrators implement."""
from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from webhooks.signing import WebhookVerificationError, new_secret, signature_headers, webhook_verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","type":"ping"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    headers = signature_headers(SECRET, "e1", BODY, timestamp=1700000000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers == {"X-Studio-Webhook-Id": "e1", "X-Studio-Webhook-Timestamp": "1700000000",
                       "X-Studio-Webhook-Signature": f"v1={expected}"}


def test_a_fresh_signed_request_verifies_with_any_header_case():
    headers = {name.lower(): value for name, value in signature_headers(SECRET, "e1", BODY).items()}
    assert webhook_verify(SECRET, headers, BODY) is None
    assert webhook_verify(SECRET, headers, BODY.decode()) is None


def test_any_matching_v1_signature_is_enough():
    headers = signature_headers(SECRET, "e1", BODY)
    headers["X-Studio-Webhook-Signature"] = "v1=deadbeef " + headers["X-Studio-Webhook-Signature"]
    webhook_verify(SECRET, headers, BODY)


@pytest.mark.parametrize("change, reason", [
    (lambda h, b: (h, b + b" "), "no signature matches"),
    (lambda h, b: ({**h, "X-Studio-Webhook-Timestamp": str(int(h["X-Studio-Webhook-Timestamp"]) + 1)}, b),
     "no signature matches"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "X-Studio-Webhook-Id"}, b), "missing webhook headers"),
    (lambda h, b: ({**h, "X-Studio-Webhook-Timestamp": "soon"}, b), "not an integer"),
    (lambda h, b: ({**h, "X-Studio-Webhook-Signature": h["X-Studio-Webhook-Signature"].replace("v1=", "v0=")}, b),
     "no signature matches"),
], ids=["tampered_body_case", "other_timestamp_case", "missing_id_case", "bad_timestamp_case", "other_scheme_case"])
def test_tampered_or_incomplete_requests_are_rejected(change, reason):
    headers, body = change(signature_headers(SECRET, "e1", BODY), BODY)
    with pytest.raises(WebhookVerificationError) as info:
        webhook_verify(SECRET, headers, body)
    assert reason in str(info.value)


def test_another_secret_does_not_verify():
    with pytest.raises(WebhookVerificationError):
        webhook_verify("whsec_other", signature_headers(SECRET, "e1", BODY), BODY)


def test_old_timestamps_are_rejected_outside_the_tolerance():
    headers = signature_headers(SECRET, "e1", BODY, timestamp=int(time.time()) - 301)
    with pytest.raises(WebhookVerificationError) as info:
        webhook_verify(SECRET, headers, BODY)
    assert "tolerance" in str(info.value)
    webhook_verify(SECRET, headers, BODY, tolerance=600)


def test_new_secrets_are_random_with_a_visible_prefix():
    first, second = new_secret("whsec"), new_secret("whsec")
    assert first.startswith("whsec_") and len(first) == len("whsec_") + 43
    assert first != second
