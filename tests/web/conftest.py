"""Browser tests: Debian's Chromium through pytest-playwright, against a live server, a real
django-q2 cluster and the fal simulator as processes (shared infra.md §5)."""
from __future__ import annotations

import os
import shutil
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
    from tests.processes import running_simulator

    with running_simulator(key="web-key", media_root=str(tmp_path_factory.mktemp("media")), run_seconds=2,
                           runners=1) as env:
        yield env


@pytest.fixture
def studio(studio_processes, live_server, settings) -> Iterator[str]:
    """The live server's URL, with a worker cluster on the same simulator and media folder, started
    for this test (see `tests.processes.live_cluster`)."""
    from tests.processes import live_cluster

    with live_cluster(settings, studio_processes):
        yield live_server.url
