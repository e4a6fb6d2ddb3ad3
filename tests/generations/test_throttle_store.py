"""The throttle's count per caller (generations/api/throttle_store.py), in this process's cache and
in a real Redis: the same answers from both, and on Redis one atomic count for every process."""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from generations.api.throttle_store import REDIS_KEY_PREFIX, throttle_take
from tests.conftest import require
from tests.processes import redis_available, running_redis

NOW = 1_800_000_000.0
# "3/min": a burst of 3, then one call every 20 s.
PACE = {"interval": 20.0, "period": 60.0}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    require(redis_available(), "redis-server is not installed (apt-get install -y redis-server)")
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
