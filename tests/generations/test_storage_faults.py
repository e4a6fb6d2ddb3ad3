"""Our own storage failing while a finished video is copied in: the job waits in STORING, is retried
with backoff for as long as the outage lasts, and completes once storage is back — one object set,
one charge, no drift. The S3 server is moto over HTTP behind a proxy whose link the test cuts."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from botocore.config import Config
from django.utils import timezone

from generations.models import Generation, GenerationAttempt
from generations.services.tracking import tracker_tick
from storage.models import StoredObject, UsageEntry
from storage.reconcile import storage_reconcile
from tests.generations.test_pipeline import create, make_due, track_until
from tests.outage_proxy import OutageProxy
from tests.s3server import create_bucket, delete_bucket, s3_client, storages_setting

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status
Outcome = GenerationAttempt.Outcome


@pytest.fixture
def s3_link(settings, s3_endpoint, media_root):
    """S3 storage reached through an OutageProxy; botocore gives up fast so outages show quickly."""
    target = create_bucket(s3_endpoint)
    endpoint = urlsplit(s3_endpoint)
    with OutageProxy(endpoint.hostname, endpoint.port) as proxy:
        config = Config(s3={"addressing_style": "path"}, signature_version="s3v4", connect_timeout=1, read_timeout=1,
                        retries={"max_attempts": 2, "mode": "standard"})
        settings.STORAGES = storages_setting(target, endpoint_url=proxy.url, client_config=config)
        proxy.bucket_keys = lambda: sorted(item["Key"] for item in s3_client(target).list_objects_v2(
            Bucket=target.bucket).get("Contents", []))
        yield proxy
    delete_bucket(target)


def store_now(generation, task_queue):
    """Make the row due, let the tracker enqueue its store, and run it."""
    make_due(generation)
    tracker_tick()
    task_queue.run_all()
    return Generation.objects.get(pk=generation.pk)


# "down": connections reset, past the download attempt cap (5); "stall": read timeouts, slower, twice.
@pytest.mark.parametrize("outage, stores", [("down", 7), ("stall", 2)])
def test_storage_outage_keeps_the_job_storing_until_storage_returns(fal_sim, user, task_queue, s3_link, outage, stores):
    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    s3_link.mode = outage
    task_queue.run_all()  # the store the tracker enqueued when it saw COMPLETED

    # An outage of ours never fails the job, however many stores it spans.
    for number in range(2, stores + 1):
        before = timezone.now()
        row = store_now(generation, task_queue)
        assert row.status == Status.STORING
        assert row.next_poll_at > before + timedelta(seconds=1)  # backed off, not hammered
        unavailable = row.attempts.filter(kind="download", outcome=Outcome.UNAVAILABLE)
        assert unavailable.count() == number
    assert "could not" not in row.error_message and row.error_code == ""
    assert StoredObject.objects.count() == 0
    assert list(UsageEntry.objects.filter(job=generation.pk).values_list("event", flat=True)) == ["reserve"]

    s3_link.mode = "up"
    row = store_now(generation, task_queue)
    assert row.status == Status.SUCCEEDED
    keys = {f"users/{user.pk}/generations/{generation.pk}/{name}" for name in ("video.mp4", "poster.jpg")}
    assert set(StoredObject.objects.values_list("key", flat=True)) == keys
    assert set(s3_link.bucket_keys()) == keys
    assert sorted(UsageEntry.objects.filter(job=generation.pk).values_list("event", flat=True)) == ["reserve", "settle"]
    assert row.attempts.filter(kind="result").count() == 1
    assert fal_sim.stats()["submits"] == 1
    assert storage_reconcile().clean


def test_a_bad_download_still_counts_against_its_own_cap_after_an_outage(fal_sim, user, task_queue, s3_link,
                                                                          monkeypatch):
    """Outage attempts are not download attempts: after two outages, five broken downloads fail the job."""
    from storage.transfer import TransferError

    generation = create(user)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    s3_link.mode = "down"
    task_queue.run_all()
    store_now(generation, task_queue)
    s3_link.mode = "up"

    def broken(**kwargs):
        raise TransferError("network", "connection reset by peer")

    monkeypatch.setattr("generations.services.store.video_store_from_url", broken)
    for _ in range(4):
        assert store_now(generation, task_queue).status == Status.STORING
    row = store_now(generation, task_queue)
    assert (row.status, row.error_code) == (Status.FAILED, "download_failed")
    assert row.attempts.filter(kind="download", outcome=Outcome.UNAVAILABLE).count() == 2
    assert row.attempts.filter(kind="download", outcome=Outcome.ERROR).count() == 5
    assert sorted(UsageEntry.objects.filter(job=generation.pk).values_list("event", flat=True)) == [
        "release", "reserve"]
