"""The API and create rates count per user: all of a user's keys, their session, the REST API's fast
status path and the gateway share one budget, so making more keys buys no more calls."""
from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.keys import api_key_create
from generations.models import Generation
from generations.services.create import generation_create

pytestmark = pytest.mark.django_db
BODY = {"model": "t2v", "input": {"prompt": "A cowboy at high noon"}}


def rates(settings, *, api: str = "100/min", create: str = "100/min") -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": api, "create": create}}


def key_api(user, name: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=user, name=name)[1]}")
    return client


def test_a_users_keys_and_session_share_one_api_rate(user, other_user, settings):
    # given: a rate of 4 calls, and a user with three keys and a signed-in session
    rates(settings, api="4/min")
    first, second, third = (key_api(user, f"key {n}") for n in range(3))
    session = APIClient()
    session.force_login(user)

    # when: the user spreads calls over all of them
    answers = [client.get("/api/v1/usage/").status_code for client in (first, second, third, session)]
    refused = [client.get("/api/v1/usage/") for client in (first, second, third, session)]

    # then: 4 calls in all, not 4 per key; another user's budget is untouched
    assert answers == [200, 200, 200, 200]
    assert [answer.status_code for answer in refused] == [429] * 4
    assert all(int(answer["Retry-After"]) > 0 for answer in refused)
    assert key_api(other_user, "theirs").get("/api/v1/usage/").status_code == 200


def test_the_fast_status_path_counts_against_the_users_rate(user, other_user, settings, task_queue):
    # given: a job, a rate of 3 calls, and two keys of its owner
    rates(settings, api="3/min")
    generation, _ = generation_create(owner=user, model="t2v", input={"prompt": "polled"})
    url = f"/api/v1/generations/{generation.pk}/"
    poller, other_key = key_api(user, "poller"), key_api(user, "second")

    # when: one key polls its job (the path answered without DRF) and the other key calls the API
    polls = [poller.get(url).status_code for _ in range(2)]
    other = other_key.get("/api/v1/usage/").status_code
    refused = [poller.get(url), other_key.get(url), other_key.get("/api/v1/usage/")]

    # then: one budget of 3 for both keys and both paths
    assert polls + [other] == [200, 200, 200]
    assert [answer.status_code for answer in refused] == [429, 429, 429]
    assert refused[0].json()["code"] == "throttled"


def test_the_create_rate_is_shared_by_the_rest_api_and_the_gateway(user, settings, task_queue):
    # given: a create rate of 2 and three keys of one user
    rates(settings, create="2/min")
    rest_a, rest_b = key_api(user, "rest a"), key_api(user, "rest b")
    gateway = Client(HTTP_AUTHORIZATION=f"Key {api_key_create(user=user, name='fal')[1]}")

    def submit():
        return gateway.post("/fal/fal-ai/ltx-2/text-to-video", json.dumps({"prompt": "fox"}),
                            content_type="application/json")

    # when: a REST create with one key, a gateway submit with another, then a third of each
    created = rest_a.post("/api/v1/generations/", BODY, format="json").status_code
    submitted = submit().status_code
    refused_rest = rest_b.post("/api/v1/generations/", BODY, format="json")
    refused_gateway = submit()

    # then: two jobs in all; the REST API and the gateway each answer 429 in their own shape
    assert (created, submitted) == (201, 200)
    assert refused_rest.status_code == 429 and refused_rest.json()["code"] == "throttled"
    assert refused_gateway.status_code == 429 and int(refused_gateway["Retry-After"]) > 0
    assert refused_gateway.json()["error_type"] == "rate_limited"
    assert Generation.objects.count() == 2
