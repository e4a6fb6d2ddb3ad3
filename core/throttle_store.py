"""Where the API throttle keeps its one number per caller: the time its calls so far would be spent
at the allowed pace (the generic cell rate algorithm; see throttling.py).

Without `REDIS_URL` the number lives in the process's own cache, so each web process counts on its
own. With it the number lives in Redis and one Lua script reads and updates it: one round trip,
atomic, and shared by every web process and machine, so a key's rate is its rate in the whole
studio. An unreachable Redis lets the call through (and logs it): throttling is worth having,
never worth a 500.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
REDIS_KEY_PREFIX = "studio-throttle:"
REDIS_TIMEOUT_SECONDS = 1.0

# KEYS[1]: the caller; ARGV: now, interval, period (seconds). Answers the wait as a string ("0":
# allowed and counted), because Lua numbers returned to Redis lose their fraction.
_TAKE = """
local now, interval, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local spent = math.max(tonumber(redis.call('GET', KEYS[1]) or ARGV[1]), now)
local wait = spent + interval - period - now
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], tostring(spent + interval), 'PX', math.ceil(period * 1000))
return '0'
"""


def throttle_take(key: str, *, interval: float, period: float, now: float | None = None) -> float:
    """Count one call by `key` at a pace of one per `interval` seconds, with bursts of up to
    `period` seconds' worth of calls. Returns 0.0 when the call is allowed (and counted), else the
    seconds until one is (and nothing is counted)."""
    now = time.time() if now is None else now
    if settings.REDIS_URL:
        try:
            return max(float(_take_script(settings.REDIS_URL)(keys=[REDIS_KEY_PREFIX + key],
                                                              args=[now, interval, period])), 0.0)
        except RedisError as exc:
            log.warning("throttle count for %s not reachable in Redis, letting the call through: %s", key, exc)
            return 0.0
    spent_until: float = max(cache.get(key, now), now)
    wait = spent_until + interval - period - now
    if wait > 0:
        return wait
    cache.set(key, spent_until + interval, period)
    return 0.0


_per_thread = threading.local()


def _take_script(url: str) -> Script:
    """The script on a connection of this thread's own (gunicorn's threads each make one call at a
    time): a pooled client's checkout and return were a quarter of the call's CPU time."""
    scripts: dict[str, Script] = _per_thread.__dict__.setdefault("scripts", {})
    if url not in scripts:
        client = Redis.from_url(url, single_connection_client=True, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                socket_timeout=REDIS_TIMEOUT_SECONDS)
        scripts[url] = client.register_script(_TAKE)
    return scripts[url]
