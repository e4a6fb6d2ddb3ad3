"""The webhooks REST API: endpoints, secrets shown once, validation, and isolation between users."""
from __future__ import annotations

import pytest

from generations.models import Generation
from generations.services.create import generation_create
from generations.transitions import transition
from webhooks.models import JobWebhookSecret, WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services import MAX_ENDPOINTS_PER_USER, webhook_endpoint_create

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hooks/ltx"


@pytest.fixture(autouse=True)
def no_allowed_hosts(settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []


@pytest.fixture
def api(client, user):
    client.force_login(user)
    return client


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def patch(client, url, data):
    return client.patch(url, data, content_type="application/json")


def canceled_generation(owner, task_queue, **extra) -> Generation:
    generation, _ = generation_create(owner=owner, model="t2v", input={"prompt": "x"}, **extra)
    assert transition(generation.pk, from_=["pending"], to="canceled")
    task_queue.calls.clear()
    return generation


# --- endpoints ----------------------------------------------------------------------------------------------

def test_create_returns_the_secret_once(api, user):
    # when
    response = post(api, "/api/v1/webhooks/", {"url": PUBLIC_URL, "events": ["succeeded", "queued", "succeeded"]})
    # then
    assert response.status_code == 201
    body = response.json()
    endpoint = WebhookEndpoint.objects.get(owner=user)
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    assert body["secret_prefix"] == endpoint.secret[:12]
    assert (body["url"], body["events"], body["is_active"]) == (PUBLIC_URL, ["queued", "succeeded"], True)
    listed = api.get("/api/v1/webhooks/").json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"/api/v1/webhooks/{body['id']}/").json()


@pytest.mark.parametrize("url", ["http://10.0.0.5/hook", "http://169.254.169.254/latest/meta-data/",
                                 "http://localhost:8000/hook", "http://127.0.0.1:8000/hook", "http://[::1]/hook",
                                 "http://100.64.0.1/hook"],
                         ids=["private_case", "metadata_case", "localhost_case", "loopback_case", "ipv6_case",
                              "cgnat_case"])
def test_private_urls_are_refused_at_creation(api, user, url):
    response = post(api, "/api/v1/webhooks/", {"url": url})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert "is not a public address" in body["details"]["url"]
    assert WebhookEndpoint.objects.count() == 0


def test_allowed_private_hosts_may_be_used(api, settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    response = post(api, "/api/v1/webhooks/", {"url": "http://127.0.0.1:8000/hook"})
    assert response.status_code == 201


@pytest.mark.parametrize("data, field", [
    ({"url": "ftp://93.184.216.34/hook"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": PUBLIC_URL, "events": ["storing"]}, "events.0"),
    ({}, "url"),
], ids=["scheme_case", "garbage_case", "unknown_event_case", "missing_url_case"])
def test_invalid_endpoints_are_refused_naming_the_field(api, data, field):
    response = post(api, "/api/v1/webhooks/", data)
    assert response.status_code == 422
    assert list(response.json()["details"]) == [field]
    assert WebhookEndpoint.objects.count() == 0


def test_unknown_events_are_named_with_the_allowed_ones(api):
    response = post(api, "/api/v1/webhooks/", {"url": PUBLIC_URL, "events": ["storing"]})
    assert response.json()["details"]["events.0"] == (
        '"storing" is not an event; allowed: queued, running, succeeded, failed, canceled.')


def test_a_refusal_repeating_text_that_is_not_utf8_is_still_a_clean_422(api):
    response = api.post("/api/v1/webhooks/", f'{{"url": "{PUBLIC_URL}", "events": ["x\\ud800"]}}'.encode(),
                        content_type="application/json")
    assert response.status_code == 422
    assert response.json()["details"]["events.0"] == (
        '"x\\ud800" is not an event; allowed: queued, running, succeeded, failed, canceled.')
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize("url", ["http://\uff11\uff12\uff17.0.0.1/hook", "http://xn--/hook", "https://a\x00b.com/"])
def test_urls_that_cannot_be_requested_are_refused_naming_the_field(api, url):
    for response in (post(api, "/api/v1/webhooks/", {"url": url}),
                     post(api, "/api/v1/generations/", {"model": "t2v", "input": {"prompt": "x"}, "webhook_url": url})):
        assert response.status_code == 422
        assert list(response.json()["details"]) in (["url"], ["webhook_url"])
    assert WebhookEndpoint.objects.count() == 0 and Generation.objects.count() == 0


def test_an_owner_may_have_a_limited_number_of_endpoints(api, user):
    for _ in range(MAX_ENDPOINTS_PER_USER):
        webhook_endpoint_create(owner=user, url=PUBLIC_URL)
    response = post(api, "/api/v1/webhooks/", {"url": PUBLIC_URL})
    assert response.status_code == 422
    assert "delete one first" in response.json()["details"]["url"]
    assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS_PER_USER


def test_update_changes_only_the_given_fields(api, user):
    endpoint = webhook_endpoint_create(owner=user, url=PUBLIC_URL, events=["failed"])
    response = patch(api, f"/api/v1/webhooks/{endpoint.pk}/", {"is_active": False})
    assert response.status_code == 200
    assert (response.json()["url"], response.json()["events"], response.json()["is_active"]) == (PUBLIC_URL, ["failed"],
                                                                                                 False)
    response = api.put(f"/api/v1/webhooks/{endpoint.pk}/", {"url": "https://93.184.216.35/new"},
                       content_type="application/json")
    assert (response.json()["url"], response.json()["events"], response.json()["is_active"]) == (
        "https://93.184.216.35/new", [], True)
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.is_active) == ("https://93.184.216.35/new", [], True)


def test_update_to_a_private_url_is_refused_and_changes_nothing(api, user):
    endpoint = webhook_endpoint_create(owner=user, url=PUBLIC_URL)
    response = patch(api, f"/api/v1/webhooks/{endpoint.pk}/", {"url": "http://192.168.1.1/hook", "is_active": False})
    assert response.status_code == 422 and "url" in response.json()["details"]
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.is_active) == (PUBLIC_URL, True)


def test_delete_removes_the_endpoint_and_its_deliveries(api, user, task_queue):
    endpoint = webhook_endpoint_create(owner=user, url=PUBLIC_URL)
    canceled_generation(user, task_queue)
    assert WebhookDelivery.objects.count() == 1
    response = api.delete(f"/api/v1/webhooks/{endpoint.pk}/")
    assert response.status_code == 204
    assert (WebhookEndpoint.objects.count(), WebhookDelivery.objects.count()) == (0, 0)


def test_ping_and_redeliver_refuse_an_inactive_endpoint(api, user, task_queue):
    endpoint = webhook_endpoint_create(owner=user, url=PUBLIC_URL)
    canceled_generation(user, task_queue)
    delivery = WebhookDelivery.objects.get()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    ping = post(api, f"/api/v1/webhooks/{endpoint.pk}/ping/")
    redeliver = post(api, f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    assert (ping.status_code, redeliver.status_code) == (409, 409)
    assert ping.json()["code"] == "endpoint_inactive"
    assert WebhookEvent.objects.count() == 1 and WebhookDelivery.objects.count() == 1
    assert task_queue.calls == []


# --- deliveries ---------------------------------------------------------------------------------------------

def test_deliveries_are_listed_newest_first_with_their_payload(api, user, task_queue):
    endpoint = webhook_endpoint_create(owner=user, url=PUBLIC_URL)
    first = canceled_generation(user, task_queue)
    second = canceled_generation(user, task_queue, webhook_url=PUBLIC_URL)
    body = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/").json()
    assert [item["generation"] for item in body["results"]] == [str(second.pk), str(first.pk)]
    item = body["results"][0]
    assert (item["endpoint"], item["url"], item["status"], item["event_type"]) == (
        str(endpoint.pk), PUBLIC_URL, "pending", "generation.canceled")
    assert item["payload"]["id"] == item["event_id"] and item["payload"]["data"]["id"] == str(second.pk)
    assert item["attempts"] == []
    everything = api.get("/api/v1/webhook-deliveries/").json()["results"]
    assert len(everything) == 3  # two to the endpoint, one to the second job's own webhook URL
    job_only = api.get(f"/api/v1/webhook-deliveries/?generation={second.pk}").json()["results"]
    assert {(item["endpoint"], item["url"]) for item in job_only} == {(str(endpoint.pk), PUBLIC_URL),
                                                                       (None, PUBLIC_URL)}


def test_a_bad_delivery_filter_is_refused(api):
    response = api.get("/api/v1/webhook-deliveries/?generation=nope")
    assert response.status_code == 422 and list(response.json()["details"]) == ["generation"]


# --- the job webhook secret ---------------------------------------------------------------------------------

def test_the_job_secret_is_shown_only_when_rotated(api, user):
    # given no job secret yet
    assert api.get("/api/v1/webhooks/job-secret/").json() == {"secret_prefix": None, "created_at": None,
                                                              "rotated_at": None}
    # when it is rotated twice
    first = post(api, "/api/v1/webhooks/job-secret/rotate/").json()
    second = post(api, "/api/v1/webhooks/job-secret/rotate/").json()
    # then each rotation shows a new secret once, and reading shows only the prefix
    assert first["secret"].startswith("whjob_") and second["secret"] != first["secret"]
    assert JobWebhookSecret.objects.get(owner=user).secret == second["secret"]
    shown = api.get("/api/v1/webhooks/job-secret/").json()
    assert shown["secret_prefix"] == second["secret"][:12] and "secret" not in shown
    assert shown["rotated_at"] is not None


# --- isolation ----------------------------------------------------------------------------------------------

def test_another_users_endpoints_and_deliveries_do_not_exist_for_you(api, user, other_user, task_queue):
    # given bob's endpoint with a delivery
    endpoint = webhook_endpoint_create(owner=other_user, url=PUBLIC_URL)
    canceled_generation(other_user, task_queue, webhook_url=PUBLIC_URL)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    job_delivery = WebhookDelivery.objects.get(endpoint=None)
    secret, events_before = endpoint.secret, WebhookEvent.objects.count()
    base = f"/api/v1/webhooks/{endpoint.pk}/"
    # when alice tries everything
    responses = [
        api.get(base), patch(api, base, {"url": "https://93.184.216.35/mine"}),
        api.put(base, {"url": "https://93.184.216.35/mine"}, content_type="application/json"),
        api.delete(base), post(api, base + "rotate-secret/"), post(api, base + "ping/"), api.get(base + "deliveries/"),
        api.get(f"/api/v1/webhook-deliveries/{delivery.pk}/"),
        post(api, f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/"),
        post(api, f"/api/v1/webhook-deliveries/{job_delivery.pk}/redeliver/"),
    ]
    # then every one is a 404, and nothing changed
    assert [response.status_code for response in responses] == [404] * len(responses)
    assert all(response.json()["code"] == "not_found" for response in responses)
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.secret, endpoint.is_active) == (PUBLIC_URL, secret, True)
    assert WebhookEvent.objects.count() == events_before
    assert list(WebhookDelivery.objects.values_list("attempt_count", "max_attempts")) == [(0, 15), (0, 15)]
    assert task_queue.calls == []
    assert api.get("/api/v1/webhooks/").json() == []
    assert api.get("/api/v1/webhook-deliveries/").json()["results"] == []


def test_the_api_needs_a_signed_in_user(client):
    assert client.get("/api/v1/webhooks/").status_code == 401
    assert post(client, "/api/v1/webhooks/", {"url": PUBLIC_URL}).status_code == 401
    assert WebhookEndpoint.objects.count() == 0


def test_the_schema_documents_every_webhook_route(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    webhook_paths = {path for path in schema["paths"] if "webhook" in path}
    assert webhook_paths == {
        "/api/v1/webhooks/", "/api/v1/webhooks/{id}/", "/api/v1/webhooks/{id}/rotate-secret/",
        "/api/v1/webhooks/{id}/ping/", "/api/v1/webhooks/{id}/deliveries/", "/api/v1/webhooks/job-secret/",
        "/api/v1/webhooks/job-secret/rotate/", "/api/v1/webhook-deliveries/", "/api/v1/webhook-deliveries/{id}/",
        "/api/v1/webhook-deliveries/{id}/redeliver/",
    }
    created = schema["paths"]["/api/v1/webhooks/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/WebhookEndpointCreated"}
