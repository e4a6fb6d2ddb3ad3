"""Browser tests: Debian's Chromium through pytest-playwright, against a live server, a real
django-q2 cluster and the fal simulator as processes (shared infra.md §5)."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

# Playwright's sync API runs an event loop in the test thread; Django would refuse ORM calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    from tests.conftest import require

    require(shutil.which("chromium") is not None, "Debian chromium is not installed (apt-get install -y chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def studio_processes(django_db_setup, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The simulator (one runner, 2 s per job, so a queue forms); it keeps no database state."""
    from tests.processes import child_env, free_port, manage, stop, wait_for_port

    port = free_port()
    env = child_env(FAL_QUEUE_URL=f"http://127.0.0.1:{port}", FAL_KEY="web-key",
                    MEDIA_ROOT=str(tmp_path_factory.mktemp("media")), Q_WORKERS="2")
    env.pop("FAL_REST_URL", None)
    falsim = manage("falsim", "--port", str(port), "--key", "web-key", "--scale", "16", "--run-seconds", "2",
                    "--runners", "1", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, falsim)
        yield env
    finally:
        stop(falsim)


@pytest.fixture
def studio(studio_processes, live_server, settings) -> Iterator[str]:
    """The live server's URL, with its settings pointing at the same simulator and media folder as a
    worker cluster started for this test. The cluster starts after (and so stops before) the live
    server's database is set up: a worker still holding locks would deadlock PostgreSQL's flush."""
    from generations.upstream import reset_fal_client
    from tests.processes import manage, stop

    settings.FAL_QUEUE_URL = studio_processes["FAL_QUEUE_URL"]
    settings.FAL_REST_URL = studio_processes["FAL_QUEUE_URL"]
    settings.FAL_KEY = studio_processes["FAL_KEY"]
    settings.MEDIA_ROOT = studio_processes["MEDIA_ROOT"]
    reset_fal_client()
    cluster = manage("qcluster", env=studio_processes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield live_server.url
    finally:
        stop(cluster)
        reset_fal_client()
