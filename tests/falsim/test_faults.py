"""falsim fault injection: each fault at probability 1 and 0, runtime switching, submit counters.

Every test talks real HTTP (httpx, or a raw socket where the TCP detail matters) to its own
started FalSimulator, so the counters asserted are exact.
"""

import argparse
import hashlib
import json
import socket
import time

import httpx
import pytest

from falsim import FAULT_NAMES, FAULT_SETTINGS, FalSimulator, add_cli_arguments, simulator_from_args
from tests.conftest import wait_until

KEY = "falsim-id:falsim-secret"
T2V = "fal-ai/ltx-2/text-to-video"
ROOT = "fal-ai/ltx-2/requests"
SCALE = 16
CONNECTION_DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)
NO_FAULTS = {name: 0 for name in FAULT_NAMES}


def new_sim(faults=None, **kwargs):
    kwargs.setdefault("seed", 7)
    return FalSimulator(key=KEY, runners=2, run_seconds=0.05, scale=SCALE, faults=faults, **kwargs)


@pytest.fixture
def sim():
    with new_sim() as simulator:
        yield simulator


@pytest.fixture
def client():
    with httpx.Client(headers={"Authorization": f"Key {KEY}"}, timeout=10, trust_env=False) as c:
        yield c


def body(prompt="A calm lake at sunrise", **inputs):
    return {"prompt": prompt, **inputs}


def post(client, sim, payload, **kwargs):
    return client.post(f"{sim.url}/{T2V}", json=payload, **kwargs)


def submit(client, sim, payload):
    response = post(client, sim, payload)
    assert response.status_code == 200, response.text
    return response.json()


def completed_video(client, sim, prompt="A video to download"):
    job = submit(client, sim, body(prompt))
    wait_until(lambda: sim.completed_at(job["request_id"]))
    return client.get(job["response_url"]).json()["video"]


def fired(sim):
    return {name: n for name, n in sim.stats()["faults"].items() if n}


def sha(payload):
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def queue_calls(sim, request_id):
    root = f"{sim.url}/{ROOT}/{request_id}"
    return (("GET", root + "/status"), ("GET", root), ("PUT", root + "/cancel"))


# --- probability 0: nothing fires ------------------------------------------------------------------


def test_faults_at_zero_never_fire(client):
    with new_sim(faults=NO_FAULTS, latency_seconds=5.0, download_rate_bytes=1) as sim:
        job = submit(client, sim, body())
        wait_until(lambda: sim.completed_at(job["request_id"]))
        assert client.get(job["status_url"]).status_code == 200
        video = client.get(job["response_url"]).json()["video"]
        started = time.monotonic()
        assert len(client.get(video["url"]).content) == video["file_size"]
        assert time.monotonic() - started < 2.0  # not throttled to 1 B/s, not delayed 5 s
        assert client.put(job["cancel_url"]).json() == {"status": "ALREADY_COMPLETED"}
        stats = sim.stats()
        assert stats["faults"] == NO_FAULTS
        assert stats["submits_by_input"] == {sha(body()): 1} and stats["duplicate_submits"] == 0


# --- connection resets -----------------------------------------------------------------------------


def test_reset_drops_every_queue_call_and_does_nothing(client):
    with new_sim() as sim:
        job = submit(client, sim, body("to be cancelled"))
        sim.set_faults({"reset": 1.0})
        with pytest.raises(CONNECTION_DROPPED):
            post(client, sim, body("never queued"))
        for method, url in queue_calls(sim, job["request_id"]):
            with pytest.raises(CONNECTION_DROPPED):
                client.request(method, url)
        assert fired(sim) == {"reset": 4}
        assert sim.submits_for(body("never queued")) == 0
        assert [r["request_id"] for r in sim.requests()] == [job["request_id"]]
        sim.set_faults({})
        wait_until(lambda: sim.completed_at(job["request_id"]))
        (record,) = sim.requests()
        assert record["canceled"] is False and record["error_type"] is None  # the reset cancel did nothing
        stats = sim.stats()
        assert (stats["submits"], stats["status_calls"], stats["result_calls"], stats["cancel_calls"]) == (2, 1, 1, 1)


def test_reset_is_a_tcp_rst_after_the_request_was_read(sim):
    sim.set_faults({"reset": 1.0})
    payload = json.dumps(body("raw")).encode()
    request = (f"POST /{T2V} HTTP/1.1\r\nHost: x\r\nAuthorization: Key {KEY}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload
    with socket.create_connection((sim.host, sim.port), timeout=5) as raw:
        raw.sendall(request)
        with pytest.raises(ConnectionResetError):  # an orderly close (FIN) would return b"" instead
            raw.recv(1024)
    assert sim.requests() == [] and fired(sim) == {"reset": 1}


def test_submit_reset_after_accept_enqueues_then_resets(client, sim):
    sim.set_faults({"submit_reset_after_accept": 1.0})
    started = time.monotonic()
    with pytest.raises(CONNECTION_DROPPED):
        post(client, sim, body("ambiguous"))
    assert time.monotonic() - started < 2.0  # fast, unlike submit_timeout
    (record,) = sim.requests()
    assert record["input"] == body("ambiguous")
    wait_until(lambda: sim.completed_at(record["request_id"]))
    assert sim.requests()[0]["error_type"] is None  # it ran to a normal completion
    assert sim.submits_for(body("ambiguous")) == 1
    assert fired(sim) == {"submit_reset_after_accept": 1}


def test_submit_reset_after_accept_only_on_accepted_submits(client, sim):
    sim.set_faults({"submit_reset_after_accept": 1.0})
    response = post(client, sim, {"prompt": ""})  # invalid: never enqueued, so answered normally
    assert response.status_code == 422
    assert sim.requests() == [] and fired(sim) == {}


# --- latency, 5xx, 429 -----------------------------------------------------------------------------


def test_latency_delays_every_queue_call_only(client, sim):
    job = submit(client, sim, body())
    wait_until(lambda: sim.completed_at(job["request_id"]))
    sim.set_faults({"latency": 1.0}, latency_seconds=0.3)
    calls = [("POST", f"{sim.url}/{T2V}")] + list(queue_calls(sim, job["request_id"]))
    for method, url in calls:
        started = time.monotonic()
        response = client.request(method, url, json=body("late") if method == "POST" else None)
        assert time.monotonic() - started >= 0.3
        assert response.status_code in (200, 202, 400)  # answered normally, only later
    assert fired(sim) == {"latency": 4}
    client.get(f"{sim.url}/_sim/stats")  # not a queue call: no draw
    assert fired(sim) == {"latency": 4}
    assert sim.submits_for(body("late")) == 1


def test_5xx_on_every_queue_call(client, sim):
    job = submit(client, sim, body())
    sim.set_faults({"5xx": 1.0})
    response = post(client, sim, body("refused"))
    assert response.status_code == 503
    assert response.json() == {"detail": "Runner scheduling failed", "error_type": "runner_scheduling_failure"}
    assert response.headers["x-fal-error-type"] == "runner_scheduling_failure"
    for method, url in queue_calls(sim, job["request_id"]):
        response = client.request(method, url)
        assert response.status_code == 503
        assert response.json() == {"detail": "Runner disconnected", "error_type": "runner_disconnected"}
        assert response.headers["x-fal-error-type"] == "runner_disconnected"
    assert fired(sim) == {"5xx": 4}
    assert sim.submits_for(body("refused")) == 0 and len(sim.requests()) == 1
    assert sim.requests()[0]["canceled"] is False


def test_429_sends_retry_after_and_is_counted(client, sim):
    sim.set_faults({"429": 1.0})
    response = post(client, sim, body())
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert response.json() == {"detail": "Too many requests"}
    assert fired(sim) == {"429": 1} and sim.requests() == []


def test_result_422_and_lost_are_counted_at_submit(client, sim):
    sim.set_faults({"result_422": 1.0, "lost": 1.0})
    job = submit(client, sim, body())
    wait_until(lambda: sim.completed_at(job["request_id"]))
    assert client.get(job["status_url"]).status_code == 404
    assert fired(sim) == {"result_422": 1, "lost": 1}


# --- downloads -------------------------------------------------------------------------------------


def test_download_truncated_announces_full_length_and_sends_half(client, sim):
    video = completed_video(client, sim)
    sim.set_faults({"download_truncated": 1.0})
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", video["url"]) as response:
            assert int(response.headers["content-length"]) == video["file_size"]
            for chunk in response.iter_raw():
                received += chunk
    assert len(received) == video["file_size"] // 2
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(video["url"])
    assert fired(sim) == {"download_truncated": 2}
    sim.set_faults({})
    whole = client.get(video["url"]).content
    assert len(whole) == video["file_size"] and whole.startswith(bytes(received))


def test_download_truncated_applies_to_ranges(client, sim):
    video = completed_video(client, sim)
    sim.set_faults({"download_truncated": 1.0})
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", video["url"], headers={"Range": "bytes=100-1099"}) as response:
            assert response.status_code == 206 and response.headers["content-length"] == "1000"
            for chunk in response.iter_raw():
                received += chunk
    assert len(received) == 500


def test_download_slow_is_throttled_but_complete(client, sim):
    video = completed_video(client, sim)
    expected = client.get(video["url"]).content
    rate = max(1, int(video["file_size"] / 0.6))  # the whole file in 0.6 s
    sim.set_faults({"download_slow": 1.0}, download_rate_bytes=rate)
    started = time.monotonic()
    slow = client.get(video["url"])
    elapsed = time.monotonic() - started
    assert slow.status_code == 200 and slow.content == expected
    assert elapsed >= video["file_size"] / rate - 0.02
    head = client.head(video["url"])  # HEAD sends no body: no draw
    assert head.status_code == 200
    assert fired(sim) == {"download_slow": 1}


# --- runtime switching -----------------------------------------------------------------------------


def test_set_faults_applies_to_the_next_call_and_replaces_all(client, sim):
    sim.set_faults({"submit_5xx": 1.0, "status_5xx": 0.25})
    assert post(client, sim, body("a")).status_code == 503
    assert sim.faults == {**NO_FAULTS, "submit_5xx": 1.0, "status_5xx": 0.25}
    settings = sim.set_faults({"status_5xx": 0.5})  # submit_5xx left out: back to 0
    assert settings == {"faults": {**NO_FAULTS, "status_5xx": 0.5}, "latency_seconds": 0.5,
                        "download_rate_bytes": 256 * 1024, "fault_delay": 35.0,
                        "listing_lag_seconds": 0.0, "locked": "", "retired": []}
    assert post(client, sim, body("b")).status_code == 200
    sim.set_faults(latency_seconds=2.0)  # settings only: probabilities kept
    assert sim.fault_settings() == {**settings, "latency_seconds": 2.0}
    assert sim.submits_for(body("a")) == 0 and sim.submits_for(body("b")) == 1


def test_direct_edits_of_sim_faults_still_work(client, sim):
    faults = sim.faults
    sim.set_faults({"submit_5xx": 1.0})
    assert faults is sim.faults and faults["submit_5xx"] == 1.0  # updated in place
    faults["submit_5xx"] = 0.0
    assert post(client, sim, body()).status_code == 200


@pytest.mark.parametrize("faults, settings, message", [
    ({"submit_500": 0.5}, {}, "unknown fault 'submit_500'; allowed: submit_5xx,"),
    ({"lost": 2}, {}, "fault 'lost' must be a probability from 0 to 1, got 2"),
    ({"reset": -0.1}, {}, "fault 'reset' must be a probability from 0 to 1, got -0.1"),
    ({"reset": True}, {}, "fault 'reset' must be a probability from 0 to 1, got True"),
    ({"reset": "0.5"}, {}, "fault 'reset' must be a probability from 0 to 1, got '0.5'"),
    ([("reset", 1)], {}, "faults must be an object of fault name -> probability; allowed names: submit_5xx,"),
    (None, {"latency_seconds": -1}, "latency_seconds must be a number of seconds >= 0, got -1"),
    (None, {"fault_delay": "soon"}, "fault_delay must be a number of seconds >= 0, got 'soon'"),
    (None, {"download_rate_bytes": 0}, "download_rate_bytes must be a whole number of bytes per second >= 1, got 0"),
    (None, {"download_rate_bytes": 1.5},
     "download_rate_bytes must be a whole number of bytes per second >= 1, got 1.5"),
    (None, {"speed": 1}, "unknown setting 'speed'; allowed: latency_seconds, download_rate_bytes, fault_delay"),
    (None, {"locked": 1}, 'locked must be "" (not locked) or the lock\'s reason'),
    (None, {"listing_lag_seconds": -1}, "listing_lag_seconds must be a number of seconds >= 0, got -1"),
])
def test_set_faults_rejects_bad_input_and_changes_nothing(sim, faults, settings, message):
    sim.set_faults({"status_5xx": 0.5})
    before = sim.fault_settings()
    with pytest.raises(ValueError) as excinfo:
        sim.set_faults(faults, **{"latency_seconds": 1.0, **settings})  # a valid setting beside: not applied
    assert str(excinfo.value).startswith(message)
    assert sim.fault_settings() == before


def test_constructor_validates_like_set_faults():
    with pytest.raises(ValueError, match="unknown fault 'submit_500'; allowed: submit_5xx"):
        FalSimulator(faults={"submit_500": 0.5})
    with pytest.raises(ValueError, match="fault 'lost' must be a probability from 0 to 1, got 2"):
        FalSimulator(faults={"lost": 2})
    with pytest.raises(ValueError, match="latency_seconds must be a number of seconds >= 0"):
        FalSimulator(latency_seconds=-1)
    sim = FalSimulator(faults={"reset": 0.5}, latency_seconds=0.1, download_rate_bytes=1000)
    assert sim.fault_settings() == {"faults": {**NO_FAULTS, "reset": 0.5}, "latency_seconds": 0.1,
                                    "download_rate_bytes": 1000, "fault_delay": 35.0,
                                    "listing_lag_seconds": 0.0, "locked": "", "retired": []}


def test_faults_over_http_get_and_put(client, sim):
    with httpx.Client(trust_env=False) as anonymous:  # no auth, like /_sim/stats
        assert anonymous.get(f"{sim.url}/_sim/faults").json() == sim.fault_settings()
        response = anonymous.put(f"{sim.url}/_sim/faults",
                                 json={"faults": {"submit_5xx": 1}, "latency_seconds": 0.25})
        assert response.status_code == 200
        assert response.json() == {"faults": {**NO_FAULTS, "submit_5xx": 1.0}, "latency_seconds": 0.25,
                                   "download_rate_bytes": 256 * 1024, "fault_delay": 35.0,
                                   "listing_lag_seconds": 0.0, "locked": "", "retired": []}
        assert sim.fault_settings() == response.json()
        assert post(client, sim, body()).status_code == 503
        assert anonymous.put(f"{sim.url}/_sim/faults", json={"download_rate_bytes": 10}).json()["faults"] \
            == {**NO_FAULTS, "submit_5xx": 1.0}  # no "faults": probabilities kept
        assert anonymous.put(f"{sim.url}/_sim/faults", json={"faults": {}}).json()["faults"] == NO_FAULTS
        assert post(client, sim, body()).status_code == 200


@pytest.mark.parametrize("content, detail", [
    (json.dumps({"faults": {"bogus": 1}}), "unknown fault 'bogus'; allowed: submit_5xx,"),
    (json.dumps({"faults": {"reset": 1.5}}), "fault 'reset' must be a probability from 0 to 1, got 1.5"),
    (json.dumps({"faults": ["reset"]}), "faults must be an object of fault name -> probability"),
    (json.dumps({"latency_seconds": -2}), "latency_seconds must be a number of seconds >= 0, got -2"),
    (json.dumps({"download_rate_bytes": "fast"}), "download_rate_bytes must be a whole number"),
    (json.dumps({"fault": {}}),
     "unknown field 'fault'; allowed: faults, latency_seconds, download_rate_bytes, fault_delay"),
    (json.dumps(["reset"]), "body must be a JSON object with 'faults' and/or 'latency_seconds',"),
    ("{not json", "body must be a JSON object: "),
    ("", "body must be a JSON object with 'faults'"),
])
def test_put_faults_bad_input_is_400_naming_the_field(sim, content, detail):
    sim.set_faults({"status_5xx": 0.5})
    before = sim.fault_settings()
    with httpx.Client(trust_env=False) as anonymous:
        response = anonymous.put(f"{sim.url}/_sim/faults", content=content,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert sim.fault_settings() == before


# --- submit counters per input -----------------------------------------------------------------------


def test_submits_by_input_counts_accepted_submits_and_duplicates(client, sim):
    once, twice = body("once"), body("twice", duration=8)
    submit(client, sim, once)
    submit(client, sim, twice)
    submit(client, sim, dict(reversed(list(twice.items()))))  # same input, other key order
    assert post(client, sim, {"prompt": ""}).status_code == 422  # rejected: not counted
    stats = sim.stats()
    assert stats["submits"] == 4
    assert stats["submits_by_input"] == {sha(once): 1, sha(twice): 2}
    assert stats["duplicate_submits"] == 1
    assert sim.submits_for(once) == 1 and sim.submits_for(twice) == 2 and sim.submits_for(body("never")) == 0
    with httpx.Client(trust_env=False) as anonymous:
        over_http = anonymous.get(f"{sim.url}/_sim/stats").json()
    assert over_http["submits_by_input"] == stats["submits_by_input"] and over_http["duplicate_submits"] == 1


def test_submits_by_input_counts_ambiguous_submits_not_refused_ones(client):
    with new_sim(fault_delay=0.3) as sim:
        sim.set_faults({"submit_timeout": 1.0})
        with pytest.raises(httpx.ReadTimeout):
            post(client, sim, body("timed out"), timeout=0.1)
        sim.set_faults({"submit_reset_after_accept": 1.0})
        with pytest.raises(CONNECTION_DROPPED):
            post(client, sim, body("reset after accept"))
        refusals = ({"reset": 1.0}, {"5xx": 1.0}, {"submit_5xx": 1.0}, {"429": 1.0})
        for faults in refusals:
            sim.set_faults(faults)
            try:
                assert post(client, sim, body("refused")).status_code in (429, 503)
            except CONNECTION_DROPPED:
                assert faults == {"reset": 1.0}
        sim.set_faults({})
        submit(client, sim, body("reset after accept"))  # the client's retry: a duplicate
        stats = sim.stats()
        assert stats["submits_by_input"] == {sha(body("timed out")): 1, sha(body("reset after accept")): 2}
        assert stats["duplicate_submits"] == 1 and sim.submits_for(body("refused")) == 0
        assert stats["faults"] == {**NO_FAULTS, "submit_timeout": 1, "submit_reset_after_accept": 1,
                                   "reset": 1, "5xx": 1, "submit_5xx": 1, "429": 1}


# --- reproducibility and the command line ---------------------------------------------------------------


def test_new_faults_are_seeded_and_reproducible(client):
    def outcomes(seed):
        with new_sim(faults={"reset": 0.4, "5xx": 0.3}, seed=seed) as sim:
            seen = []
            for n in range(24):
                try:
                    seen.append(post(client, sim, body(f"p{n}")).status_code)
                except CONNECTION_DROPPED:
                    seen.append("reset")
            assert sim.stats()["faults"]["reset"] == seen.count("reset")
            assert sim.stats()["faults"]["5xx"] == seen.count(503)
            return seen

    first, again, other = outcomes(3), outcomes(3), outcomes(4)
    assert first == again
    assert set(first) == {200, 503, "reset"}
    assert first != other


def test_cli_has_a_flag_for_every_fault_and_setting():
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser, default_key="k", default_port=0)
    flags = [f"--fault-{name.replace('_', '-')}" for name in FAULT_NAMES]
    argv = [part for n, flag in enumerate(flags) for part in (flag, str((n + 1) / 100))]
    sim = simulator_from_args(parser.parse_args(argv + ["--latency-seconds", "0.2", "--download-rate-bytes", "1000",
                                                        "--fault-delay", "3", "--listing-lag-seconds", "4",
                                                        "--locked", "Admin lock",
                                                        "--retired", "fal-ai/ltx-2/text-to-video/fast",
                                                        "--retired", "fal-ai/ltxv-2"]))
    assert sim.faults == {name: (n + 1) / 100 for n, name in enumerate(FAULT_NAMES)}
    assert {name: getattr(sim, name) for name in FAULT_SETTINGS} == {
        "latency_seconds": 0.2, "download_rate_bytes": 1000, "fault_delay": 3.0, "listing_lag_seconds": 4.0,
        "locked": "Admin lock", "retired": ["fal-ai/ltx-2/text-to-video/fast", "fal-ai/ltxv-2"]}
    defaults = simulator_from_args(parser.parse_args([]))
    assert defaults.fault_settings() == {"faults": NO_FAULTS, "latency_seconds": 0.5,
                                         "download_rate_bytes": 256 * 1024, "fault_delay": 35.0,
                                         "listing_lag_seconds": 0.0, "locked": "", "retired": []}
    with pytest.raises(ValueError, match="fault 'reset' must be a probability"):
        simulator_from_args(parser.parse_args(["--fault-reset", "1.5"]))
