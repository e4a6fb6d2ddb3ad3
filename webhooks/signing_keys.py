"""The studio's own Ed25519 key for the gateway's fal-style webhooks, and its public JWKS.

STUDIO_SIGNING_KEY (base64 of the raw 32-byte private key) is used when set, and is required
with DEBUG off. In development one key is generated on first use and kept in the database, so
every process (web and workers) signs with the same key and the published JWKS stays valid
across restarts.
"""
from __future__ import annotations

import base64
import binascii
import functools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from fal_protocol.signature import public_jwk
from webhooks.models import SigningKey

DEVELOPMENT_KEY_NAME = "development"


def new_signing_key() -> str:
    """A new random private key, as STUDIO_SIGNING_KEY wants it."""
    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def studio_signing_key() -> Ed25519PrivateKey:
    return _key_from(settings.STUDIO_SIGNING_KEY or _development_key())


def studio_jwks() -> dict:
    """The public half of the signing key, as fal publishes its own (`{"keys": [JWK]}`)."""
    return {"keys": [public_jwk(studio_signing_key().public_key())]}


@functools.lru_cache(maxsize=4)
def _key_from(encoded: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(encoded, validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured("STUDIO_SIGNING_KEY must be base64 of a raw 32-byte Ed25519 private key") from None


def _development_key() -> str:
    row = SigningKey.objects.filter(name=DEVELOPMENT_KEY_NAME).first()
    if row is None:
        try:
            with transaction.atomic():
                row = SigningKey.objects.create(name=DEVELOPMENT_KEY_NAME, private_key=new_signing_key())
        except IntegrityError:  # another process created it first: use theirs
            row = SigningKey.objects.get(name=DEVELOPMENT_KEY_NAME)
    return row.private_key
