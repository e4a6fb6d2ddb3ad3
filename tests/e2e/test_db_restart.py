"""A PostgreSQL restart in the middle of a run: the web server and the worker cluster keep going.

Real processes — gunicorn, a django-q2 cluster, the simulator — on the test database; the restart
uses the control command `.ci/run` exports as STUDIO_TEST_PG_CTL (a pg_ctl invocation). Jobs
created before the restart and after it all end stored, each submitted upstream exactly once.
"""
from __future__ import annotations

import os
import shlex
import subprocess

import httpx
import pytest
from django.db import connection

from accounts.keys import api_key_create
from generations.models import Generation
from storage.models import StoredObject, UserQuota
from tests.conftest import require, wait_until
from tests.processes import live_cluster, running_gunicorn, running_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = Generation.Status


@pytest.fixture
def pg_ctl():
    if connection.vendor != "postgresql":
        pytest.skip("restarts PostgreSQL: runs only on PostgreSQL (DATABASE_URL=postgres://…)")
    command = os.environ.get("STUDIO_TEST_PG_CTL", "")
    require(bool(command), "STUDIO_TEST_PG_CTL (how to run pg_ctl for the test cluster) is not set")
    return shlex.split(command)


def restart_postgres(pg_ctl: list[str]) -> None:
    # No pipes: the restarted server inherits them and would keep them open.
    subprocess.run([*pg_ctl, "restart", "-m", "fast", "-w"], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connection.close()  # this process's connection died with the server


@pytest.fixture
def web(simulator_env):
    """gunicorn (one process, threads) on the test database, with persistent connections."""
    env = {**simulator_env, "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "4", "DB_CONN_MAX_AGE": "60"}
    with running_gunicorn(env, "--access-logfile", "/dev/null") as (url, _):
        yield url


@pytest.fixture
def simulator_env(tmp_path):
    with running_simulator(key="restart-key", media_root=str(tmp_path / "media"), run_seconds=3, runners=20) as env:
        yield env


def create_jobs(client: httpx.Client, first: int, count: int) -> list[str]:
    ids = []
    for number in range(first, first + count):
        response = client.post("/api/v1/generations/",
                               json={"model": "t2v", "input": {"prompt": f"restart job {number}"}})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_web_and_workers_survive_a_postgres_restart_mid_run(pg_ctl, user, web, simulator_env, settings, tmp_path):
    key = api_key_create(user=user, name="restart")[1]
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 20})
    log = open(tmp_path / "workers.log", "w")
    # The cluster as production runs it: under `manage.py workers`, with the default task timeout. A
    # task the restart cut short is re-driven once its claim lapses (15 s), not after Q_TIMEOUT.
    with log, live_cluster(settings, simulator_env, "workers", "--check-every", "1", stdout=log,
                           stderr=subprocess.STDOUT), \
            httpx.Client(base_url=web, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        before = create_jobs(client, 0, 5)
        wait_until(lambda: Generation.objects.filter(status__in=[Status.QUEUED, Status.RUNNING]).exists(), timeout=30)

        restart_postgres(pg_ctl)

        # The web server's pooled connection died too: the next request must still succeed.
        assert client.get(f"/api/v1/generations/{before[0]}/").status_code == 200
        after = create_jobs(client, 5, 5)
        try:
            # Within a minute of the restart (each job runs 3 s at the simulator), not Q_TIMEOUT + 30 s.
            done = wait_until(lambda: not Generation.objects.exclude(status__in=[Status.SUCCEEDED, Status.FAILED])
                              .exists() and list(Generation.objects.all()), timeout=75, interval=0.5)
        except AssertionError as exc:
            states = list(Generation.objects.values_list("status", "next_poll_at"))
            log_tail = (tmp_path / "workers.log").read_text()[-3000:]
            raise AssertionError(f"not all terminal: {states}\n{log_tail}") from exc

        assert {str(job.pk) for job in done} == set(before + after)
        assert {job.status for job in done} == {Status.SUCCEEDED}, [(job.status, job.error_message) for job in done]
        stats = httpx.get(f"{simulator_env['FAL_QUEUE_URL']}/_sim/stats").json()
        assert stats["submits"] == 10 and stats["duplicate_submits"] == 0
        assert StoredObject.objects.count() == 20
