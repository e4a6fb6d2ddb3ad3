"""Fixtures shared by the whole suite: no internet, users, the fal simulator, a recording task queue."""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from generations.upstream import reset_fal_client
from tests.factories import UserFactory

pytest_plugins = ("tests.storage_backends", "tests.webhook_receiver")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """A test database of this run's own (its name carries the process id), so two runs in one
    checkout, or on one PostgreSQL server, never flush each other's tables."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    test = database.setdefault("TEST", {})
    if database["ENGINE"].endswith("sqlite3"):
        test["NAME"] = str(settings.BASE_DIR / f"test-db-{os.getpid()}.sqlite3")
    else:
        test["NAME"] = f"test_{database['NAME']}_{os.getpid()}"


def _is_local(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to a non-loopback address fails the test (the simulator, S3 and PostgreSQL are local)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address: Any) -> None:
        if not _is_local(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")

    def connect(self: socket.socket, address: Any) -> Any:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def clear_throttle_counts() -> None:
    """Throttle counts live in the cache, or in Redis when `REDIS_URL` is set (CI's Redis pass):
    empty both. On Redis only the throttle's own keys go: the server is also django-q2's broker."""
    from django.conf import settings
    from django.core.cache import cache

    from core.throttle_store import REDIS_KEY_PREFIX

    cache.clear()
    if settings.REDIS_URL:
        import redis

        with redis.Redis.from_url(settings.REDIS_URL) as client:
            keys = list(client.scan_iter(f"{REDIS_KEY_PREFIX}*"))
            if keys:
                client.delete(*keys)


@pytest.fixture(autouse=True)
def fresh_throttle_counts() -> Iterator[None]:
    """Each test starts with no calls counted against anyone."""
    clear_throttle_counts()
    yield
    clear_throttle_counts()


def require(condition: bool, reason: str) -> None:
    """Skip with `reason` when a tool is missing — but under CI the tool must be there, so fail."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def user(db):
    return UserFactory(username="alice", password="alice-password")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob", password="bob-password")


@pytest.fixture
def media_root(settings, tmp_path):
    """Filesystem storage in a fresh folder (unless the environment configured S3 for the run)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def live_web(transactional_db, media_root) -> Iterator[str]:
    """The studio under uvicorn, as `make run` serves it, in a process of its own; its base URL."""
    from tests.processes import child_env, running_web

    with running_web(child_env(MEDIA_ROOT=str(media_root), STUDIO_MAX_STREAMS_PER_USER="40")) as url:
        yield url


@contextmanager
def studio_simulator(settings, **options: Any) -> Iterator[Any]:
    """A fal simulator on a free loopback port (FalSimulator `options`), with the studio's fal
    client pointed at it."""
    from falsim import FalSimulator

    sim = FalSimulator(host="127.0.0.1", port=0, key="test-fal-key", **{"scale": 16, **options}).start()
    settings.FAL_QUEUE_URL = settings.FAL_REST_URL = settings.FAL_API_URL = sim.url
    settings.FAL_KEY = "test-fal-key"
    reset_fal_client()
    try:
        yield sim
    finally:
        reset_fal_client()
        sim.stop()


@pytest.fixture
def fal_sim(settings) -> Iterator[Any]:
    """A simulator whose jobs run for 0.2 s, two at a time."""
    with studio_simulator(settings, runners=2, run_seconds=0.2) as sim:
        yield sim


class RecordingQueue:
    """Stands in for django-q2's broker in unit tests: records enqueues, runs them on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __call__(self, func_path: str, *args: Any, **options: Any) -> str:
        self.calls.append((func_path, args))
        return f"task-{len(self.calls)}"

    def names(self) -> list[str]:
        return [name.rsplit(".", 1)[1] for name, _ in self.calls]

    def run_all(self, *, skip: tuple[str, ...] = ("tracker_run_task",), limit: int = 100) -> int:
        """Run queued tasks in order until none are left (tracker chains are skipped: tests tick directly)."""
        from django.utils.module_loading import import_string

        ran = 0
        while self.calls and ran < limit:
            func_path, args = self.calls.pop(0)
            if func_path.rsplit(".", 1)[1] in skip:
                continue
            import_string(func_path)(*args)
            ran += 1
        return ran


@pytest.fixture
def task_queue(monkeypatch: pytest.MonkeyPatch) -> RecordingQueue:
    """django-q2's broker and the tracking chain's lanes (generations/lanes.py), recorded: a row handed
    to a lane is queued as its service's dotted path, run by `run_all` like a task."""
    from generations.lanes import Lane

    queue = RecordingQueue()
    monkeypatch.setattr("generations.queue.async_task", queue)
    monkeypatch.setattr(Lane, "start",
                        lambda lane, service, pk: bool(queue(f"{service.__module__}.{service.__name__}", pk)))
    return queue


def run_to_the_end(generation: Any, task_queue: Any, *, timeout: float = 60) -> Any:
    """Run a job's queued tasks and tick the tracker (every row due at once) until the job ends;
    returns it refreshed."""
    from datetime import timedelta

    from django.utils import timezone

    from generations.models import Generation
    from generations.services.tracking import tracker_tick

    task_queue.run_all()

    def step() -> None:
        Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))
        tracker_tick()
        task_queue.run_all()

    wait_until(lambda: Generation.objects.get(pk=generation.pk).status in Generation.TERMINAL, step=step,
               timeout=timeout, interval=0.1)
    generation.refresh_from_db()
    return generation


def wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05,
               step: Callable[[], Any] | None = None) -> Any:
    """Call `step` then `predicate` until the predicate is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            step()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
