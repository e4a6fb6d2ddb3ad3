"""A live studio for fal's official clients: the web server (pytest-django's live server), a real
django-q2 cluster and the fal simulator as a process, on whatever database and storage the run
uses. Tests using `live_studio` need `@pytest.mark.django_db(transaction=True)`."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_production import collected_static  # noqa: F401 (a fixture, shared with test_stream_limits.py)


@pytest.fixture(scope="module")
def simulator_env(django_db_setup, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The simulator (fast 1 s jobs, tiny renders) and the environment a worker cluster needs to use it."""
    from tests.processes import running_simulator

    with running_simulator(key="gateway-sim-key", media_root=str(tmp_path_factory.mktemp("media")), run_seconds=1,
                           runners=4) as env:
        yield env


@pytest.fixture
def live_studio(simulator_env, live_server, settings) -> Iterator[str]:
    """The live server's URL (no trailing slash), with a worker cluster on the same simulator and
    media folder, started for this test (see `tests.processes.live_cluster`)."""
    from tests.processes import live_cluster

    with live_cluster(settings, simulator_env):
        yield live_server.url


def key_client(user):
    """A Django test client that authenticates as `user` the way fal's clients do."""
    from django.test import Client

    from accounts.keys import api_key_create

    return Client(HTTP_AUTHORIZATION=f"Key {api_key_create(user=user, name='fal')[1]}")


@pytest.fixture
def gw(user):
    return key_client(user)


@pytest.fixture
def other_gw(other_user):
    return key_client(other_user)


@pytest.fixture
def studio_key(user) -> str:
    """A studio API key of `user` (alice), as fal's clients send it: `Authorization: Key <it>`."""
    from accounts.keys import api_key_create

    return api_key_create(user=user, name="fal client")[1]


def probe_video(url: str) -> dict:
    """Download a stored video through its studio link and probe it with PyAV."""
    import io

    import av
    import httpx

    data = httpx.get(url, follow_redirects=True, timeout=30).raise_for_status().content
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {"bytes": len(data), "width": stream.codec_context.width, "height": stream.codec_context.height,
                "frames": frames, "audio": bool(container.streams.audio)}
