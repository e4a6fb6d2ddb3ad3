"""Helpers for tests that run the studio's real processes (simulator, worker cluster, commands)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """A DATABASE_URL for child processes that points at the database this test is using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return env


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}: {process.args}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def manage(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env, **kwargs)


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(*args: str, env: dict[str, str], **kwargs) -> Iterator[subprocess.Popen]:
    """`manage.py *args` as a process (its output discarded unless `stdout`/`stderr` say otherwise),
    stopped on the way out."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    process = manage(*args, env=env, **kwargs)
    try:
        yield process
    finally:
        stop(process)


@contextmanager
def running_simulator(*, key: str, media_root: str, run_seconds: float, runners: int, scale: int = 16,
                      **kwargs) -> Iterator[dict[str, str]]:
    """The fal simulator as a process on a free port, listening; yields the environment a child
    process (a worker cluster, a server) needs to use it: its URL and key, MEDIA_ROOT, two workers
    and the test database."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env(FAL_QUEUE_URL=url, FAL_REST_URL=url, FAL_API_URL=url, FAL_KEY=key, MEDIA_ROOT=media_root,
                    Q_WORKERS="2")
    with running("falsim", "--port", str(port), "--key", key, "--scale", str(scale), "--run-seconds", str(run_seconds),
                 "--runners", str(runners), env=env, **kwargs) as falsim:
        wait_for_port(port, falsim)
        yield env


@contextmanager
def live_cluster(settings, env: dict[str, str], *command: str, **kwargs) -> Iterator[None]:
    """A worker cluster on `env` (from `running_simulator`), with this process's settings — the live
    server's — pointed at the same simulator and media folder. Enter it after the live server's
    database is set up, so the cluster stops before the flush: a worker still holding locks would
    deadlock PostgreSQL's. `command` defaults to `qcluster`; `kwargs` go to `running`."""
    from generations.upstream import reset_fal_client

    settings.FAL_QUEUE_URL = settings.FAL_REST_URL = settings.FAL_API_URL = env["FAL_QUEUE_URL"]
    settings.FAL_KEY = env["FAL_KEY"]
    settings.MEDIA_ROOT = env["MEDIA_ROOT"]
    reset_fal_client()
    try:
        with running(*(command or ("qcluster",)), env=env, **kwargs):
            yield
    finally:
        reset_fal_client()


def require_redis() -> None:
    """Skip (fail under CI) unless a Redis can be had: `REDIS_URL` names one, or `redis-server` is installed."""
    from tests.conftest import require

    require(bool(os.environ.get("REDIS_URL")) or shutil.which("redis-server") is not None,
            "no Redis: set REDIS_URL or install redis-server (apt-get install -y redis-server)")


# On a Redis that `REDIS_URL` names (shared with the rest of the run), the tests that need a queue of
# their own use this database number, emptied before and after.
OWN_REDIS_DB = 13


@contextmanager
def running_redis() -> Iterator[str]:
    """A Redis for django-q2's broker, empty, stopped or emptied on the way out; yields its URL.

    With `REDIS_URL` set (CI's Redis pass), a database of its own on that server; otherwise a
    throwaway `redis-server` on a free loopback port with persistence off. Call `require_redis()` first.
    """
    import redis

    shared = os.environ.get("REDIS_URL")
    if shared:
        parts = urlsplit(shared)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{OWN_REDIS_DB}", parts.query, parts.fragment))
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    port = free_port()
    server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(server)


@contextmanager
def running_gunicorn(env: dict[str, str], *args: str, **kwargs) -> Iterator[tuple[str, subprocess.Popen]]:
    """The studio as production serves it (gunicorn from gunicorn.conf.py, extra `args`) on a free port,
    listening; yields its base URL and the process (whose `returncode` is set once it stopped)."""
    port = free_port()
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "studio.asgi", *args],
                              cwd=ROOT, env={**env, "BIND": f"127.0.0.1:{port}"}, **kwargs)
    try:
        wait_for_port(port, server, timeout=30)
        yield f"http://127.0.0.1:{port}", server
    finally:
        stop(server)


@contextmanager
def running_web(env: dict[str, str], **kwargs) -> Iterator[str]:
    """The studio's web app as `make run` serves it (uvicorn, Procfile) as a process on a free port,
    listening; yields its base URL."""
    port = free_port()
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-m", "uvicorn", "studio.asgi:application", "--host", "127.0.0.1", "--port", str(port),
               "--lifespan", "off"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, **kwargs)
    try:
        wait_for_port(port, server, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started with `start_new_session=True` and everything it spawned — a worker
    cluster's workers, pusher and monitor are its children — like a machine losing power."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
