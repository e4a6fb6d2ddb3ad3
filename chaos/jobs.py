"""The jobs of a chaos run: a mix of kinds created on a schedule spread over the run.

- `t2v`: text-to-video through `generation_create`, as the REST API and the web studio create jobs;
- `i2v_data_uri` / `i2v_upload`: image-to-video through `generation_create` with a start image below
  and above STUDIO_FAL_DATA_URI_MAX_BYTES, so submit hands it to fal as a data URI or through fal's
  storage upload;
- `gateway`: text-to-video submitted by fal's official Python client to the studio's `/fal/` gateway,
  from another process (chaos/gateway_client.py), followed to its result and downloaded.

Every job has its own prompt, which is how the audit finds its requests at fal. A create that fails
(the database restarting, our storage refusing the start image) is tried again, as a client would,
and counted in `refusals`.
"""
from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from chaos.workers import ROOT
from core.supervisor import die_with_parent

if TYPE_CHECKING:  # imported before django.setup() (chaos/__main__.py): the model only names types here
    from django.contrib.auth.models import User

T2V, I2V_DATA_URI, I2V_UPLOAD, GATEWAY = "t2v", "i2v_data_uri", "i2v_upload", "gateway"
KINDS = (T2V, I2V_DATA_URI, I2V_UPLOAD, GATEWAY)
CREATE_THREADS = 8
CREATE_GIVE_UP_SECONDS = 120.0  # a create still failing after this long is abandoned (and reported)


@dataclass(frozen=True)
class PlannedJob:
    number: int
    kind: str
    at: float  # seconds after the run's start

    @property
    def prompt(self) -> str:
        return f"chaos job {self.number} ({self.kind}): a lighthouse in a storm"


def plan_jobs(count: int, *, i2v_share: float, gateway_share: float, spread_seconds: float,
              seed: int) -> list[PlannedJob]:
    """`count` jobs evenly spread over `spread_seconds`, kinds in the given shares, shuffled (seeded);
    image-to-video jobs alternate between the small and the large start image."""
    rng = random.Random(seed)
    i2v = round(count * i2v_share)
    gateway = round(count * gateway_share)
    kinds = ([I2V_DATA_URI, I2V_UPLOAD] * i2v)[:i2v] + [GATEWAY] * gateway
    kinds += [T2V] * max(0, count - len(kinds))
    kinds = kinds[:count]
    rng.shuffle(kinds)
    step = spread_seconds / count if count else 0.0
    return [PlannedJob(number, kind, round(number * step, 3)) for number, kind in enumerate(kinds)]


def start_images(limit: int, seed: int) -> dict[str, str]:
    """Two PNG start images as data URIs: one at most `limit` bytes, one above it."""
    small = _png(np.full((36, 64, 3), (220, 40, 40), dtype=np.uint8))
    noise = np.random.default_rng(seed).integers(0, 256, size=(90, 160, 3), dtype=np.uint8)
    large = _png(noise)
    if not len(small) <= limit < len(large):
        raise SystemExit(f"the chaos start images ({len(small)} and {len(large)} bytes) must sit on both sides of "
                         f"STUDIO_FAL_DATA_URI_MAX_BYTES={limit}")
    return {I2V_DATA_URI: _data_uri(small), I2V_UPLOAD: _data_uri(large)}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(data: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class GatewayClients:
    """fal's Python client in a process of its own (chaos/gateway_client.py), fed one job per line."""

    def __init__(self, web_url: str, log_path: str | os.PathLike[str]) -> None:
        self._log = open(log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chaos.gateway_client", "--queue-url", f"{web_url}/fal/"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
            env=_client_env(), preexec_fn=die_with_parent())  # an interrupted run leaves nothing behind
        self.submitted: dict[str, dict] = {}  # prompt -> its "submitted" (or "gave_up") event
        self.finished: dict[str, dict] = {}  # prompt -> its "done" (or "gave_up") event
        self.sent = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="gateway-client-reader", daemon=True)
        self._reader.start()

    def submit(self, prompt: str, key: str) -> None:
        assert self.process.stdin is not None  # opened with stdin=PIPE
        self.process.stdin.write(json.dumps({"prompt": prompt, "key": key}) + "\n")
        self.process.stdin.flush()
        self.sent += 1

    def all_answered(self) -> bool:
        """Every job sent has been submitted (or given up on) by the client."""
        with self._lock:
            return len(self.submitted) >= self.sent

    def finish(self, timeout: float) -> None:
        """No more jobs: let the client follow the ones it has to their end (at most `timeout` s)."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        self._log.close()

    def _read(self) -> None:
        assert self.process.stdout is not None  # opened with stdout=PIPE
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if event["event"] in ("submitted", "gave_up") and event["prompt"] not in self.submitted:
                    self.submitted[event["prompt"]] = event
                if event["event"] in ("done", "gave_up"):
                    self.finished[event["prompt"]] = event


def _client_env() -> dict[str, str]:
    import os

    # An integrator's process: none of the studio's or fal's settings.
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FAL_", "STUDIO_", "AWS_", "DATABASE_", "Q_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass
class Creator:
    """Creates the planned jobs at their times in a thread; direct ones with `generation_create`,
    gateway ones through `gateway` (None when there are none)."""

    plan: list[PlannedJob]
    users: list
    keys: dict  # user pk -> studio API key (for the gateway client)
    images: dict[str, str]
    gateway: GatewayClients | None
    started: float = 0.0
    created: int = 0
    abandoned: list[str] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)  # "<kind>: <exception type>" -> count
    created_at: dict[str, float] = field(default_factory=dict)  # prompt -> wall-clock time of the create
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the create threads share the counts

    def start(self, started: float) -> None:
        self.started = started
        self._thread = threading.Thread(target=self._run, name="chaos-creator", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        # A create refused for a while (the database restarting, storage refusing the start image)
        # is retried in its own thread, so the jobs after it still start on time.
        with ThreadPoolExecutor(max_workers=CREATE_THREADS, thread_name_prefix="chaos-create") as pool:
            for job in self.plan:
                delay = self.started + job.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                owner = self.users[job.number % len(self.users)]
                if job.kind == GATEWAY:
                    assert self.gateway is not None  # gateway jobs are planned only with the clients running
                    self.gateway.submit(job.prompt, self.keys[owner.pk])
                    self.created_at[job.prompt] = time.time()
                    self.created += 1
                else:
                    pool.submit(self._create, job, owner)

    def _create(self, job: PlannedJob, owner: User) -> None:
        from django.db import connection

        try:
            if self._create_retrying(job, owner):
                with self._lock:
                    self.created += 1
        finally:
            connection.close()  # this thread's connection

    def _create_retrying(self, job: PlannedJob, owner: User) -> bool:
        from django.db import connection

        from generations.services.create import generation_create

        model, input = "t2v", {"prompt": job.prompt}
        if job.kind in (I2V_DATA_URI, I2V_UPLOAD):
            model, input = "i2v", {"prompt": job.prompt, "image_url": self.images[job.kind]}
        give_up = time.monotonic() + CREATE_GIVE_UP_SECONDS
        while True:
            try:
                generation_create(owner=owner, model=model, input=input)
                self.created_at[job.prompt] = time.time()
                return True
            except Exception as exc:  # noqa: BLE001 - a database restart or a storage outage: try again
                with self._lock:
                    self.refusals[f"{job.kind}: {type(exc).__name__}"] += 1
                connection.close()  # a connection the restart cut is useless; a new one is opened next time
                if time.monotonic() > give_up:
                    with self._lock:
                        self.abandoned.append(job.prompt)
                    return False
                time.sleep(0.5)
