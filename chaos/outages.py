"""The deliberate outages of a chaos run, each at its time and for its length, with the window it
really took (wall-clock seconds, for the audit's recovery times):

- `ProviderLock`: fal locks the studio's account (the simulator's `locked` setting: submits, storage
  uploads and the request listing answer 403 "User is locked. Reason: …"), then unlocks it;
- `FilesystemOutage`: the media root refuses writes (`chattr -R +i`: EPERM for every create, write,
  rename and delete, as root on ext4 and most Linux filesystems), then accepts them again;
- `S3Outage`: the link to the S3 endpoint is cut (tests/outage_proxy.py's OutageProxy, which the
  studio's AWS_S3_ENDPOINT_URL points at, set "down"), then restored;
- `PostgresRestart`: `pg_ctl restart -m fast -w` on the run's PostgreSQL.

An outage that cannot run here says why (`skipped`) instead. `Schedule.stop()` ends whatever is
still on, so an interrupted run never leaves the media root immutable or the account locked.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from falsim.simulator import FalSimulator
    from tests.outage_proxy import OutageProxy


@dataclass
class Outage:
    name: str
    at: float  # seconds after the run's start
    seconds: float
    skipped: str = ""  # why it does not run here
    started: float | None = None  # wall-clock (epoch) seconds
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.started is not None and self.ended is None

    def begin(self) -> None:
        self.started = time.time()
        self._begin()

    def end(self) -> None:
        if self.active:
            self._end()
            self.ended = time.time()

    def is_over(self, now_offset: float) -> bool:
        return now_offset >= self.at + self.seconds

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def figures(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        figures = {"planned_at_s": self.at, "planned_seconds": self.seconds}
        if self.started is not None and self.ended is not None:
            figures["seconds"] = round(self.ended - self.started, 1)
        return figures


class ProviderLock(Outage):
    REASON = "Exhausted balance"

    def __init__(self, sim: FalSimulator, at: float, seconds: float) -> None:
        super().__init__("provider_lock", at, seconds)
        self.sim = sim

    def _begin(self) -> None:
        self.sim.set_faults(locked=self.REASON)

    def _end(self) -> None:
        self.sim.set_faults(locked="")


class FilesystemOutage(Outage):
    def __init__(self, root: str, at: float, seconds: float) -> None:
        super().__init__("storage_outage", at, seconds)
        self.root = root
        self.skipped = immutable_unsupported(root)

    def _begin(self) -> None:
        # Files that appear or vanish during the walk make chattr complain; the tree is refused anyway.
        _chattr("+i", self.root)

    def _end(self) -> None:
        for _ in range(3):  # nothing can be created or removed meanwhile, so this converges at once
            if _chattr("-i", self.root) == 0:
                return
        raise RuntimeError(f"could not make {self.root} writable again: run `chattr -R -i {self.root}`")

    def figures(self) -> dict:
        return {**super().figures(), "how": "chattr -R +i on MEDIA_ROOT (writes fail with EPERM)"}


def _chattr(flag: str, root: str) -> int:
    return subprocess.run(["chattr", "-R", "-f", flag, root], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def immutable_unsupported(root: str) -> str:
    """Why `chattr +i` cannot make writes under `root` fail here, or "" when it can (checked on a probe file)."""
    if shutil.which("chattr") is None:
        return "chattr is not installed"
    os.makedirs(root, exist_ok=True)
    probe = tempfile.mkdtemp(prefix=".chaos-probe-", dir=root)
    try:
        if subprocess.run(["chattr", "+i", probe], capture_output=True).returncode != 0:
            return "chattr +i is refused here (needs root, and a filesystem with the immutable flag, such as ext4)"
        try:
            open(os.path.join(probe, "write-test"), "wb").close()
        except PermissionError:
            return ""
        return "chattr +i does not stop writes here"
    finally:
        subprocess.run(["chattr", "-i", probe], capture_output=True)
        shutil.rmtree(probe, ignore_errors=True)


class S3Outage(Outage):
    def __init__(self, proxy: OutageProxy, at: float, seconds: float) -> None:
        super().__init__("storage_outage", at, seconds)
        self.proxy = proxy

    def _begin(self) -> None:
        self.proxy.mode = "down"

    def _end(self) -> None:
        self.proxy.mode = "up"

    def figures(self) -> dict:
        return {**super().figures(), "how": "S3 endpoint behind a proxy that resets every connection"}


class PostgresRestart(Outage):
    """Takes as long as pg_ctl does; `seconds` is ignored."""

    def __init__(self, pg_ctl: str, at: float, *, skipped: str = "") -> None:
        super().__init__("pg_restart", at, 0.0, skipped=skipped)
        self.command = shlex.split(pg_ctl)
        self._thread: threading.Thread | None = None
        self._finished_at: float | None = None
        self.error = ""

    def _begin(self) -> None:
        self._thread = threading.Thread(target=self._restart, name="pg-restart", daemon=True)
        self._thread.start()

    def _restart(self) -> None:
        # No pipes: the restarted server inherits them and would keep them open.
        run = subprocess.run([*self.command, "restart", "-m", "fast", "-w"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, timeout=120)
        if run.returncode:
            self.error = f"pg_ctl restart exited with {run.returncode}"
        self._finished_at = time.time()

    def end(self) -> None:
        if self.active:
            assert self._thread is not None  # begun, so its thread exists
            self._thread.join()
            self.ended = self._finished_at or time.time()

    def is_over(self, now_offset: float) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def figures(self) -> dict:
        figures = super().figures()
        figures.pop("planned_seconds", None)
        return {**figures, **({"error": self.error} if self.error else {})}


class Schedule:
    """Begins and ends the outages at their times (`tick` from the run's loop)."""

    def __init__(self, outages: list[Outage]) -> None:
        self.outages = outages

    def tick(self, offset: float) -> None:
        for outage in self.outages:
            if outage.skipped:
                continue
            if outage.started is None and offset >= outage.at:
                outage.begin()
                print(f"{offset:5.0f} s  {outage.name} begins", flush=True)
            elif outage.active and outage.is_over(offset):
                outage.end()
                print(f"{offset:5.0f} s  {outage.name} ends", flush=True)

    def done(self) -> bool:
        """Every outage that runs here has begun and ended."""
        return all(outage.skipped or outage.ended is not None for outage in self.outages)

    def windows(self) -> list[tuple[str, float, float]]:
        return [(o.name, o.started, o.ended) for o in self.outages if o.started is not None and o.ended is not None]

    def stop(self) -> None:
        for outage in self.outages:
            outage.end()

    def figures(self) -> dict:
        return {outage.name: outage.figures() for outage in self.outages}
