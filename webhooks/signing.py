"""How outgoing webhooks are signed, and how a receiver verifies them.

Every request carries three headers:

- `X-Studio-Webhook-Id`: the event's id (a UUID; the same on every attempt and redelivery, so
  receivers can de-duplicate);
- `X-Studio-Webhook-Timestamp`: when this attempt was signed, in unix seconds;
- `X-Studio-Webhook-Signature`: `v1=<hex>`, where `<hex>` is HMAC-SHA256 keyed with the whole
  secret string (UTF-8, prefix included) over `f"{timestamp}.".encode() + raw_body`. A receiver
  should accept the request if any space-separated `v1=` signature matches.

Receivers should reject timestamps older than a few minutes (replays). `webhook_verify` does all of
this and is what the README shows integrators.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

ID_HEADER = "X-Studio-Webhook-Id"
TIMESTAMP_HEADER = "X-Studio-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Studio-Webhook-Signature"
SCHEME = "v1"


class WebhookVerificationError(Exception):
    """The request is not a valid, fresh webhook signed with the given secret; the message says why."""


def new_secret(prefix: str) -> str:
    """A random secret with a visible `prefix` (for example `whsec`), 256 bits of entropy."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"{timestamp}." + body` keyed with `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_headers(secret: str, event_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three webhook headers for sending `body` now (or at `timestamp`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, timestamp, body)}",
    }


def webhook_verify(secret: str, headers: Mapping[str, str], body: bytes | str, tolerance: int = 300) -> None:
    """Check a received webhook: its signature matches `secret` and its timestamp is within `tolerance` seconds.

    `headers` may be any mapping (names are matched case-insensitively); `body` is the raw request
    body exactly as received. Raises WebhookVerificationError; returns None when the request is good.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    raw_signatures = lowered.get(SIGNATURE_HEADER.lower())
    if not lowered.get(ID_HEADER.lower()) or raw_timestamp is None or raw_signatures is None:
        raise WebhookVerificationError("missing webhook headers")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise WebhookVerificationError("the timestamp is not an integer") from None
    if abs(time.time() - timestamp) > tolerance:
        raise WebhookVerificationError("the timestamp is outside the tolerance (a replay, or a wrong clock)")
    body = body.encode() if isinstance(body, str) else body
    expected = sign(secret, timestamp, body)
    for candidate in raw_signatures.split():
        scheme, _, value = candidate.partition("=")
        if scheme == SCHEME and hmac.compare_digest(value, expected):
            return
    raise WebhookVerificationError("no signature matches")
