"""Creating, checking and revoking API keys (shared design.md §2: shown once, SHA-256 at rest)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from accounts.models import ApiKey

KEY_PREFIX = "ltx_"
PREFIX_LENGTH = 12
# last_used_at is refreshed at most this often, so checking a key rarely writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, user: AbstractBaseUser, name: str) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the raw key, which is never stored or shown again."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name.strip()[:100] or "API key", prefix=raw[:PREFIX_LENGTH],
                                digest=digest(raw))
    return key, raw


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The live key for `raw_key` whose user may sign in, or None. Marks it used."""
    key = (ApiKey.objects.select_related("user")
           .filter(digest=digest(raw_key.strip()), revoked_at__isnull=True, user__is_active=True).first())
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(key: ApiKey) -> None:
    """Revoke `key` (idempotent; the first revocation time is kept)."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
