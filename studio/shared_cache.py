"""The default cache, used so that an outage of its server degrades a request instead of failing it.

With `REDIS_URL` set the cache is Redis, shared by every process (settings: "cache"). What the
studio keeps there is worth having but never worth a 500: API throttle counters (an outage lets
calls through unthrottled) and fal's webhook keys (an outage fetches them per webhook). Each helper
logs the failure and answers as if the cache were empty.
"""
import logging
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
CACHE_ERRORS = (RedisError, OSError)


def cache_get(key: str, default: Any = None) -> Any:
    try:
        return cache.get(key, default)
    except CACHE_ERRORS as exc:
        log.warning("cache read of %s failed, going on without it: %s", key, exc)
        return default


def cache_set(key: str, value: Any, timeout: float) -> None:
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        log.warning("cache write of %s failed, going on without it: %s", key, exc)


def cache_add(key: str, value: Any, timeout: float) -> bool:
    """`cache.add`: True when `key` was absent and is now set; False when it was there, or the cache
    could not be reached (so a once-per-period action is skipped, not repeated, during an outage)."""
    try:
        return cache.add(key, value, timeout)
    except CACHE_ERRORS as exc:
        log.warning("cache add of %s failed, going on without it: %s", key, exc)
        return False
