"""Webhook delivery against a real HTTP receiver: events of real jobs, signatures, retries, guards, ping, redeliver."""
from __future__ import annotations

import importlib
import socket
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule

from generations.models import Generation
from generations.services.cancel import generation_cancel
from generations.services.create import generation_create
from generations.services.tracking import tracker_tick
from generations.transitions import transition
from tests.conftest import wait_until
from tests.webhook_receiver import STALL_SECONDS, Received
from webhooks import services
from webhooks.models import MAX_ATTEMPTS, JobWebhookSecret, WebhookAttempt, WebhookDelivery, WebhookEvent
from webhooks.services import (
    job_webhook_secret_rotate,
    retry_delay,
    webhook_deliveries_enqueue_due,
    webhook_delivery_send,
    webhook_endpoint_create,
)
from webhooks.signing import WebhookVerificationError, webhook_verify

pytestmark = pytest.mark.django_db(transaction=True)

Status = Generation.Status
Delivery = WebhookDelivery.Status
Outcome = WebhookAttempt.Outcome


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    monkeypatch.setattr(services, "SEND_TIMEOUT_SECONDS", STALL_SECONDS / 3)


def verifies(secret: str, request: Received) -> bool:
    try:
        webhook_verify(secret, request.headers, request.body)
    except WebhookVerificationError:
        return False
    return True


# --- driving jobs -----------------------------------------------------------------------------------------

def create(user, **extra) -> Generation:
    generation, created = generation_create(owner=user, model="t2v", input={"prompt": "a cowboy"}, **extra)
    assert created
    return generation


def track_until(generation: Generation, *statuses: str) -> None:
    def step() -> None:
        Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() - timedelta(seconds=1))
        tracker_tick()

    wait_until(lambda: Generation.objects.get(pk=generation.pk).status in statuses, step=step, timeout=30, interval=0.1)


def announce(generation: Generation, to: str = Status.CANCELED, **fields) -> None:
    """Move a PENDING generation straight to `to` (no fal involved), as the pipeline would."""
    assert transition(generation.pk, from_=[Status.PENDING], to=to, **fields)


def make_due(delivery: WebhookDelivery) -> None:
    """As if time had passed until the delivery's next attempt (its timestamps move back by the wait)."""
    due_at = WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at
    if due_at is None:
        return
    shift = due_at - timezone.now() + timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=F("next_attempt_at") - shift,
                                                          enqueued_at=F("enqueued_at") - shift)


def pending(user, task_queue, **extra) -> Generation:
    """A new PENDING generation whose submit is dropped: these tests move the job by hand."""
    generation = create(user, **extra)
    task_queue.calls.clear()
    return generation


# --- events of real jobs ----------------------------------------------------------------------------------

def test_a_job_sends_queued_running_succeeded_in_order_to_every_target_it_concerns(fal_sim, media_root, task_queue,
                                                                                    receiver, user):
    # given an endpoint for every event, one for `succeeded` only, and a job with its own webhook URL
    fal_sim.run_seconds = 1.0  # long enough for the tracker to see the job running
    everything = webhook_endpoint_create(owner=user, url=receiver.url("/all"))
    finished_only = webhook_endpoint_create(owner=user, url=receiver.url("/succeeded"), events=["succeeded"])
    job_secret = job_webhook_secret_rotate(owner_id=user.pk).secret
    # when the job runs through the simulator
    generation = create(user, webhook_url=receiver.url("/job"))
    task_queue.run_all()
    track_until(generation, Status.RUNNING)
    task_queue.run_all()
    track_until(generation, Status.STORING)
    task_queue.run_all()
    # then
    assert Generation.objects.get(pk=generation.pk).status == Status.SUCCEEDED
    expected = ["generation.queued", "generation.running", "generation.succeeded"]
    assert receiver.types("/all") == expected
    assert receiver.types("/job") == expected
    assert receiver.types("/succeeded") == ["generation.succeeded"]
    assert len(receiver.received) == 7  # each event reached each target once
    assert all(verifies(everything.secret, request) for request in receiver.at("/all"))
    assert all(verifies(finished_only.secret, request) for request in receiver.at("/succeeded"))
    assert all(verifies(job_secret, request) for request in receiver.at("/job"))
    assert not any(verifies(everything.secret, request) for request in receiver.at("/job"))
    # the same event (id and body) went to every target; the body shows the job at that moment
    for path in ("/job", "/succeeded"):
        assert receiver.at(path)[-1].body == receiver.at("/all")[-1].body
    for request, status in zip(receiver.at("/all"), ["queued", "running", "succeeded"], strict=True):
        payload = request.payload
        assert payload["id"] == request.event_id
        assert (payload["data"]["id"], payload["data"]["status"]) == (str(generation.pk), status)
        assert payload["created_at"].endswith("Z")
    assert receiver.at("/all")[-1].payload["data"]["video"] is not None
    assert WebhookDelivery.objects.filter(status=Delivery.DELIVERED).count() == 7
    assert WebhookEvent.objects.filter(generation=generation).count() == 3


def test_a_canceled_job_sends_canceled_and_filters_and_inactive_endpoints_are_respected(fal_sim, task_queue,
                                                                                         receiver, user):
    # given
    webhook_endpoint_create(owner=user, url=receiver.url("/all"))
    webhook_endpoint_create(owner=user, url=receiver.url("/succeeded"), events=["succeeded"])
    webhook_endpoint_create(owner=user, url=receiver.url("/inactive"), is_active=False)
    generation = create(user)
    task_queue.run_all()
    # when
    generation_cancel(Generation.objects.get(pk=generation.pk))
    task_queue.run_all()
    # then
    assert receiver.types("/all") == ["generation.queued", "generation.canceled"]
    assert receiver.at("/succeeded") == [] and receiver.at("/inactive") == []
    assert WebhookDelivery.objects.count() == 2


def test_a_failed_job_sends_failed_with_the_error(task_queue, receiver, user):
    endpoint = webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation, Status.FAILED, error_code="content_policy", error_message="flagged")
    task_queue.run_all()
    [request] = receiver.received
    assert verifies(endpoint.secret, request)
    assert request.payload["type"] == "generation.failed"
    assert request.payload["data"]["error"] == {"code": "content_policy", "message": "flagged"}


def test_statuses_that_are_not_events_send_nothing(task_queue, receiver, user):
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    assert transition(generation.pk, from_=[Status.PENDING], to=Status.SUBMITTING)
    assert WebhookEvent.objects.count() == 0
    assert task_queue.calls == []


def test_a_broken_event_never_blocks_the_status_change(task_queue, receiver, user, monkeypatch):
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)

    def broken(generation):
        raise RuntimeError("payload bug")

    monkeypatch.setattr(services, "_generation_data", broken)
    announce(generation)
    assert Generation.objects.get(pk=generation.pk).status == Status.CANCELED
    assert (WebhookEvent.objects.count(), WebhookDelivery.objects.count(), task_queue.calls) == (0, 0, [])


# --- retries ----------------------------------------------------------------------------------------------

def test_failures_are_retried_with_backoff_until_delivered_once(task_queue, receiver, user):
    # given a receiver that fails three times, three different ways
    endpoint = webhook_endpoint_create(owner=user, url=receiver.url())
    receiver.script("500", "close", "timeout")
    generation = pending(user, task_queue)
    # when the event happens
    announce(generation)
    task_queue.run_all()
    delivery = WebhookDelivery.objects.get()
    delays = []
    for _ in range(3):
        delivery.refresh_from_db()
        assert delivery.status == Delivery.PENDING
        delays.append((delivery.next_attempt_at - delivery.updated_at).total_seconds())
        assert webhook_deliveries_enqueue_due() == 0  # not due yet
        make_due(delivery)
        assert webhook_deliveries_enqueue_due() == 1
        assert webhook_deliveries_enqueue_due() == 0  # one due time is enqueued once
        task_queue.run_all()
    # then
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (Delivery.DELIVERED, 4, None)
    assert delays == pytest.approx([30, 60, 120], abs=1)
    attempts = list(delivery.attempts.values_list("number", "outcome", "http_status"))
    assert attempts == [(1, Outcome.HTTP_ERROR, 500), (2, Outcome.NETWORK_ERROR, None), (3, Outcome.TIMEOUT, None),
                        (4, Outcome.SUCCEEDED, 200)]
    first = delivery.attempts.get(number=1)
    assert (first.error, first.response_excerpt, first.url) == ("HTTP 500", "receiver says no", receiver.url())
    assert first.duration_ms is not None and first.finished_at is not None
    assert len(receiver.received) == 4
    assert {request.event_id for request in receiver.received} == {str(delivery.event_id)}
    assert all(verifies(endpoint.secret, request) for request in receiver.received)
    assert [request.status for request in receiver.received] == [500, None, None, 200]
    # and once delivered, nothing sends it again
    assert webhook_deliveries_enqueue_due() == 0
    webhook_delivery_send(delivery.pk)
    assert len(receiver.received) == 4


def test_the_last_allowed_attempt_failing_fails_the_delivery(task_queue, receiver, user):
    webhook_endpoint_create(owner=user, url=receiver.url())
    receiver.script("500")
    generation = pending(user, task_queue)
    announce(generation)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempt_count=MAX_ATTEMPTS - 1)
    task_queue.run_all()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (Delivery.FAILED, MAX_ATTEMPTS, None)
    assert webhook_deliveries_enqueue_due() == 0
    assert len(receiver.received) == 1


def test_the_backoff_doubles_from_30_seconds_up_to_4_hours_for_about_a_day():
    delays = [retry_delay(n).total_seconds() for n in range(1, MAX_ATTEMPTS)]
    assert delays[:9] == [30, 60, 120, 240, 480, 960, 1920, 3840, 7680]
    assert delays[9:] == [4 * 3600] * 5
    assert 24 * 3600 <= sum(delays) <= 25 * 3600


def test_a_task_run_twice_sends_once(task_queue, receiver, user):
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation)
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_send(delivery.pk)
    webhook_delivery_send(delivery.pk)
    task_queue.run_all()  # the enqueued run: a third
    assert len(receiver.received) == 1
    assert WebhookAttempt.objects.count() == 1


def test_a_run_while_an_attempt_is_in_flight_sends_nothing(task_queue, receiver, user):
    # given a receiver that, while answering the first attempt, sees the task delivered again
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation)
    delivery = WebhookDelivery.objects.get()
    receiver.script(lambda: webhook_delivery_send(delivery.pk))
    # when
    webhook_delivery_send(delivery.pk)
    # then
    assert len(receiver.received) == 1
    assert list(WebhookAttempt.objects.values_list("number", "outcome")) == [(1, Outcome.SUCCEEDED)]


def test_a_worker_that_died_mid_attempt_is_retried_after_its_lease(task_queue, receiver, user):
    # given an attempt claimed by a worker that died before recording the outcome
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation)
    task_queue.calls.clear()
    delivery = WebhookDelivery.objects.get()
    earlier = timezone.now() - services.CLAIM_LEASE - timedelta(seconds=5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempt_count=1, next_attempt_at=earlier + services.CLAIM_LEASE, enqueued_at=earlier)
    WebhookAttempt.objects.create(delivery=delivery, number=1, url=receiver.url())
    # when the sweeper runs
    assert webhook_deliveries_enqueue_due() == 1
    task_queue.run_all()
    # then
    assert list(WebhookAttempt.objects.values_list("number", "outcome")) == [(1, Outcome.INTERRUPTED),
                                                                            (2, Outcome.SUCCEEDED)]
    assert WebhookDelivery.objects.get().status == Delivery.DELIVERED


def test_a_lost_enqueue_is_enqueued_again_after_a_while(task_queue, receiver, user):
    webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation)
    task_queue.calls.clear()  # the send task is lost
    assert webhook_deliveries_enqueue_due() == 0  # just enqueued: give it time
    WebhookDelivery.objects.update(enqueued_at=timezone.now() - services.REENQUEUE_AFTER - timedelta(seconds=1))
    assert webhook_deliveries_enqueue_due() == 1
    task_queue.run_all()
    assert len(receiver.received) == 1


def test_the_retry_sweep_is_scheduled_every_minute_once():
    # given the data migration (run again: the test database is flushed between transactional tests)
    migration = importlib.import_module("webhooks.migrations.0002_delivery_sweeper_schedule")
    # when it runs twice
    migration.create_schedule(django_apps, None)
    migration.create_schedule(django_apps, None)
    # then
    schedule = Schedule.objects.get(func="webhooks.tasks.webhook_deliveries_enqueue_due_task")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


# --- the public-address rule at delivery ------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data/",
                                 "http://localhost:9/hook"], ids=["private_case", "metadata_case", "localhost_case"])
def test_a_job_webhook_to_a_private_address_is_blocked_without_connecting(task_queue, receiver, user, url):
    # given a generation whose own webhook URL is private (the no-internet guard fails any connection)
    generation = pending(user, task_queue, webhook_url=url)
    # when
    announce(generation)
    task_queue.run_all()
    # then: recorded as blocked, and not retried
    delivery = WebhookDelivery.objects.get()
    attempt = delivery.attempts.get()
    assert (attempt.outcome, attempt.http_status, attempt.url) == (Outcome.BLOCKED, None, url)
    assert "is not a public address" in attempt.error
    assert (delivery.status, delivery.next_attempt_at) == (Delivery.FAILED, None)
    assert receiver.received == []


def test_an_endpoint_whose_name_now_resolves_to_a_private_address_is_blocked(task_queue, receiver, user, monkeypatch):
    # given an endpoint that was public when it was created
    real = socket.getaddrinfo
    answers = {"hooks.example.test": "93.184.216.34"}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    webhook_endpoint_create(owner=user, url="https://hooks.example.test/hook")
    answers["hooks.example.test"] = "10.0.0.5"
    generation = pending(user, task_queue)
    # when
    announce(generation)
    task_queue.run_all()
    # then
    attempt = WebhookAttempt.objects.get()
    assert attempt.outcome == Outcome.BLOCKED
    assert "10.0.0.5" in attempt.error
    assert WebhookDelivery.objects.get().status == Delivery.FAILED


def test_a_redirect_is_not_followed(task_queue, receiver, user):
    webhook_endpoint_create(owner=user, url=receiver.url())
    receiver.script("redirect http://10.0.0.5/hook")
    generation = pending(user, task_queue)
    announce(generation)
    task_queue.run_all()
    attempt = WebhookAttempt.objects.get()
    assert (attempt.outcome, attempt.http_status) == (Outcome.HTTP_ERROR, 302)
    assert attempt.error == "HTTP 302: redirects are not followed (to http://10.0.0.5/hook)"
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().status == Delivery.PENDING  # retried later, like any non-2xx


# --- through the API: rotation, ping, redeliver -------------------------------------------------------------

@pytest.fixture
def api(client, user):
    client.force_login(user)
    return client


def test_after_rotation_only_the_new_secret_verifies(api, task_queue, receiver):
    # given
    created = api.post("/api/v1/webhooks/", {"url": receiver.url()}, content_type="application/json").json()
    # when
    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    api.post(f"/api/v1/webhooks/{created['id']}/ping/")
    task_queue.run_all()
    # then
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"] and rotated.json()["secret_prefix"] == new_secret[:12]
    [request] = receiver.received
    assert verifies(new_secret, request)
    assert not verifies(created["secret"], request)
    assert "secret" not in api.get(f"/api/v1/webhooks/{created['id']}/").json()


def test_ping_sends_a_signed_ping_at_once_and_is_not_retried(api, user, task_queue, receiver):
    # given
    endpoint = webhook_endpoint_create(owner=user, url=receiver.url())
    receiver.script("500")
    # when a failing ping, then a good one
    first = api.post(f"/api/v1/webhooks/{endpoint.pk}/ping/")
    task_queue.run_all()
    second = api.post(f"/api/v1/webhooks/{endpoint.pk}/ping/")
    task_queue.run_all()
    # then
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["event_type"] == "ping" and first.json()["status"] == "pending"
    assert [request.status for request in receiver.received] == [500, 200]
    assert all(verifies(endpoint.secret, request) for request in receiver.received)
    assert receiver.received[1].payload["data"]["endpoint"]["id"] == str(endpoint.pk)
    statuses = {str(pk): status for pk, status in WebhookDelivery.objects.values_list("pk", "status")}
    assert statuses == {first.json()["id"]: Delivery.FAILED, second.json()["id"]: Delivery.DELIVERED}
    assert webhook_deliveries_enqueue_due() == 0


def test_redeliver_sends_the_same_event_again_once(api, user, task_queue, receiver):
    # given a delivered event
    endpoint = webhook_endpoint_create(owner=user, url=receiver.url())
    generation = pending(user, task_queue)
    announce(generation)
    task_queue.run_all()
    delivery = WebhookDelivery.objects.get()
    # when redelivered, and the receiver fails that attempt
    receiver.script("500")
    response = api.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    task_queue.run_all()
    # then one more attempt was made, and no retries follow it
    assert response.status_code == 202
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, delivery.max_attempts) == (Delivery.FAILED, 2, 2)
    assert [request.event_id for request in receiver.received] == [str(delivery.event_id)] * 2
    assert receiver.received[0].body == receiver.received[1].body
    assert all(verifies(endpoint.secret, request) for request in receiver.received)
    assert webhook_deliveries_enqueue_due() == 0
    # and a second redeliver that succeeds delivers it
    api.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    task_queue.run_all()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count, len(receiver.received)) == (Delivery.DELIVERED, 3, 3)
    body = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/").json()
    outcomes = [attempt["outcome"] for attempt in body["results"][0]["attempts"]]
    assert outcomes == ["succeeded", "http_error", "succeeded"]


def test_job_webhooks_are_signed_with_the_rotated_job_secret(api, user, task_queue, receiver):
    # given the job secret is created lazily by the first delivery
    generation = pending(user, task_queue, webhook_url=receiver.url("/job"))
    announce(generation)
    task_queue.run_all()
    first_secret = JobWebhookSecret.objects.get(owner=user).secret
    # when the owner rotates it and redelivers
    rotated = api.post("/api/v1/webhooks/job-secret/rotate/").json()
    api.post(f"/api/v1/webhook-deliveries/{WebhookDelivery.objects.get().pk}/redeliver/")
    task_queue.run_all()
    # then
    first, second = receiver.at("/job")
    assert verifies(first_secret, first) and not verifies(rotated["secret"], first)
    assert verifies(rotated["secret"], second) and not verifies(first_secret, second)
    assert api.get("/api/v1/webhooks/job-secret/").json()["secret_prefix"] == rotated["secret"][:12]
