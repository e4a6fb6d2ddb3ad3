"""Rates per caller, for every way in (the REST API's throttle classes and the gateway alike).

A rate "N/period" (period: s, min, h or day, as DRF writes them; the rates are the REST framework
settings' DEFAULT_THROTTLE_RATES, by scope) allows a burst of N calls, then one call every period/N
(the generic cell rate algorithm). Its state is one number per caller, so checking it costs the same
however busy the caller is. Callers are counted per user — keys are free to create, so a rate per
key would be multiplied by however many keys a user made — or per address when anonymous. Where the
number lives (this process, or Redis for all of them) is throttle_store's business.
"""
from __future__ import annotations

from django.conf import settings

from core.throttle_store import throttle_take

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_of(scope: str) -> tuple[int, int] | None:
    """(calls, period in seconds) of `scope`'s rate, read at call time; None when it has none."""
    rate = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope)
    if not rate:
        return None
    calls, period = rate.split("/")
    return int(calls), PERIODS[period[0]]


def caller_key(scope: str, ident: str) -> str:
    """The count's key for `ident` (`user:<id>` or `ip:<address>`) under `scope`."""
    return f"throttle_{scope}_{ident}"


def rate_take(scope: str, ident: str) -> float:
    """Count one call of `ident` against `scope`'s rate: 0 when it is allowed (and counted), else
    the seconds until the next call would be."""
    rate = rate_of(scope)
    if rate is None:
        return 0.0
    calls, period = rate
    return max(throttle_take(caller_key(scope, ident), interval=period / calls, period=period), 0.0)


def user_rate_take(scope: str, user_id: int) -> float:
    """`rate_take` for user `user_id`, however they authenticated (key, session, the gateway)."""
    return rate_take(scope, f"user:{user_id}")
