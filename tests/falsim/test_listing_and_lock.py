"""The simulator's copy of fal's request listing (falsim/listing.py) and of an account lock, over real
HTTP: what the studio's ambiguous-submit recovery and its provider probe rely on. No Django."""
from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from falsim import FalSimulator
from tests.conftest import wait_until

KEY = "listing-key"
T2V = "fal-ai/ltx-2/text-to-video"
LISTING = "/v1/models/requests/by-endpoint"


@pytest.fixture
def sim():
    with FalSimulator(key=KEY, runners=4, run_seconds=0.2, scale=16) as simulator:
        yield simulator


@pytest.fixture
def client():
    with httpx.Client(headers={"Authorization": f"Key {KEY}"}, timeout=10, trust_env=False) as c:
        yield c


def submit(client, sim, prompt, **headers):
    response = client.post(f"{sim.url}/{T2V}", json={"prompt": prompt}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def listing(client, sim, **params):
    return client.get(f"{sim.url}{LISTING}", params={"endpoint_id": T2V, **params})


def test_requests_are_listed_with_fal_s_fields_in_flight_and_finished(sim, client):
    first = submit(client, sim, "kept")
    page = listing(client, sim, expand="payloads").json()
    assert page["has_more"] is False and page["next_cursor"] is None
    item, = page["items"]
    assert (item["request_id"], item["endpoint_id"], item["ended_at"], item["status_code"]) == (first, T2V, None, None)
    assert item["json_input"] == {"prompt": "kept"} and item["sent_at"].endswith("Z")
    wait_until(lambda: listing(client, sim).json()["items"][0]["status_code"] == 200, timeout=10)
    item, = listing(client, sim, expand="payloads").json()["items"]
    assert item["ended_at"] is not None and item["duration"] > 0 and item["json_output"]["video"]["url"]
    assert "json_input" not in listing(client, sim).json()["items"][0]  # only with expand=payloads


def test_payloads_are_not_kept_for_requests_sent_with_store_io_off(sim, client):
    submit(client, sim, "private", **{"X-Fal-Store-IO": "0"})
    item, = listing(client, sim, expand="payloads").json()["items"]
    assert item["json_input"] is None and item["json_output"] is None
    assert sim.requests()[0]["store_io"] is False


def test_paging_filters_and_lag(sim, client):
    ids = [submit(client, sim, f"job {n}") for n in range(5)]
    first = listing(client, sim, limit=2).json()
    assert len(first["items"]) == 2 and first["has_more"] and first["next_cursor"] == base64.b64encode(b"2").decode()
    seen = [item["request_id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = listing(client, sim, limit=2, cursor=cursor).json()
        seen += [item["request_id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    assert [item["request_id"] for item in listing(client, sim, request_id=ids[2]).json()["items"]] == [ids[2]]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert listing(client, sim, start=later).json()["items"] == []
    assert listing(client, sim, endpoint_id="fal-ai/ltx-2/image-to-video").json()["items"] == []
    sim.set_faults(listing_lag_seconds=600)
    assert listing(client, sim).json()["items"] == []  # recorded, not yet listed


@pytest.mark.parametrize("params, field", [
    ({"endpoint_id": ""}, "endpoint_id"), ({"limit": 0}, "limit"), ({"limit": "many"}, "limit"),
    ({"cursor": "not base64!"}, "cursor"), ({"start": "yesterday"}, "start"), ({"status": "done"}, "status"),
    ({"sort_by": "prompt"}, "sort_by"),
])
def test_bad_listing_parameters_are_422_naming_them(sim, client, params, field):
    response = listing(client, sim, **params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_the_listing_needs_the_key_and_has_its_own_fault(sim, client):
    assert httpx.get(f"{sim.url}{LISTING}", params={"endpoint_id": T2V}).status_code == 401
    sim.set_faults({"listing_5xx": 1.0})
    assert listing(client, sim).status_code == 503
    assert sim.stats()["faults"]["listing_5xx"] == 1


def test_a_locked_account_refuses_billable_calls_and_keeps_answering_reads(sim, client):
    done = submit(client, sim, "before the lock")
    sim.set_faults(locked="Exhausted balance")
    refused = client.post(f"{sim.url}/{T2V}", json={"prompt": "during the lock"})
    assert (refused.status_code, refused.json()) == (403, {"detail": "User is locked. Reason: Exhausted balance."})
    initiate = client.post(f"{sim.url}/storage/upload/initiate",
                           json={"file_name": "a.png", "content_type": "image/png"})
    assert initiate.status_code == 403
    assert client.post(f"{sim.url}/storage/auth/token?storage_type=fal-cdn-v3", json={}).status_code == 403
    assert listing(client, sim).status_code == 403
    status = client.get(f"{sim.url}/fal-ai/ltx-2/requests/{done}/status")
    assert status.status_code in (200, 202)
    assert sim.stats()["submits"] == 2 and len(sim.requests()) == 1 and sim.stats()["locked_refusals"] == 4
    sim.set_faults(locked="")
    assert client.post(f"{sim.url}/{T2V}", json={"prompt": "after"}).status_code == 200


def test_the_lock_switches_over_http(sim):
    with httpx.Client(trust_env=False) as anonymous:
        assert anonymous.put(f"{sim.url}/_sim/faults", json={"locked": "Admin lock"}).json()["locked"] == "Admin lock"
        assert anonymous.put(f"{sim.url}/_sim/faults", json={"locked": 5}).status_code == 400
    assert sim.locked == "Admin lock"
