"""The studio's production web server (gunicorn with gunicorn.conf.py: uvicorn workers, DEBUG off) for benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from bench.report import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(port: int, **env_overrides: str) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:`port` (2 uvicorn worker processes), on the bench's database; returns once it listens."""
    from django.conf import settings

    from webhooks.signing_keys import new_signing_key

    # The same SECRET_KEY as the bench's worker cluster: django-q2 signs every task with it, and a
    # worker silently drops tasks another key signed.
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": settings.SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1",
           "STUDIO_SIGNING_KEY": new_signing_key(), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2",
           "STATIC_ROOT": tempfile.mkdtemp(prefix="bench-static-"), **env_overrides}
    # Its errors go to a file beside the bench's scratch database, for when a figure looks wrong.
    log = open(os.path.join(tempfile.gettempdir(), f"bench-web-{port}.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "studio.asgi",
                               "--access-logfile", "/dev/null"], cwd=ROOT, env=env, stdout=log, stderr=log)
    log.close()
    # Ready when the studio itself answers, not when gunicorn's port listens: its workers load the
    # application after the port is bound, which on a busy machine takes seconds.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("gunicorn did not answer /livez within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
