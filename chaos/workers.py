"""A django-q2 worker cluster as a process group that chaos can SIGKILL, in part or whole, and restart."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.supervisor import child_running, children_of, descendants, die_with_parent  # noqa: F401 (descendants: for tests)

ROOT = Path(__file__).resolve().parent.parent


class Cluster:
    """The studio's supervised worker cluster (`manage.py workers`, core/supervisor.py) in its own session.

    Below the supervisor: qcluster's main process → sentinel → pusher, monitor and workers, and beside
    qcluster the supervisor's helpers (the tracking driver, the store driver, the stream follower).
    django-q2's guard reincarnates a pusher, monitor or worker that dies; the supervisor restarts the
    whole cluster when it dies or wedges, and a helper that dies. Chaos kills at both levels (a helper
    counts as one process; a whole-cluster kill takes the helpers too, as a worker host dying would)
    and never restarts anything itself.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([sys.executable, "manage.py", "workers", "--check-every", "1"], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=die_with_parent())

    def wait_ready(self, workers: int, timeout: float) -> None:
        """Wait until the cluster's workers run (the sentinel has its workers, pusher and monitor)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            main = self._qcluster()
            sentinels = children_of(main) if main else []
            if sum(len(children_of(sentinel)) for sentinel in sentinels) >= workers + 2:
                return
            time.sleep(0.2)
        raise SystemExit(f"the worker cluster did not start within {timeout:g} s: see {self.log_path}")

    def _qcluster(self) -> int | None:
        # The supervisor's other children are its helpers (the store driver, the stream follower).
        assert self.process is not None, "start() first"
        return child_running(self.process.pid, "qcluster")

    def _helpers(self, main: int | None) -> list[int]:
        """The supervisor's children other than `main`, qcluster's main process."""
        assert self.process is not None, "start() first"
        return [pid for pid in children_of(self.process.pid) if pid != main]

    def kill_one_process(self, rng: random.Random) -> bool:
        """SIGKILL, at random, one of the sentinel's children (a worker, the pusher or the monitor) or
        one of the supervisor's helpers."""
        main = self._qcluster()
        sentinels = children_of(main) if main else []
        candidates = [pid for sentinel in sentinels for pid in children_of(sentinel)] + self._helpers(main)
        if not candidates:
            return False
        try:
            os.kill(rng.choice(candidates), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def kill_whole_cluster(self) -> bool:
        """SIGKILL every process of the cluster and the helpers at once; the supervisor starts them again."""
        main = self._qcluster()
        if main is None:
            return False
        helpers = self._helpers(main)
        try:
            os.killpg(main, signal.SIGKILL)
        except ProcessLookupError:
            return False
        for helper in helpers:
            try:
                os.kill(helper, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return True

    def restarts(self) -> int:
        """How often the supervisor restarted the cluster (it logs each restart)."""
        return self.log_path.read_text().count("restarting the worker cluster")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # the supervisor stops its cluster, then exits
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
