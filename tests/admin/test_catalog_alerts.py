"""When fal first answers an endpoint as gone, the superusers get one email saying which, what fal
answered and what to do; later sightings send nothing."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

from fal_protocol import catalog
from fal_protocol.client import FalNotFound, FalRejected
from generations.models import EndpointOverride, Generation
from generations.services.catalog import endpoint_mark_unavailable
from moderation.models import AuditEntry
from storage.quotas import usage_for
from tests.conftest import studio_simulator
from tests.factories import GenerationFactory, SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db
T2V_23 = "fal-ai/ltx-2.3/text-to-video"


@pytest.fixture
def superusers(db) -> list[str]:
    SuperuserFactory(username="root", email="root@example.com")
    SuperuserFactory(username="ops", email="ops@example.com")
    SuperuserFactory(username="gone", email="gone@example.com", is_active=False)  # not written to
    SuperuserFactory(username="noaddress", email="")
    UserFactory(username="someone", email="someone@example.com")  # not a superuser
    return ["root@example.com", "ops@example.com"]


def test_the_first_sighting_emails_the_superusers_once(superusers, django_capture_on_commit_callbacks):
    endpoint = catalog.BY_ID[T2V_23]
    with django_capture_on_commit_callbacks(execute=True):
        assert endpoint_mark_unavailable(endpoint, FalNotFound("x", status_code=404,
                                                               detail="Application not found")) is True
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == sorted(superusers)
    assert message.subject == f"[LTX Studio] Model endpoint gone at fal: {T2V_23}"
    assert "fal answered 404: Application not found" in message.body
    assert 'It is what "t2v" means under STUDIO_LTX_VERSION=2.3' in message.body
    assert "set a replacement for it in the admin (/admin/generations/endpointoverride/)" in message.body
    assert "(e.g. fal-ai/ltx-2/text-to-video)" in message.body
    assert "move STUDIO_LTX_VERSION" in message.body

    with django_capture_on_commit_callbacks(execute=True):
        assert endpoint_mark_unavailable(endpoint, FalRejected("x", status_code=410, detail="Gone")) is False
    assert len(mail.outbox) == 1
    assert list(AuditEntry.objects.values_list("actor_name", "action", "target_id")) == [
        ("system", "endpoint_unavailable", T2V_23)]


def test_an_endpoint_no_short_name_means_is_not_called_every_users(superusers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_mark_unavailable(catalog.BY_ID["fal-ai/ltx-2/image-to-video"],
                                  FalNotFound("x", status_code=404, detail="Application not found"))
    body = mail.outbox[0].body
    assert "It is what" not in body
    assert "(e.g. fal-ai/ltx-2.3/image-to-video)" in body


@pytest.fixture
def gone_fal(settings) -> Iterator[Any]:
    """The fal simulator with LTX-2.3 text-to-video retired: a submit to it answers 404."""
    with studio_simulator(settings, retired=[T2V_23]) as sim:
        yield sim


def test_a_submit_fal_answers_as_gone_fails_uncharged_and_alerts_once(
        superusers, user, gone_fal, task_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first, second = GenerationFactory(owner=user, prompt="one"), GenerationFactory(owner=user, prompt="two")
    assert task_queue.names().count("generation_submit_task") == 2
    with django_capture_on_commit_callbacks(execute=True):
        task_queue.run_all()
    assert gone_fal.stats()["retired_refusals"] == 1  # the second job failed without a call
    for job in (first, second):
        row = Generation.objects.get(pk=job.pk)
        assert (row.status, row.error_code) == ("failed", "model_unavailable")
    assert EndpointOverride.objects.get(endpoint_id=T2V_23).unavailable_detail == (
        f"fal answered 404: Application '{T2V_23}' not found")
    assert len(mail.outbox) == 1 and T2V_23 in mail.outbox[0].subject
    usage = usage_for(user)
    assert (usage.spend_usd, usage.active_jobs) == (0, 0)
