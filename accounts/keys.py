"""Creating, checking and revoking API keys (shown once, SHA-256 at rest)."""
from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from accounts.locking import user_row_lock
from accounts.models import ApiKey
from core import rows

KEY_PREFIX = "ltx_"
PREFIX_LENGTH = 12
# last_used_at is refreshed at most this often, so checking a key rarely writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class TooManyApiKeys(Exception):
    """`user` already holds `limit` live keys (STUDIO_MAX_API_KEYS); the message says how to make room."""

    hint = "Revoke a key you no longer use (DELETE /api/v1/keys/{id}/) to make room."

    def __init__(self, *, limit: int, live: int) -> None:
        self.limit, self.live = limit, live
        super().__init__(f"API key limit reached: you have {live} live keys and may have at most {limit} "
                         f"(STUDIO_MAX_API_KEYS). Revoke a key you no longer use to make room.")

    def as_dict(self) -> dict:
        return {"limit": self.limit, "live": self.live, "hint": self.hint}


def api_key_room_check(user: User) -> None:
    """Raise TooManyApiKeys if `user` cannot have another key now (a form's early answer; only
    `api_key_create` decides, under the lock)."""
    live = ApiKey.objects.filter(user=user, revoked_at__isnull=True).count()
    if live >= settings.STUDIO_MAX_API_KEYS:
        raise TooManyApiKeys(limit=settings.STUDIO_MAX_API_KEYS, live=live)


def api_key_create(*, user: User, name: str) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the raw key, which is never stored or shown again.

    Raises TooManyApiKeys (nothing written) when `user` already has STUDIO_MAX_API_KEYS live keys.
    Runs its own transaction, in which the user's row is locked: two creates at once for one user
    are counted one after the other, so they cannot both take the last place."""
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        user_row_lock(user.pk)
        api_key_room_check(user)
        key = ApiKey.objects.create(user=user, name=name.strip()[:100] or "API key", prefix=raw[:PREFIX_LENGTH],
                                    digest=digest(raw))
    return key, raw


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The live key for `raw_key` whose user may sign in, or None. Marks it used (at most once per
    LAST_USED_GRANULARITY, so checking a key is one read and rarely a write).

    Checked against the database on every call, no cache: a revoked key or a suspended user stops
    working on the very next request. The key comes back with its `user` loaded and only its `id`
    and `user_id` (the other fields load on access)."""
    return api_key_authenticate_joined(raw_key, None)[0]


@dataclass(frozen=True)
class KeyJoin:
    """More to read in the key check's own query: `columns` (a SELECT list) from `joins` (LEFT JOINs
    that may use the key as `k` and its user as `u`), with `params` for the placeholders in `joins`."""

    columns: str
    joins: str
    params: tuple = ()


def api_key_authenticate_joined(raw_key: str, join: KeyJoin | None) -> tuple[ApiKey | None, tuple]:
    """`api_key_authenticate`, plus the values of `join.columns` read in the same query (an empty
    tuple when the key is not live, or without `join`): for the endpoints clients poll, where a
    second query per request costs as much as the first."""
    now = timezone.now()
    params = [connection.ops.adapt_datetimefield_value(now - LAST_USED_GRANULARITY),
              *(join.params if join else ()), digest(raw_key.strip()), True]
    with connection.cursor() as cursor:
        cursor.execute(_live_key_sql(connection.alias, join.columns if join else "", join.joins if join else ""),
                       params)
        row = cursor.fetchone()
    if row is None:
        return None, ()
    user_model, user_fields = _user_fields()
    user = rows.instance(user_model, user_fields, row[:len(user_fields)])
    assert user is not None  # a live key's user (an inner join)
    key_id, stale = row[len(user_fields):len(user_fields) + 2]
    key = ApiKey.from_db(connection.alias, ["id", "user_id"], [key_id, user.pk])
    ApiKey.user.field.set_cached_value(key, user)
    if stale:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)
        key.last_used_at = now
    return key, row[len(user_fields) + 2:]


@functools.cache
def _user_fields() -> tuple[type[User], tuple[str, ...]]:
    return get_user_model(), rows.field_names(get_user_model())


@functools.cache
def _live_key_sql(alias: str, join_columns: str, joins: str) -> str:
    """The user's columns, the key's id, 1 if its last_used_at is older than the first parameter
    (else 0), then `join_columns` (from `joins`); for the live key with the digest given as the
    parameter after those of `joins`, of an active user. Written by hand (once) because it runs on
    every API call, and building it with the ORM cost several times what the database spends on it."""
    user_model = get_user_model()
    quote = connections[alias].ops.quote_name

    def column(model: type[Model], name: str) -> str:
        return rows.column(model, name, using=alias)

    last_used = column(ApiKey, "last_used_at")
    return (f"SELECT {rows.columns(user_model, 'u', rows.field_names(user_model), using=alias)}, "
            f"k.{column(ApiKey, 'id')}, "
            f"CASE WHEN k.{last_used} IS NULL OR k.{last_used} < %s THEN 1 ELSE 0 END"
            f"{', ' + join_columns if join_columns else ''} "
            f"FROM {rows.table(ApiKey, using=alias)} k JOIN {rows.table(user_model, using=alias)} u "
            f"ON u.{quote(user_model._meta.pk.column)} = k.{column(ApiKey, 'user')} "
            f"{joins} "
            f"WHERE k.{column(ApiKey, 'digest')} = %s AND k.{column(ApiKey, 'revoked_at')} IS NULL "
            f"AND u.{column(user_model, 'is_active')} = %s")


def api_key_revoke(key: ApiKey) -> None:
    """Revoke `key` (idempotent; the first revocation time is kept)."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


SCHEMES = ("bearer", "key")


def api_key_in(request: HttpRequest) -> str | None:
    """The key of an `Authorization: Bearer <key>` (or `Key <key>`) header; "" when the scheme has no
    key after it; None without such a header."""
    scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return raw.strip() if scheme.lower() in SCHEMES else None
