"""Open streams on one web process: what 1,000 of them cost it, and whether it still answers.

One production web process (gunicorn with one uvicorn worker, DEBUG off) serves 1,000 gateway status
streams (`…/status/stream?logs=1`) of 1,000 running jobs, held open by plain asyncio sockets in this
process. Measured: the worker's RSS growth from before the streams opened, and a plain API request's
p95 (REST retrieve, bench/loadgen.py) with the streams open — quiet, then while a tenth of the jobs
change every second (a new log line: an event on its stream) — beside the same p95 measured before
they opened.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.report import ROOT, Row
from bench.server import free_port, start_web, stop

STREAMS = 1000
CHANGED_PER_SECOND = 100


def run(streams: int = STREAMS, seconds: float = 5.0) -> list[Row]:
    key, ids = _data(streams)
    port = free_port()
    server = start_web(port, WEB_CONCURRENCY="1", STUDIO_MAX_STREAMS_PER_USER=str(streams + 10),
                       STUDIO_API_RATE="100000000/min")
    base = f"http://127.0.0.1:{port}"
    plain = f"{base}/api/v1/generations/{ids[0]}/"
    try:
        worker = _worker_pid(server.pid)
        before_p95 = _p95(plain, key, seconds)
        rss_before = _rss_mb(worker)
        holder = _StreamHolder(base, key, ids)
        holder.start()
        try:
            opened = holder.wait_open(timeout=120)
            time.sleep(1)
            quiet_p95 = _p95(plain, key, seconds)
            rss_during = _rss_mb(worker)
            threads = _threads(worker)
            changer = _Changer(ids)
            changer.start()
            try:
                time.sleep(1)  # let the events flow before measuring
                changing_p95 = _p95(plain, key, seconds)
                still_open = holder.open_count()
            finally:
                changer.stop()
        finally:
            holder.stop()
    finally:
        stop(server)
    note = f"1 uvicorn worker, {streams} gateway status streams, {CHANGED_PER_SECOND} jobs changing per second"
    print(f"streams bench: {opened} opened, {still_open} still open; RSS {rss_before:.0f} → {rss_during:.0f} MB; "
          f"plain p95 {before_p95:.1f} → {quiet_p95:.1f} ms (quiet), {changing_p95:.1f} ms (changing); "
          f"{holder.events} events received; "
          f"{threads} threads in the worker")
    return [
        Row("streams_open", still_open, "streams", streams, note),
        Row("streams_rss_growth_mb", round(rss_during - rss_before, 1), "MB", round(rss_before, 1),
            "worker RSS with the streams open minus before (baseline: RSS before); target < 200 MB"),
        Row("streams_other_p95_ms", round(quiet_p95, 2), "ms", round(before_p95, 2),
            "REST retrieve p95 while the streams are open (baseline: with none open); target < 100 ms"),
        Row("streams_other_p95_ms_changing", round(changing_p95, 2), "ms", round(before_p95, 2),
            f"the same while {CHANGED_PER_SECOND} of the streamed jobs change a second (an event each)"),
        Row("streams_events_received", holder.events, "events", None, note),
    ]


def _data(count: int) -> tuple[str, list[str]]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.keys import api_key_create
    from generations.models import Generation
    from generations.services.create import generation_create
    from storage.models import UserQuota

    user, _ = get_user_model().objects.get_or_create(username="bench-streams")
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 100_000, "monthly_spend_usd": 1_000_000,
                                                            "storage_bytes": 10**15})
    ids = []
    for n in range(count):
        generation, _ = generation_create(owner=user, model="fal-ai/ltx-2/text-to-video", input={"prompt": f"s {n}"})
        ids.append(str(generation.pk))
    # Jobs fal is running; nothing tracks them here (no worker runs), the bench changes them itself.
    Generation.objects.filter(pk__in=ids).update(status="running", fal_status="IN_PROGRESS", started_at=timezone.now(),
                                                 next_poll_at=None)
    return api_key_create(user=user, name="streams bench")[1], ids


class _StreamHolder(threading.Thread):
    """Holds one status stream per job open on an event loop of its own, reading and counting events."""

    def __init__(self, base: str, key: str, ids: list[str]) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self._host, self._port, self._key, self._ids = parts.hostname or "127.0.0.1", parts.port or 80, key, ids
        self._open = 0
        self.events = 0
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._opened = threading.Event()

    def run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        tasks = [asyncio.create_task(self._one(pk)) for pk in self._ids]
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, pk: str) -> None:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        path = f"/fal/fal-ai/ltx-2/requests/{pk}/status/stream?logs=1"
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\nAuthorization: Key {self._key}\r\n"
                     f"Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        counted = False
        try:
            while line := await reader.readline():
                if line.startswith(b"data: "):
                    self.events += 1
                    if not counted:
                        counted = True
                        self._open += 1
                        if self._open == len(self._ids):
                            self._opened.set()
        finally:
            if counted:
                self._open -= 1
            writer.close()

    def wait_open(self, timeout: float) -> int:
        self._opened.wait(timeout)
        return self._open

    def open_count(self) -> int:
        return self._open

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(30)


class _Changer(threading.Thread):
    """Changes CHANGED_PER_SECOND of the jobs a second (a new log line), as fal's progress would."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self._ids, self._done = ids, threading.Event()

    def run(self) -> None:
        from django.db import connection
        from django.utils import timezone

        from generations.models import Generation

        step = 0
        try:
            while not self._done.wait(0.1):
                chunk = [self._ids[(step * CHANGED_PER_SECOND // 10 + n) % len(self._ids)]
                         for n in range(CHANGED_PER_SECOND // 10)]
                entry = {"message": f"step {step}", "level": "INFO", "source": "USER",
                         "timestamp": "2026-12-07T00:00:00Z"}
                Generation.objects.filter(pk__in=chunk).update(logs=[entry], updated_at=timezone.now())
                step += 1
        finally:
            connection.close()

    def stop(self) -> None:
        self._done.set()
        self.join(10)


def _worker_pid(master: int) -> int:
    """The pid of gunicorn's one worker process (its master's only child)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


def _rss_mb(pid: int) -> float:
    return _proc_status(pid, "VmRSS") / 1024  # kB


def _threads(pid: int) -> int:
    return _proc_status(pid, "Threads")


def _proc_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (its first word after `field:`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} for process {pid}")


def _p95(url: str, key: str, seconds: float) -> float:
    command = [sys.executable, "-m", "bench.loadgen", url, "--seconds", str(seconds), "--turn-seconds",
               str(seconds), "--warmup-seconds", "1", "--concurrency", "4", "--header", f"Authorization: Key {key}"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])[url]
    if result["errors"] or not result["requests"]:
        raise SystemExit(f"streams bench: plain requests failed: {result}")
    return float(result["p95_ms"])
