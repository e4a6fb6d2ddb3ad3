"""fal's official Python client (`fal-client`, requirements-dev.txt) against the studio's gateway.

An unchanged integrator program (tests/gateway/py/integrator.py) runs in a subprocess, as a real
integrator's would, in the two set-ups the README's gateway section names:

- plain HTTP against the live test server, with the queue-URL override (recipe B);
- TLS against the studio served by gunicorn with a certificate from a local CA, pointed at with
  `FAL_QUEUE_RUN_HOST=localhost:<port>/fal` and `SSL_CERT_FILE` only (recipe A, no code patch).

Jobs run for real: django-q2 cluster → fal simulator → stored video, which each test downloads
through the link the client got and probes. Database and storage are whatever the run uses.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from generations.models import Generation, GenerationAttempt
from storage.models import StoredObject, UsageEntry
from tests.conftest import wait_until
from tests.gateway.conftest import probe_video
from tests.processes import ROOT, free_port, running, stop, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PY_DIR = Path(__file__).with_name("py")
MODEL = "fal-ai/ltx-2/text-to-video"
APP = "fal-ai/ltx-2"
# What integrator.py asks for (6 s, 25 fps, 1080p, audio); the simulator renders at 1/16 size.
FRAMES, FPS, DURATION = 150, 25.0, 6.0
# A 3 s simulated run instead of 1 s. The studio polls fal at most once a second, so on a 1 s job its
# first poll already sees COMPLETED and the client's IN_PROGRESS is only the ~0.1-0.4 s copy into
# storage — too short for a 0.1 s poll loop to be sure to catch it.
PROMPT = "A lighthouse on a cliff at dusk, waves crashing [sim:slow]"
Status = Generation.Status


@pytest.fixture(autouse=True)
def stored_files_removed(transactional_db) -> Iterator[None]:
    """Stored files outlive the database flush. On S3 (a bucket shared by the whole run, as in CI) remove
    what this test's jobs stored, once its processes are stopped, so later storage checks see no orphans."""
    yield
    from django.conf import settings
    from django.core.files.storage import default_storage

    if settings.STORAGES["default"]["BACKEND"].endswith("S3Storage"):
        for key in StoredObject.objects.values_list("key", flat=True):
            default_storage.delete(key)


# --- running the client ---------------------------------------------------------------------

def client_env(key: str, **extra: str) -> dict[str, str]:
    """The environment of an integrator's process: no fal or CA settings but the ones given."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("FAL_") and name not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    return {**env, "FAL_KEY": key, "NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
            "PYTHONUNBUFFERED": "1", "LTX_PROMPT": PROMPT, **extra}


def run_client(env: dict[str, str], *scenarios: str, options: tuple[str, ...] = (), timeout: float = 90,
               check: bool = True) -> Any:
    """Run the integrator program (through patched_client.py when `options` are given); its JSON line."""
    program = ["patched_client.py", *options] if options else ["integrator.py"]
    run = subprocess.run([sys.executable, str(PY_DIR / program[0]), *program[1:], *scenarios], cwd=PY_DIR, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if not check:
        return run
    assert run.returncode == 0, f"client failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def over_http(live_studio: str, key: str, *scenarios: str, **extra: str) -> dict[str, Any]:
    return run_client(client_env(key, **extra), *scenarios, options=("--queue-url", f"{live_studio}/fal/"))


def types(statuses: list[dict[str, Any]]) -> list[str]:
    """Status types in order, consecutive repeats dropped."""
    seen: list[str] = []
    for status in statuses:
        if not seen or seen[-1] != status["type"]:
            seen.append(status["type"])
    return seen


# --- assertions -----------------------------------------------------------------------------

def assert_request_urls(outcome: dict[str, Any], base: str, app: str = APP) -> None:
    request = f"{base}/fal/{app}/requests/{outcome['request_id']}"
    assert (outcome["response_url"], outcome["status_url"], outcome["cancel_url"]) == (
        request, f"{request}/status", f"{request}/cancel")


def assert_completed_ok(status: dict[str, Any]) -> None:
    assert status["type"] == "Completed"
    assert status["error"] is None and status["error_type"] is None
    assert isinstance(status["logs"], list) and status["logs"]
    inference_time = status["metrics"]["inference_time"]
    assert isinstance(inference_time, (int, float)) and inference_time > 0, status["metrics"]


def assert_progress_order(statuses: list[dict[str, Any]]) -> None:
    """Queued → InProgress → Completed, in that order, each at least once; logs on the last two."""
    assert types(statuses) == ["Queued", "InProgress", "Completed"], statuses
    for status in statuses:
        if status["type"] == "Queued":
            assert isinstance(status["position"], int) and status["position"] >= 0
        else:
            assert isinstance(status["logs"], list), status  # asked for with logs: a list, not None
    assert_completed_ok(statuses[-1])


def assert_stored_video(result: dict[str, Any], request_id: str, owner, *, link_base: str) -> Generation:
    """The result's video is alice's stored, playable file: probe == VideoFile == the database."""
    generation = Generation.objects.select_related("video__file").get(pk=request_id)
    assert generation.owner == owner
    assert generation.status == Status.SUCCEEDED
    assert generation.model_id == MODEL
    assert generation.input == {"prompt": PROMPT, "duration": "6", "resolution": "1080p", "fps": "25",
                                "generate_audio": True, "aspect_ratio": "16:9"}  # the client's ints, normalised
    video, stored = result["video"], generation.video
    assert video["url"].startswith(f"{link_base}/")
    probe = probe_video(video["url"])
    assert probe["width"] == video["width"] == stored.width > 0
    assert probe["height"] == video["height"] == stored.height > 0
    assert probe["frames"] == video["num_frames"] == stored.num_frames == FRAMES
    assert probe["bytes"] == video["file_size"] == stored.file.size
    assert probe["audio"] is video["has_audio"] is True
    assert (video["content_type"], video["fps"], video["duration"]) == ("video/mp4", FPS, DURATION)
    return generation


# --- plain HTTP, queue-URL override ---------------------------------------------------------

def test_submit_status_and_get_follow_a_job_to_its_stored_video(live_studio, studio_key, user):
    outcome = over_http(live_studio, studio_key, "submit")["submit"]

    assert_request_urls(outcome, live_studio)
    assert_progress_order(outcome["statuses"])
    assert_stored_video(outcome["result"], outcome["request_id"], user, link_base=live_studio)
    assert Generation.objects.count() == 1


def test_a_2_3_portrait_request_gets_a_portrait_video_at_the_asked_fps(live_studio, studio_key, user):
    outcome = over_http(live_studio, studio_key, "portrait")["portrait"]

    generation = Generation.objects.select_related("video__file").get(pk=outcome["request_id"])
    assert generation.status == Status.SUCCEEDED and generation.owner == user
    assert generation.model_id == "fal-ai/ltx-2.3/text-to-video"
    assert generation.input == {"prompt": PROMPT, "duration": 6, "resolution": "1080p", "fps": 24,
                                "generate_audio": True, "aspect_ratio": "9:16"}  # 2.3: integers on the wire
    video = outcome["result"]["video"]
    probe = probe_video(video["url"])
    assert probe["height"] == video["height"] == generation.video.height
    assert probe["width"] == video["width"] == generation.video.width
    assert (probe["width"], probe["height"]) == (66, 120)  # 1080×1920 at the simulator's 1/16, sides even
    assert probe["frames"] == video["num_frames"] == 144  # 6 s at 24 fps
    assert video["fps"] == 24.0


def test_subscribe_reports_queued_then_in_progress_then_completed(live_studio, studio_key, user):
    outcome = over_http(live_studio, studio_key, "subscribe")["subscribe"]

    assert outcome["enqueued"] == [outcome["request_id"]]
    assert_progress_order(outcome["updates"])
    assert_stored_video(outcome["result"], outcome["request_id"], user, link_base=live_studio)


@pytest.mark.parametrize("scenario, app", [("module", APP), ("module-alias", "fal-ai/ltxv-2")])
def test_module_level_status_and_result_rebuild_urls_from_the_app_id(live_studio, studio_key, user, scenario, app):
    outcome = over_http(live_studio, studio_key, scenario)[scenario]

    assert_request_urls(outcome, live_studio, app=app)
    assert_progress_order(outcome["statuses"])
    generation = assert_stored_video(outcome["result"], outcome["request_id"], user, link_base=live_studio)
    assert generation.model_id == MODEL  # the alias maps to the current id


def assert_canceled_round(outcome: dict[str, Any], *, before: str) -> Generation:
    assert outcome["before"][-1]["type"] == before, outcome["before"]
    assert outcome["cancel"] == {"ok": None}
    after = outcome["after"]
    assert after["type"] == "Completed" and after["error_type"] == "canceled" and after["error"], after
    refused = outcome["get"]["error"]
    assert (refused["status_code"], refused["error_type"]) == (400, "canceled"), refused
    assert "cancel" in refused["message"].lower()
    again = outcome["cancel_again"]["error"]
    assert (again["status_code"], again["body"]) == (400, {"status": "ALREADY_COMPLETED"}), again
    generation = Generation.objects.get(pk=outcome["request_id"])
    assert generation.status == Status.CANCELED and generation.error_code == "canceled"
    return generation


def sim_request(simulator_env: dict[str, str], fal_request_id: str) -> dict[str, Any]:
    requests = httpx.get(simulator_env["FAL_QUEUE_URL"] + "/_sim/requests").raise_for_status().json()
    return next(request for request in requests if request["request_id"] == fal_request_id)


def test_cancel_while_queued_ends_the_job_without_a_video(live_studio, simulator_env, studio_key, user):
    outcome = over_http(live_studio, studio_key, "cancel-queued")["cancel-queued"]

    assert_request_urls(outcome, live_studio)
    generation = assert_canceled_round(outcome, before="Queued")
    # If the submit had already reached fal, fal is told to cancel too; either way nothing is stored.
    time.sleep(1)  # a submit claimed just before the cancel finishes (and records its request id) meanwhile
    wait_until(lambda: not GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.SUBMIT,
                                                            outcome=GenerationAttempt.Outcome.SENT).exists())
    generation.refresh_from_db()
    if generation.fal_request_id:
        wait_until(lambda: sim_request(simulator_env, generation.fal_request_id)["canceled"], timeout=15)
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED and generation.video_id is None
    assert StoredObject.objects.count() == 0


def test_cancel_while_in_progress_cancels_upstream_and_stores_nothing(live_studio, simulator_env, studio_key, user):
    outcome = over_http(live_studio, studio_key, "cancel-running")["cancel-running"]

    generation = assert_canceled_round(outcome, before="InProgress")
    assert generation.fal_request_id and generation.was_running
    wait_until(lambda: GenerationAttempt.objects.filter(generation=generation, kind=GenerationAttempt.Kind.CANCEL,
                                                        outcome=GenerationAttempt.Outcome.OK).exists(), timeout=15)
    upstream = sim_request(simulator_env, generation.fal_request_id)
    assert upstream["canceled"] is True and upstream["status"] == "COMPLETED"
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED and generation.video_id is None
    assert StoredObject.objects.count() == 0


def test_invalid_duration_is_a_422_naming_the_field_and_creates_nothing(live_server, studio_key, user):
    outcome = over_http(live_server.url, studio_key, "invalid")["invalid"]

    error = outcome["error"]
    assert error["status_code"] == 422
    detail = error["body"]["detail"]
    assert [(item["loc"], item["type"]) for item in detail] == [(["body", "duration"], "value_error")]
    assert "7" in detail[0]["msg"] and "6, 8, 10" in detail[0]["msg"]
    assert "duration" in error["message"] and "6, 8, 10" in error["message"]  # the client's message is the detail
    assert Generation.objects.count() == 0
    assert not UsageEntry.objects.exists()  # nothing reserved either


def test_another_user_cannot_see_fetch_or_cancel_a_request(live_studio, studio_key, user, other_user):
    from accounts.keys import api_key_create

    bob_key = api_key_create(user=other_user, name="bob's fal client")[1]
    outcome = over_http(live_studio, studio_key, "isolation", OTHER_FAL_KEY=bob_key)["isolation"]
    request_id = outcome["request_id"]

    def never_existed(method: str, suffix: str) -> dict[str, Any]:
        """What bob gets for an id nobody has (with alice's id written in)."""
        unknown = str(uuid.uuid4())
        response = httpx.request(method, f"{live_studio}/fal/{APP}/requests/{unknown}{suffix}",
                                 headers={"Authorization": f"Key {bob_key}"})
        assert response.status_code == 404
        return json.loads(response.text.replace(unknown, request_id))

    not_found = {"status": never_existed("GET", "/status"), "result": never_existed("GET", ""),
                 "cancel": never_existed("PUT", "/cancel")}
    for when in ("while_active", "after_completion"):
        tried = outcome[when]
        # Through fal's client: 404s (its result() polls status first, so that 404 is the status one).
        for call, answer in (("status", "status"), ("result", "status"), ("cancel", "cancel")):
            error = tried[call]["error"]
            assert (error["status_code"], error["body"]) == (404, not_found[answer]), (when, call)
        # On the exact URLs alice was given: indistinguishable from an id that never existed.
        assert tried["raw"] == {name: [404, body] for name, body in not_found.items()}, when

    assert_progress_order(outcome["statuses"])  # alice's job went on undisturbed
    assert_stored_video(outcome["result"], request_id, user, link_base=live_studio)
    assert not GenerationAttempt.objects.filter(generation_id=request_id, kind=GenerationAttempt.Kind.CANCEL).exists()
    assert not Generation.objects.filter(owner=other_user).exists()


# --- TLS: gunicorn + local CA, FAL_QUEUE_RUN_HOST ------------------------------------------

@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path) -> TlsFiles:
    """A local CA and a server certificate it signed for localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LTX Studio test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return files


@dataclass(frozen=True)
class TlsStudio:
    port: int
    files: TlsFiles
    log: Path

    @property
    def base(self) -> str:
        return f"https://localhost:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def tls_studio(simulator_env, tmp_path_factory) -> Iterator[TlsStudio]:
    """The studio as gunicorn serves it over TLS, on the same database, simulator and media as the test."""
    folder = tmp_path_factory.mktemp("tls")
    files = make_tls_files(folder)
    port = free_port()
    log = folder / "gunicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "studio.asgi:application", "--bind", f"127.0.0.1:{port}",
             "--worker-class", "studio.asgi_worker.StudioWorker",
             "--certfile", str(files.cert), "--keyfile", str(files.key), "--workers", "2",
             "--timeout", "60", "--access-logfile", "-"],
            cwd=ROOT, env=simulator_env, stdout=output, stderr=subprocess.STDOUT)
    studio = TlsStudio(port=port, files=files, log=log)
    try:
        try:
            wait_for_port(port, server)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{studio.log_tail()}") from exc
        yield studio
    finally:
        stop(server)


@pytest.fixture
def tls_cluster(tls_studio, simulator_env, transactional_db) -> Iterator[None]:
    """A worker cluster for the TLS studio, started after (so stopped before) this test's database set-up."""
    with running("qcluster", env=simulator_env):
        yield


def test_unchanged_program_reaches_the_studio_over_tls_with_fal_queue_run_host(tls_studio, tls_cluster, studio_key,
                                                                               user, monkeypatch):
    env = client_env(studio_key, FAL_QUEUE_RUN_HOST=f"localhost:{tls_studio.port}/fal",
                     SSL_CERT_FILE=str(tls_studio.files.ca))
    run = run_client(env, "subscribe", "submit", "module", "cancel-queued", check=False)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- gunicorn:\n{tls_studio.log_tail()}"
    outcomes = json.loads(run.stdout.strip().splitlines()[-1])

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_studio.files.ca))  # probe_video's httpx trusts the local CA too
    subscribed = outcomes["subscribe"]
    assert subscribed["enqueued"] == [subscribed["request_id"]]
    assert_progress_order(subscribed["updates"])
    assert_stored_video(subscribed["result"], subscribed["request_id"], user, link_base=tls_studio.base)
    for name in ("submit", "module"):
        assert_request_urls(outcomes[name], tls_studio.base)
        assert_progress_order(outcomes[name]["statuses"])
        assert_stored_video(outcomes[name]["result"], outcomes[name]["request_id"], user, link_base=tls_studio.base)
    assert_request_urls(outcomes["cancel-queued"], tls_studio.base)
    assert_canceled_round(outcomes["cancel-queued"], before="Queued")
    assert set(Generation.objects.values_list("owner__username", flat=True)) == {"alice"}
    assert Generation.objects.count() == 4


def test_without_the_local_ca_the_client_refuses_the_server(tls_studio, studio_key, user):
    env = client_env(studio_key, FAL_QUEUE_RUN_HOST=f"localhost:{tls_studio.port}/fal")
    # One attempt per call: fal's client would otherwise retry the TLS failure for ~50 s before raising it.
    run = run_client(env, "submit", options=("--max-attempts", "1"), check=False, timeout=120)

    assert run.returncode != 0
    assert "httpx.ConnectError" in run.stderr and "CERTIFICATE_VERIFY_FAILED" in run.stderr, run.stderr
    assert Generation.objects.count() == 0
