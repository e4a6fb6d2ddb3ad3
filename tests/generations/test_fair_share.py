"""Fair shares at fal (generations/fair_share.py): round-robin across users, oldest first within each,
and STUDIO_FAL_MAX_IN_FLIGHT jobs at fal at most — shown to the waiting user as `slots_ahead`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.fair_share import at_fal_count, next_to_submit, slots_ahead
from generations.models import Generation
from generations.services.submit import generation_submit
from generations.services.tracking import tracker_tick
from storage.models import UserQuota
from tests.factories import UserFactory
from tests.generations.test_pipeline import create

pytestmark = pytest.mark.django_db
Status = Generation.Status


def jobs(owner, count: int, status: str, *, minutes_ago: float) -> list[Generation]:
    """`count` copies of one real job of `owner` (so every column is as generation_create writes it),
    in `status`, created `minutes_ago` (a second apart, oldest first) and due now."""
    UserQuota.objects.update_or_create(user=owner, defaults={"active_jobs": 10_000})
    template = create(owner)
    now = timezone.now()
    first = now - timedelta(minutes=minutes_ago)
    copies = [Generation(owner=owner, project_id=template.project_id, model_id=template.model_id,
                         input=template.input, cost_usd=template.cost_usd, status=status,
                         created_at=first + timedelta(seconds=i), next_poll_at=now - timedelta(seconds=1))
              for i in range(count)]
    template.delete()
    return Generation.objects.bulk_create(copies)


def owners_in_turn(limit: int) -> list[str]:
    names = dict(Generation.objects.values_list("pk", "owner__username"))
    return [names[pk] for pk, _ in next_to_submit(timezone.now(), limit)]


def test_the_user_with_fewest_jobs_at_fal_goes_first_and_users_alternate(task_queue):
    ann, ben, cat = UserFactory(username="ann"), UserFactory(username="ben"), UserFactory(username="cat")
    jobs(ann, 3, Status.QUEUED, minutes_ago=30)
    jobs(ann, 4, Status.PENDING, minutes_ago=20)  # the oldest waiting jobs, but ann has 3 at fal
    jobs(cat, 1, Status.RUNNING, minutes_ago=15)
    jobs(cat, 2, Status.PENDING, minutes_ago=10)
    jobs(ben, 1, Status.PENDING, minutes_ago=1)  # the newest, but ben has nothing at fal

    assert owners_in_turn(10) == ["ben", "cat", "cat", "ann", "ann", "ann", "ann"]
    assert owners_in_turn(2) == ["ben", "cat"]
    assert at_fal_count() == 4


def test_claimed_and_not_yet_due_jobs_are_not_handed_out(task_queue):
    ann = UserFactory(username="ann")
    waiting = jobs(ann, 3, Status.PENDING, minutes_ago=5)
    Generation.objects.filter(pk=waiting[0].pk).update(lease_expires_at=timezone.now() + timedelta(seconds=10))
    Generation.objects.filter(pk=waiting[1].pk).update(next_poll_at=timezone.now() + timedelta(seconds=10))
    assert [pk for pk, _ in next_to_submit(timezone.now(), 10)] == [waiting[2].pk]
    assert next_to_submit(timezone.now(), 0) == []


def test_under_the_cap_one_users_batch_does_not_hold_back_another_users_single_job(settings, task_queue, fal_sim):
    settings.STUDIO_FAL_MAX_IN_FLIGHT = 20
    ann, ben = UserFactory(username="ann"), UserFactory(username="ben")
    at_fal = jobs(ann, 20, Status.RUNNING, minutes_ago=30)
    later = timezone.now() + timedelta(hours=1)  # not polled during the test
    Generation.objects.filter(pk__in=[job.pk for job in at_fal]).update(next_poll_at=later)
    batch = jobs(ann, 500, Status.PENDING, minutes_ago=20)
    UserQuota.objects.update_or_create(user=ben, defaults={"active_jobs": 10})
    single = create(ben)
    task_queue.calls.clear()

    # The cap binds: nothing is sent, and the create's own task leaves the job to the chain.
    tracker_tick()
    generation_submit(single.pk)
    assert fal_sim.stats()["submits"] == 0
    assert Generation.objects.get(pk=single.pk).status == Status.PENDING
    assert "generation_submit_dispatched" not in task_queue.names()
    assert slots_ahead(Generation.objects.get(pk=single.pk)) == 0  # next in line
    assert slots_ahead(batch[0]) == 1 and slots_ahead(batch[499]) == 500

    # One of ann's jobs ends: the freed slot goes to ben's job, not to ann's older batch.
    Generation.objects.filter(pk=at_fal[0].pk).update(status=Status.SUCCEEDED)
    tracker_tick()
    assert [args for name, args in task_queue.calls if name.endswith("generation_submit_dispatched")] == [
        (str(single.pk),)]
    task_queue.run_all()
    assert Generation.objects.get(pk=single.pk).status == Status.QUEUED
    assert fal_sim.stats()["submits"] == 1

    # The next slot goes to ann's oldest waiting job, and no more than the cap is at fal.
    task_queue.calls.clear()
    Generation.objects.filter(pk=at_fal[1].pk).update(status=Status.SUCCEEDED)
    tracker_tick()
    assert [args for name, args in task_queue.calls if name.endswith("generation_submit_dispatched")] == [
        (str(batch[0].pk),)]
    task_queue.run_all()
    assert at_fal_count() == 20 and fal_sim.stats()["submits"] == 2


def test_slots_ahead_is_shown_while_a_cap_holds_a_job_back_and_null_otherwise(settings, user, task_queue):
    UserQuota.objects.update_or_create(user=user, defaults={"active_jobs": 10})
    _, raw = api_key_create(user=user, name="tests")
    rest, fal_client = APIClient(), Client(HTTP_AUTHORIZATION=f"Key {raw}")
    rest.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    first, second = create(user), create(user)
    url, fal_url = f"/api/v1/generations/{second.pk}/", f"/fal/fal-ai/ltx-2.3/requests/{second.pk}/status"
    assert rest.get(url).json()["slots_ahead"] is None  # no cap: nothing to wait for
    assert fal_client.get(fal_url).json()["queue_position"] == 0

    settings.STUDIO_FAL_MAX_IN_FLIGHT = 1
    body = rest.get(url).json()
    assert (body["status"], body["slots_ahead"]) == ("pending", 1)
    assert fal_client.get(fal_url).json()["queue_position"] == 1  # fal's clients see it as a queue position
    Generation.objects.filter(pk=first.pk).update(status=Status.QUEUED)
    # Moved up though its own row did not change: not answered from memory.
    assert rest.get(url).json()["slots_ahead"] == 0
    assert fal_client.get(fal_url).json()["queue_position"] == 0
    Generation.objects.filter(pk=second.pk).update(status=Status.QUEUED, queue_position=3)
    assert rest.get(url).json()["slots_ahead"] is None
    assert fal_client.get(fal_url).json()["queue_position"] == 3
