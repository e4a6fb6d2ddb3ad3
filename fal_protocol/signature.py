"""fal's webhook signature, both sides: signing and verifying.

A signed request carries `X-Fal-Webhook-Request-Id`, `-User-Id`, `-Timestamp` (unix seconds) and
`-Signature` (hex). The signed message is the UTF-8 of
`request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + hex(sha256(raw body))`, signed with
Ed25519; receivers accept it if any key of the sender's JWKS verifies it and the timestamp is
within five minutes.

Plain Python (no Django): the simulator signs with it, the gateway signs with it, and the studio
verifies fal's webhooks with it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REQUEST_ID_HEADER = "X-Fal-Webhook-Request-Id"
USER_ID_HEADER = "X-Fal-Webhook-User-Id"
TIMESTAMP_HEADER = "X-Fal-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Fal-Webhook-Signature"
TOLERANCE_SECONDS = 300


class FalSignatureError(Exception):
    """The request is not a fresh webhook signed by a key of the given JWKS; the message says why."""


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def signature_headers(key: Ed25519PrivateKey, *, request_id: str, user_id: str, body: bytes,
                      timestamp: int | None = None) -> dict[str, str]:
    """The four `X-Fal-Webhook-*` headers for sending `body` now (or at `timestamp`)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        REQUEST_ID_HEADER: request_id,
        USER_ID_HEADER: user_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: key.sign(signed_message(request_id, user_id, stamp, body)).hex(),
    }


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": hashlib.sha256(raw).hexdigest()[:16],
            "use": "sig", "alg": "EdDSA"}


def verify(headers: Mapping[str, str], body: bytes, jwks: Mapping[str, Any], *, tolerance: int = TOLERANCE_SECONDS,
           now: float | None = None) -> str:
    """Check a received webhook against the sender's `jwks`; returns its request id.

    `headers` may be any mapping (names matched case-insensitively); `body` is the raw body exactly
    as received. Raises FalSignatureError.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    values = [lowered.get(name.lower(), "") for name in
              (REQUEST_ID_HEADER, USER_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)]
    request_id, user_id, stamp, signature_hex = values
    if not all(values):
        raise FalSignatureError("missing X-Fal-Webhook-* headers")
    try:
        timestamp = int(stamp)
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise FalSignatureError("the timestamp or the signature is malformed") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise FalSignatureError("the timestamp is outside the tolerance (a replay, or a wrong clock)")
    message = signed_message(request_id, user_id, stamp, body)
    for public in _public_keys(jwks):
        try:
            public.verify(signature, message)
            return request_id
        except InvalidSignature:
            continue
    raise FalSignatureError("no key of the JWKS verifies the signature")


def _public_keys(jwks: Mapping[str, Any]) -> list[Ed25519PublicKey]:
    keys = []
    for jwk in jwks.get("keys") or []:
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        try:
            # fal's live JWKS has been seen with "=" padding on `x`.
            raw = base64.urlsafe_b64decode(str(jwk.get("x", "")).rstrip("=") + "==")
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, binascii.Error):
            continue
    return keys


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
