"""A django-q2 worker cluster as a process group that chaos can SIGKILL, in part or whole, and restart."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


class Cluster:
    """`manage.py qcluster` in its own session. django-q2 runs it as: main → sentinel → pusher, monitor
    and workers; the sentinel's guard reincarnates any of the last three that dies."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def kill_one_process(self, rng: random.Random) -> bool:
        """SIGKILL one of the sentinel's children (a worker, the pusher or the monitor) at random."""
        sentinels = children_of(self.process.pid)
        grandchildren = [pid for sentinel in sentinels for pid in children_of(sentinel)]
        if not grandchildren:
            return False
        try:
            os.kill(rng.choice(grandchildren), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def kill_all_and_restart(self) -> None:
        """SIGKILL the whole cluster (every process in its group), then start a fresh one."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
