"""The throttle's count per caller (generations/api/throttle_store.py), in this process's cache and
in a real Redis: the same answers from both, and on Redis one atomic count for every process."""
from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import redis

from core.throttle_store import REDIS_KEY_PREFIX, throttle_take
from tests.outage_proxy import OutageProxy
from tests.processes import require_redis, running_redis

NOW = 1_800_000_000.0
# "3/min": a burst of 3, then one call every 20 s.
PACE = {"interval": 20.0, "period": 60.0}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    require_redis()
    with running_redis() as url:
        yield url


@pytest.fixture(params=["cache", "redis"])
def store(request: pytest.FixtureRequest, settings) -> str:
    """Where the counts live for the test: this process's cache (REDIS_URL unset) or Redis."""
    settings.REDIS_URL = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    return request.param


def test_a_burst_then_one_call_per_interval(store: str) -> None:
    assert [throttle_take("k", now=NOW, **PACE) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle_take("k", now=NOW, **PACE) == pytest.approx(20.0)
    assert throttle_take("k", now=NOW + 5, **PACE) == pytest.approx(15.0)  # a refusal counts nothing
    assert throttle_take("k", now=NOW + 20, **PACE) == 0.0
    assert throttle_take("k", now=NOW + 20, **PACE) == pytest.approx(20.0)


def test_callers_are_counted_apart(store: str) -> None:
    assert [throttle_take("a", now=NOW, **PACE) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle_take("a", now=NOW, **PACE) > 0
    assert throttle_take("b", now=NOW, **PACE) == 0.0


def test_a_quiet_caller_gets_its_whole_burst_back(store: str) -> None:
    for _ in range(3):
        throttle_take("k", now=NOW, **PACE)
    assert [throttle_take("k", now=NOW + 60, **PACE) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(20.0)]


def test_redis_keeps_one_key_per_caller_that_expires_with_the_period(redis_url: str, settings) -> None:
    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    throttle_take("throttle_api_key:7", interval=1.0, period=60.0)
    assert client.keys("*") == [f"{REDIS_KEY_PREFIX}throttle_api_key:7".encode()]
    assert 59_000 < client.pttl(f"{REDIS_KEY_PREFIX}throttle_api_key:7") <= 60_000


def test_on_redis_simultaneous_calls_are_counted_exactly(redis_url: str, settings) -> None:
    # given: a burst of 50 and 200 calls at once from 16 threads (processes would race the same way)
    settings.REDIS_URL = redis_url
    redis.Redis.from_url(redis_url).flushdb()

    with ThreadPoolExecutor(16) as pool:
        waits = list(pool.map(lambda _: throttle_take("k", interval=1.0, period=50.0, now=NOW), range(200)))

    # then: exactly the burst is let through, not one more
    assert waits.count(0.0) == 50


def test_a_redis_outage_lets_calls_through_at_once_and_counting_resumes_after(redis_url: str, settings,
                                                                             caplog) -> None:
    # given: Redis behind a link a test can cut, and a caller who has used its whole burst
    target = urlsplit(redis_url)
    redis.Redis.from_url(redis_url).flushdb()
    with OutageProxy(target.hostname, target.port) as link:
        settings.REDIS_URL = f"redis://127.0.0.1:{link.port}{target.path}"
        assert [throttle_take("k", now=NOW, **PACE) for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(20.0)]

        # when: Redis refuses, then accepts and never answers
        link.mode = "down"
        refused = throttle_take("k", now=NOW, **PACE)
        link.mode = "stall"
        started = time.monotonic()
        stalled = throttle_take("k", now=NOW, **PACE)
        waited = time.monotonic() - started

        # then: each call goes through, the stalled one after the 1 s timeout, not after retries
        assert (refused, stalled) == (0.0, 0.0)
        assert 0.9 < waited < 1.9
        assert sum("letting the call through" in record.getMessage() for record in caplog.records) == 2

        # and: once the link is back, this thread's connection is made again and the count kept
        link.mode = "up"
        assert throttle_take("k", now=NOW, **PACE) == pytest.approx(20.0)
        assert throttle_take("k", now=NOW + 20, **PACE) == 0.0
