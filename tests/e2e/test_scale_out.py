"""Scale-out: two worker clusters (separate processes, one queue name) and two web servers on one
PostgreSQL + Redis track the same jobs with no job handled twice — and one cluster finishes
everything when the other is killed mid-run.

Needs PostgreSQL (SQLite is not a database several machines share) and Redis (a throwaway
`redis-server`, or a database of its own on the server `REDIS_URL` names). Storage is a fresh bucket
on the S3 server `AWS_S3_ENDPOINT_URL` names, or a temporary folder. `STUDIO_SCALE_OUT_JOBS` raises N
for a measurement by hand (docs/scaling.md).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.db import connection

from accounts.keys import api_key_create
from generations.models import Generation, GenerationAttempt, TrackerLease
from storage.models import StoredObject, StoredVideo, UserQuota
from storage.reconcile import storage_reconcile
from tests.conftest import wait_until
from tests.processes import child_env, kill_group, require_redis, running, running_redis, running_simulator, running_web
from tests.s3server import create_bucket, delete_bucket, storages_setting
from tests.storage_backends import FILESYSTEM_STORAGES

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
JOBS = int(os.environ.get("STUDIO_SCALE_OUT_JOBS", "40"))
TERMINAL = (Generation.Status.SUCCEEDED, Generation.Status.FAILED, Generation.Status.CANCELED)
SUBMIT_TASK = "generations.tasks.generation_submit_task"
STORE_TASK = "generations.tasks.generation_store_task"


@dataclass
class Studio:
    """What a test sees of the running studio: the web servers' URLs, the clusters and their logs."""

    sim_url: str
    web_urls: list[str]
    clusters: list[subprocess.Popen]
    logs: list[Path]
    api_key: str

    def create(self, count: int) -> list[str]:
        """`count` jobs through the REST API at once, spread over both web servers; their ids."""
        def post(i: int) -> str:
            response = httpx.post(f"{self.web_urls[i % len(self.web_urls)]}/api/v1/generations/", timeout=60,
                                  headers={"Authorization": f"Bearer {self.api_key}"},
                                  json={"model": "t2v", "input": {"prompt": f"scale-out job {i}"}})
            assert response.status_code == 201, response.text
            return response.json()["id"]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(post, range(count)))

    def tasks_run(self, index: int) -> Counter:
        """How many times cluster `index` started each task function (from its django-q2 log)."""
        text = self.logs[index].read_text(errors="replace")
        return Counter(re.findall(r" processing \S+ '([\w.]+)'", text))

    def sim_submits_by_prompt(self) -> Counter:
        requests = httpx.get(f"{self.sim_url}/_sim/requests").json()
        return Counter(request["input"]["prompt"] for request in requests)

    def sim_stats(self) -> dict:
        return httpx.get(f"{self.sim_url}/_sim/stats").json()


@pytest.fixture
def shared_storage(settings, tmp_path) -> Iterator[dict[str, str]]:
    """One storage for the test and every process: a fresh S3 bucket when an S3 server is configured
    (CI), else a folder. Yields the environment the processes need for it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    endpoint = os.environ.get("AWS_S3_ENDPOINT_URL")
    if not endpoint:
        settings.STORAGES = FILESYSTEM_STORAGES
        yield {"MEDIA_ROOT": str(settings.MEDIA_ROOT), "AWS_STORAGE_BUCKET_NAME": ""}
        return
    target = create_bucket(endpoint)
    settings.STORAGES = storages_setting(target)
    try:
        yield {"MEDIA_ROOT": str(settings.MEDIA_ROOT), "AWS_STORAGE_BUCKET_NAME": target.bucket,
               "AWS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": target.access_key,
               "AWS_SECRET_ACCESS_KEY": target.secret, "AWS_S3_REGION_NAME": target.region}
    finally:
        delete_bucket(target)


def start_studio(stack: ExitStack, *, storage_env: dict[str, str], tmp_path: Path, run_seconds: float,
                 runners: int, **extra_env: str) -> Studio:
    if connection.vendor != "postgresql":
        pytest.skip("two worker clusters need a shared PostgreSQL (DATABASE_URL=postgres://…); SQLite is one machine's")
    require_redis()
    from django.contrib.auth import get_user_model
    from django_q.models import Schedule

    # A transactional test's flush removed the sweeper schedule migration 0002 made; a deployed studio has it.
    Schedule.objects.update_or_create(func="generations.tasks.sweep_task", defaults={
        "name": "generations sweeper", "schedule_type": "I", "minutes": 1, "repeats": -1})
    user = get_user_model().objects.create_user(username="scale", password="scale-password")
    UserQuota.objects.create(user=user, active_jobs=100_000, monthly_spend_usd=1_000_000, storage_bytes=10**15)
    _, api_key = api_key_create(user=user, name="scale-out")

    redis_url = stack.enter_context(running_redis())
    sim_env = stack.enter_context(running_simulator(
        key="scale-key", media_root=storage_env["MEDIA_ROOT"], run_seconds=run_seconds, runners=runners, scale=64))
    env = {**sim_env, **storage_env, **extra_env, "REDIS_URL": redis_url, "STUDIO_FAL_WEBHOOKS": "false",
           "STUDIO_API_CREATE_RATE": "100000/min", "STUDIO_API_RATE": "100000/min"}
    clusters, logs = [], []
    for name in ("a", "b"):
        log = tmp_path / f"cluster-{name}.log"
        handle = stack.enter_context(log.open("w"))
        # Its own session, so `kill_group` takes the cluster's worker processes down with it.
        clusters.append(stack.enter_context(running("qcluster", env=env, stdout=handle, stderr=subprocess.STDOUT,
                                                    start_new_session=True)))
        logs.append(log)
    web_urls = [stack.enter_context(running_web(env)) for _ in range(2)]
    return Studio(sim_url=sim_env["FAL_QUEUE_URL"], web_urls=web_urls, clusters=clusters, logs=logs, api_key=api_key)


def wait_all_terminal(ids: list[str], timeout: float) -> None:
    wait_until(lambda: not Generation.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists(),
               timeout=timeout, interval=0.5)


def assert_each_job_done_once(studio: Studio, ids: list[str], *, copies_per_job: int | None = 1) -> None:
    """Every job succeeded, was sent to fal once and stored once, and the ledger balances.

    `copies_per_job`: how many times each job's video was downloaded (None: at least once — after a
    crash a second run may copy it again, onto the same keys)."""
    jobs = list(Generation.objects.filter(pk__in=ids))
    assert Counter(job.status for job in jobs) == {Generation.Status.SUCCEEDED: len(ids)}
    assert studio.sim_submits_by_prompt() == {f"scale-out job {i}": 1 for i in range(len(ids))}
    attempts = GenerationAttempt.objects.filter(generation__in=ids)
    assert Counter(attempts.filter(kind=GenerationAttempt.Kind.SUBMIT).values_list("generation", flat=True)) == {
        job.pk: 1 for job in jobs}
    copies = Counter(attempts.filter(kind=GenerationAttempt.Kind.DOWNLOAD).values_list("generation", flat=True))
    assert set(copies) == {job.pk for job in jobs}
    if copies_per_job is not None:
        assert set(copies.values()) == {copies_per_job}
    assert len({job.fal_request_id for job in jobs}) == len(ids)
    assert StoredVideo.objects.count() == len(ids)
    assert len({job.video_id for job in jobs}) == len(ids)
    # A video and its poster per job, no other object, and the storage listing agrees (no orphans).
    assert StoredObject.objects.filter(key__endswith=".mp4").count() == len(ids)
    assert StoredObject.objects.count() == 2 * len(ids)
    drift = storage_reconcile()
    assert drift.clean, drift
    assert TrackerLease.objects.count() == 1


def test_two_clusters_share_the_jobs_and_none_is_handled_twice(shared_storage, tmp_path):
    with ExitStack() as stack:
        # As many runners as jobs: none waits in fal's queue, so each is polled every second it runs.
        studio = start_studio(stack, storage_env=shared_storage, tmp_path=tmp_path, run_seconds=3.0, runners=JOBS)
        started = time.monotonic()
        ids = studio.create(JOBS)
        wait_all_terminal(ids, timeout=120 + JOBS)
        elapsed = time.monotonic() - started
        assert_each_job_done_once(studio, ids)

        # Both clusters did the work. Delivery is at least once: under a backlog the tracker re-drives
        # a submit still waiting in the queue, and the twin finds the job already sent and does nothing.
        per_cluster = [studio.tasks_run(i) for i in range(2)]
        assert per_cluster[0][SUBMIT_TASK] + per_cluster[1][SUBMIT_TASK] >= JOBS
        assert per_cluster[0][STORE_TASK] + per_cluster[1][STORE_TASK] >= JOBS
        assert per_cluster[0][SUBMIT_TASK] > 0 and per_cluster[0][STORE_TASK] > 0
        assert per_cluster[1][SUBMIT_TASK] > 0 and per_cluster[1][STORE_TASK] > 0

        # One tracking chain at a time (the lease): a job is polled again a second after the last
        # answer was recorded, the first time a second after submit, so its k-th poll lands no earlier
        # than k seconds after submit. Two chains polling side by side would ask about twice as often.
        jobs = Generation.objects.filter(pk__in=ids)
        allowed = sum(int((job.completed_at - job.submitted_at).total_seconds()) for job in jobs)
        status_calls = studio.sim_stats()["status_calls"]
        assert 0 < status_calls <= allowed, (status_calls, allowed)
        print(f"\nscale-out: {JOBS} jobs in {elapsed:.1f} s; cluster a ran {dict(per_cluster[0])}, "
              f"cluster b ran {dict(per_cluster[1])}; {status_calls} status calls (at most {allowed} allowed)")


def test_the_other_cluster_finishes_everything_when_one_is_killed(shared_storage, tmp_path):
    # A short django-q2 timeout: a store task lost with the killed cluster is re-driven after it + 30 s.
    # It stays above a tracking chain link's 20 s, or every link would be killed before renewing itself.
    with ExitStack() as stack:
        studio = start_studio(stack, storage_env=shared_storage, tmp_path=tmp_path, run_seconds=2.0, runners=4,
                              Q_TIMEOUT="30", Q_RETRY="35")
        jobs = JOBS // 2
        ids = studio.create(jobs)
        # Kill once every job is at fal: a submit cut off mid-call has an unknown outcome and is, by
        # design, never resent (it could pay twice), so that moment is not one a test can expect to heal.
        in_flight = (Generation.Status.PENDING, Generation.Status.SUBMITTING)
        wait_until(lambda: not Generation.objects.filter(pk__in=ids, status__in=in_flight).exists(), timeout=60)
        unfinished = Generation.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).count()
        killed_at = time.monotonic()
        kill_group(studio.clusters[0])
        assert studio.clusters[0].returncode == -9
        assert unfinished > 0  # the kill really was mid-run

        wait_all_terminal(ids, timeout=240)
        print(f"\nkilled cluster a with {unfinished} of {jobs} jobs unfinished; cluster b finished them "
              f"{time.monotonic() - killed_at:.1f} s later")
        assert studio.clusters[1].poll() is None
        assert_each_job_done_once(studio, ids, copies_per_job=None)


def test_clusters_spawned_with_REDIS_URL_take_their_tasks_from_redis(tmp_path):
    """CI's Redis pass runs the integration tests with REDIS_URL set: their clusters (and this test
    process) must really use Redis then, not the ORM broker."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("only in the Redis pass (REDIS_URL set)")
    import redis
    from django_q.brokers import get_broker
    from django_q.brokers.redis_broker import Redis
    from django_q.tasks import async_task, result

    broker = get_broker()
    assert isinstance(broker, Redis)
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    with running("qcluster", env=child_env()):
        # The cluster registers itself in the broker it uses.
        wait_until(lambda: client.keys("django_q:*:cluster*"), timeout=30)
        task_id = async_task("math.hypot", 3, 4)
        assert result(task_id, wait=30_000) == 5.0
    assert client.llen(broker.list_key) == 0
