"""Production mode: gunicorn + whitenoise as a real process, /livez, /healthz, /metrics, refusing bad settings.

Database and storage are whatever the run uses (CI: PostgreSQL + S3, and SQLite + filesystem).
"""
from __future__ import annotations

import http.server
import json
import os
import re
import runpy
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
from django.core.files.storage import Storage
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule

from accounts.keys import api_key_create
from fal_protocol.catalog import BY_ID, ENDPOINTS
from fal_protocol.client import FalNotFound
from generations.models import EndpointOverride, Generation, Project, SchemaMismatch
from generations.services.catalog import endpoint_mark_unavailable
from studio import health
from tests.factories import StaffFactory
from tests.processes import ROOT, child_env, free_port, require_redis, running_gunicorn, running_redis
from tests.s3server import create_bucket, delete_bucket, storages_setting
from webhooks.signing_keys import new_signing_key

FAL_SECRET = "fal-secret-that-must-never-leak-0123456789"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
Status = Generation.Status


# --- the real production server --------------------------------------------------------------

def production_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = child_env(
        DEBUG="false", SECRET_KEY="production-test-secret-key-" + "x" * 40, ALLOWED_HOSTS="127.0.0.1,localhost",
        STUDIO_SIGNING_KEY=new_signing_key(), STATIC_ROOT=str(tmp / "static"), MEDIA_ROOT=str(tmp / "media"),
        FAL_KEY=FAL_SECRET, FAL_QUEUE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        STUDIO_METRICS_TOKEN=METRICS_TOKEN, **{"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", **extra})
    env["FAL_REST_URL"] = env["FAL_API_URL"] = env["FAL_QUEUE_URL"]
    return env


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`collectstatic` as `make run-prod` runs it (DEBUG off: hashed, compressed, with a manifest)."""
    tmp = tmp_path_factory.mktemp("prod")
    env = {**production_env(tmp), "DATABASE_URL": "sqlite:///" + str(tmp / "unused.sqlite3")}
    run = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert (tmp / "static" / "staticfiles.json").exists()
    return tmp


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_the_studio_in_production_mode(collected_static: Path, tmp_path: Path) -> None:
    # given: gunicorn started from gunicorn.conf.py, as Procfile.prod starts it, against this test's database
    env = production_env(collected_static)
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out, running_gunicorn(env, stdout=out, stderr=subprocess.STDOUT) as (url, server):
        with httpx.Client(base_url=url, timeout=10) as http:
            # then: alive, and healthy where it matters
            live = http.get("/livez")
            assert (live.status_code, live.json()) == (200, {"status": "ok"})

            answer = http.get("/healthz")
            assert answer.status_code == 200, answer.text
            checks = answer.json()["checks"]
            assert answer.json()["status"] == "ok"
            assert {name: checks[name]["ok"] for name in ("database", "broker", "storage")} == \
                {"database": True, "broker": True, "storage": True}
            assert checks["storage"]["detail"].startswith("s3 bucket" if os.environ.get("AWS_STORAGE_BUCKET_NAME")
                                                          else "filesystem")
            assert checks["provider"]["ok"] is False  # reported, but only a warning
            assert FAL_SECRET not in answer.text

            # static files from whitenoise: hashed name, compressed, cached for a year
            manifest = json.loads((collected_static / "static" / "staticfiles.json").read_text())
            hashed = manifest["paths"]["admin/css/base.css"]
            css = http.get(f"/static/{hashed}", headers={"Accept-Encoding": "gzip"})
            assert css.status_code == 200
            assert "max-age=315360000" in css.headers["cache-control"]
            assert "immutable" in css.headers["cache-control"]
            assert css.headers.get("content-encoding") == "gzip"
            assert css.headers["content-type"].startswith("text/css")

            # the API answers in its own error shape, not a debug page
            usage = http.get("/api/v1/usage/")
            assert usage.status_code == 401
            assert usage.json()["code"] == "not_authenticated"

            metrics = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            assert metrics.status_code == 200
            assert 'studio_generations{status="succeeded"} 0' in metrics.text
            assert http.get("/metrics").status_code == 403
    output = log.read_text()
    assert server.returncode == 0, output
    assert "Using worker: studio.asgi_worker.StudioWorker" in output
    assert f"Listening at: {url}" in output
    assert '"GET /livez HTTP/1.1" 200' in output  # the access log goes to stdout


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_https_mode_redirects_plain_http_and_keeps_cookies_on_tls(collected_static: Path, user) -> None:
    # given: production mode behind a TLS proxy (X-Forwarded-Proto), with STUDIO_HTTPS on
    env = production_env(collected_static, STUDIO_HTTPS="true", STUDIO_TRUST_FORWARDED_HEADERS="true")
    tls = {"X-Forwarded-Proto": "https"}
    with running_gunicorn(env) as (url, _), httpx.Client(base_url=url, timeout=10) as http:
        # then: plain HTTP is sent to HTTPS, except the probes, which load balancers call from inside
        plain = http.get("/accounts/login/?next=/")
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://{url.removeprefix('http://')}/accounts/login/?next=/"
        assert "set-cookie" not in plain.headers
        assert http.get("/livez").status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200

        # and: over TLS, HSTS for a year and cookies marked Secure, the session's too
        page = http.get("/accounts/login/", headers=tls)
        assert page.status_code == 200
        assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        csrf = page.cookies["csrftoken"]
        assert "; Secure" in page.headers["set-cookie"]
        signed_in = http.post("/accounts/login/", headers={**tls, "Origin": f"https://{url.removeprefix('http://')}",
                                                           "Cookie": f"csrftoken={csrf}"},
                              data={"username": "alice", "password": "alice-password", "csrfmiddlewaretoken": csrf})
        assert signed_in.status_code == 302, signed_in.text
        session_cookie = [cookie for cookie in signed_in.headers.get_list("set-cookie")
                          if cookie.startswith("sessionid=")]
        assert len(session_cookie) == 1 and "; Secure" in session_cookie[0]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_web_servers_sharing_redis_count_one_api_rate(collected_static: Path, user) -> None:
    # given: two production web servers (one process each) on one Redis, and a key allowed a burst of 4
    require_redis()
    _, raw = api_key_create(user=user, name="two servers")
    auth = {"Authorization": f"Bearer {raw}"}
    with running_redis() as redis_url, ExitStack() as servers:
        env = production_env(collected_static, REDIS_URL=redis_url, STUDIO_API_RATE="4/min", WEB_CONCURRENCY="1")
        urls = [servers.enter_context(running_gunicorn(env))[0] for _ in range(2)]

        # when: the key calls them in turn
        answers = [httpx.get(f"{urls[i % 2]}/api/v1/usage/", headers=auth, timeout=10) for i in range(8)]

        # then: 4 calls in all, not 4 per server; the count is one key in Redis, the user's
        assert [answer.status_code for answer in answers] == [200] * 4 + [429] * 4
        assert int(answers[4].headers["Retry-After"]) > 0
        stored = redis.Redis.from_url(redis_url).keys("studio-throttle:*")
        assert [key.decode() for key in stored] == [f"studio-throttle:throttle_api_user:{user.pk}"]


def test_gunicorn_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BIND", "PORT", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert config["worker_class"] == "studio.asgi_worker.StudioWorker"
    assert config["bind"] == "127.0.0.1:8000"
    assert 3 <= config["workers"] <= 8
    assert config["accesslog"] == "-"

    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (config["bind"], config["workers"]) == ("127.0.0.1:9001", 3)

    monkeypatch.setenv("BIND", "0.0.0.0:7000")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "0.0.0.0:7000"


# --- refusing to start without production settings ----------------------------------------------

def run_deploy_check(**env: str) -> subprocess.CompletedProcess:
    """What `make run-prod` runs first (with DEBUG=false unless the caller says otherwise), without
    the setting the browser tests put in this process's environment for Playwright."""
    base = {name: value for name, value in os.environ.items()
            if name not in ("SECRET_KEY", "ALLOWED_HOSTS", "STUDIO_SIGNING_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_production_mode_refuses_without_a_secret_key() -> None:
    run = run_deploy_check(DEBUG="false", ALLOWED_HOSTS="studio.example.com", STUDIO_SIGNING_KEY=new_signing_key())
    assert run.returncode != 0
    assert "ImproperlyConfigured: DEBUG is off, so these must be set in the environment: SECRET_KEY" in run.stderr


def test_production_mode_refuses_without_a_signing_key() -> None:
    run = run_deploy_check(DEBUG="false", SECRET_KEY="s" * 60, ALLOWED_HOSTS="studio.example.com")
    assert run.returncode != 0
    assert "STUDIO_SIGNING_KEY must be set" in run.stderr
    assert "generate_signing_key" in run.stderr


def test_deploy_check_passes_when_served_over_https() -> None:
    production = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "studio.example.com",
                  "STUDIO_SIGNING_KEY": new_signing_key()}
    plain = run_deploy_check(**production)
    assert plain.returncode == 0, plain.stderr
    assert set(re.findall(r"security\.W\d+", plain.stdout + plain.stderr)) == \
        {"security.W004", "security.W008", "security.W012", "security.W016"}  # HSTS, redirect, both cookies

    https = run_deploy_check(**production, STUDIO_HTTPS="true", STUDIO_HSTS_PRELOAD="true")
    assert https.returncode == 0, https.stderr
    assert "System check identified no issues (0 silenced)." in https.stdout


def test_a_negative_hsts_lifetime_is_refused_at_start_up() -> None:
    run = run_deploy_check(DEBUG="true", STUDIO_HTTPS="true", STUDIO_HSTS_SECONDS="-1")
    assert run.returncode != 0
    assert "STUDIO_HSTS_SECONDS must be 0 (no HSTS) or more, got -1" in run.stderr


def test_makefile_run_prod_turns_the_error_into_one_line() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\nrun-prod: install\n", 1)[1].split("\n\n", 1)[0]
    assert "manage.py check --deploy" in target
    assert "Not starting in production mode: " in target
    assert "-f Procfile.prod" in target
    assert "collectstatic" in target
    procfile = (ROOT / "Procfile.prod").read_text()
    assert "web: gunicorn -c gunicorn.conf.py studio.asgi" in procfile
    assert "worker: python manage.py workers" in procfile


# --- /livez and /healthz ---------------------------------------------------------------------

class ProbeTarget:
    """A local HTTP server standing in for fal's queue host; answers 401 and records the headers."""

    def __init__(self) -> None:
        seen = self.headers = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append(dict(self.headers))
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fal_host(settings) -> Iterator[ProbeTarget]:
    target = ProbeTarget()
    settings.FAL_QUEUE_URL = target.url
    settings.FAL_KEY = FAL_SECRET
    try:
        yield target
    finally:
        target.close()


@pytest.fixture
def fal_down(settings) -> None:
    settings.FAL_QUEUE_URL = f"http://127.0.0.1:{free_port()}/queue"
    settings.FAL_KEY = FAL_SECRET


class BrokenStorage(Storage):
    def exists(self, name: str) -> bool:
        raise OSError("the disk is on fire")


def healthz(client) -> tuple[int, dict]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    assert FAL_SECRET not in response.content.decode()
    return response.status_code, response.json()


def test_livez_does_no_io(client) -> None:
    response = client.get("/livez")  # no django_db mark: a query would fail the test
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_healthz_ok_on_each_storage_backend(client, storage_backend, fal_host: ProbeTarget) -> None:
    status, body = healthz(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert list(body["checks"]) == ["database", "broker", "storage", "provider", "workers", "catalog"]
    for name in ("database", "broker", "storage", "provider", "catalog"):
        assert body["checks"][name]["ok"] is True, body["checks"][name]
        assert isinstance(body["checks"][name]["ms"], float)
    assert ("s3 bucket" if storage_backend.s3 else "filesystem") in body["checks"]["storage"]["detail"]
    # the provider probe is anonymous: any HTTP answer (here 401) counts as reachable
    assert "HTTP 401" in body["checks"]["provider"]["detail"]
    assert body["checks"]["catalog"]["detail"] == "the short names mean LTX-2.3's endpoints, all usable"
    assert len(fal_host.headers) == 1
    assert "Authorization" not in fal_host.headers[0]
    assert storage_backend.keys() == []  # the storage check writes nothing


@pytest.mark.django_db
def test_healthz_storage_failure_is_503_with_the_reason(client, settings, fal_host: ProbeTarget) -> None:
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "tests.test_production.BrokenStorage"}}
    status, body = healthz(client)
    assert status == 503
    assert body["status"] == "degraded"
    assert body["checks"]["storage"] == {"ok": False, "ms": body["checks"]["storage"]["ms"],
                                         "detail": "OSError: the disk is on fire"}
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_healthz_missing_bucket_is_503(client, settings, s3_endpoint: str, fal_host: ProbeTarget) -> None:
    target = create_bucket(s3_endpoint)
    delete_bucket(target)
    settings.STORAGES = storages_setting(target)
    status, body = healthz(client)
    assert status == 503
    assert body["checks"]["storage"]["detail"] == f"bucket {target.bucket!r}: does not exist"


@pytest.mark.django_db
def test_healthz_provider_unreachable_only_warns(client, media_root, fal_down) -> None:
    status, body = healthz(client)
    assert status == 200
    assert body["status"] == "ok"
    provider = body["checks"]["provider"]
    assert provider["ok"] is False
    assert provider["detail"].startswith("http://127.0.0.1:")
    assert "unreachable: ConnectError" in provider["detail"]
    assert "/queue" not in provider["detail"]


@pytest.mark.django_db
def test_healthz_redis_broker_down_is_503(client, settings, media_root, fal_down) -> None:
    settings.REDIS_URL = f"redis://:{FAL_SECRET}@127.0.0.1:{free_port()}/0"
    status, body = healthz(client)
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"]


@pytest.mark.django_db
def test_healthz_database_down_is_503_and_skips_what_needs_it(client, monkeypatch, media_root, fal_down) -> None:
    def refuse() -> str:
        raise health.CheckFailed("connection refused")

    monkeypatch.setattr(health, "check_database", refuse)
    status, body = healthz(client)
    assert status == 503
    assert body["checks"]["database"]["detail"] == "connection refused"
    if not body["checks"]["broker"]["detail"].startswith("redis"):
        assert body["checks"]["broker"] == {"ok": False, "ms": 0.0,
                                            "detail": "not checked: the database is unavailable"}
    assert body["checks"]["workers"]["ok"] is False
    assert body["checks"]["catalog"] == {"ok": False, "ms": 0.0, "detail": "not checked: the database is unavailable"}


@pytest.mark.django_db
def test_healthz_catalog_warns_naming_each_refused_endpoint_a_short_name_means(client, media_root, fal_down) -> None:
    # given: of the endpoints the short names mean (LTX-2.3), one gone at fal, one retired, one disabled;
    # and a retired LTX-2.0 endpoint no short name means
    endpoint_mark_unavailable(BY_ID["fal-ai/ltx-2.3/text-to-video"],
                              FalNotFound("x", status_code=404, detail="Application not found"))
    gone_at = EndpointOverride.objects.get().unavailable_since
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/image-to-video", retired=True,
                                    replacement="fal-ai/ltx-2/image-to-video")
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video/fast", enabled=False)
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", retired=True)

    # when
    status, body = healthz(client)

    # then: a warning, not an outage
    assert (status, body["status"]) == (200, "ok")
    assert body["checks"]["catalog"]["ok"] is False
    assert body["checks"]["catalog"]["detail"] == (
        "short names refused under STUDIO_LTX_VERSION=2.3: "
        f"t2v: fal-ai/ltx-2.3/text-to-video unavailable at fal since {gone_at:%Y-%m-%d %H:%M:%S} "
        "(fal answered 404: Application not found), no replacement set; "
        "t2v-fast: fal-ai/ltx-2.3/text-to-video/fast disabled, no replacement set; "
        "i2v: fal-ai/ltx-2.3/image-to-video retired, replacement fal-ai/ltx-2/image-to-video; "
        "also refused: fal-ai/ltx-2/text-to-video retired, no replacement set")


@pytest.mark.django_db
def test_healthz_catalog_follows_studio_ltx_version(client, settings, media_root, fal_down) -> None:
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", enabled=False)
    settings.STUDIO_LTX_VERSION = "2.0"  # the short names mean 2.0's endpoints, all usable
    _, body = healthz(client)
    assert body["checks"]["catalog"] == {**body["checks"]["catalog"], "ok": True, "detail": (
        "the short names mean LTX-2.0's endpoints, all usable; "
        "also refused: fal-ai/ltx-2.3/text-to-video disabled, no replacement set")}


@pytest.mark.django_db
def test_healthz_does_not_wait_for_a_hung_check(client, monkeypatch, media_root, fal_down) -> None:
    release = threading.Event()
    monkeypatch.setattr(health, "DEADLINE_SECONDS", 0.3)
    monkeypatch.setattr(health, "check_provider", lambda: release.wait(5) and "late")
    try:
        status, body = healthz(client)
    finally:
        release.set()
    assert status == 200
    assert body["checks"]["provider"]["ok"] is False
    assert body["checks"]["provider"]["detail"] == "no answer within 0.3 s"
    assert body["checks"]["provider"]["ms"] < 2000


@pytest.mark.django_db
def test_healthz_never_raises(client, monkeypatch) -> None:
    monkeypatch.setattr(health, "run_checks", lambda: 1 / 0)
    status, body = healthz(client)
    assert status == 503
    assert body == {"status": "degraded", "checks": {"health": {"ok": False, "ms": 0.0,
                                                                "detail": "ZeroDivisionError: division by zero"}}}


@pytest.mark.django_db
def test_healthz_workers_warn_when_schedules_stall(client, media_root, fal_down) -> None:
    Schedule.objects.all().delete()
    Schedule.objects.create(func="math.floor", args="1", schedule_type=Schedule.MINUTES, minutes=1,
                            next_run=timezone.now() - timedelta(minutes=10))
    status, body = healthz(client)
    assert status == 200
    workers = body["checks"]["workers"]
    assert workers["ok"] is False
    assert "0 cluster(s) seen" in workers["detail"] and "overdue" in workers["detail"]

    Schedule.objects.update(next_run=timezone.now() + timedelta(seconds=40))  # a scheduler keeps it moving
    _, body = healthz(client)
    assert body["checks"]["workers"] == {**body["checks"]["workers"], "ok": True}


# --- /metrics --------------------------------------------------------------------------------

def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


@pytest.mark.django_db
def test_metrics_need_staff_or_the_token(client, settings, user, db) -> None:
    settings.STUDIO_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403  # no token configured

    client.force_login(user)
    assert client.get("/metrics").status_code == 403

    client.force_login(StaffFactory(username="ops"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    client.logout()

    settings.STUDIO_METRICS_TOKEN = METRICS_TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Key {METRICS_TOKEN}").status_code == 403


@pytest.mark.django_db
def test_metrics_count_what_the_rows_say(client, settings, user, django_assert_max_num_queries) -> None:
    # given: jobs in several states, recent and old
    settings.STUDIO_METRICS_TOKEN = METRICS_TOKEN
    now = timezone.now()
    project = Project.objects.create(owner=user, name="Inbox")

    def job(status: str, **fields) -> Generation:
        return Generation.objects.create(owner=user, project=project, model_id="fal-ai/ltx-2/text-to-video",
                                         input={"prompt": "p"}, cost_usd=Decimal("0.36"), status=status, **fields)

    for store_seconds in (1, 2, 3, 4, 10):
        job(Status.SUCCEEDED, submitted_at=now - timedelta(seconds=60), completed_at=now - timedelta(seconds=20),
            finished_at=now - timedelta(seconds=20 - store_seconds))
    job(Status.SUCCEEDED, submitted_at=now - timedelta(hours=2), completed_at=now - timedelta(hours=2),
        finished_at=now - timedelta(hours=1))  # outside the 15-minute window
    job(Status.FAILED, error_code="upstream_rejected", finished_at=now - timedelta(minutes=5))
    job(Status.FAILED, error_code="upstream_rejected", finished_at=now - timedelta(minutes=50))
    job(Status.FAILED, error_code='odd"code', finished_at=now - timedelta(minutes=1))
    job(Status.FAILED, error_code="submit_unknown", finished_at=now - timedelta(hours=3))  # too old
    job(Status.QUEUED, next_poll_at=now - timedelta(seconds=30))
    job(Status.RUNNING, next_poll_at=now - timedelta(seconds=5))
    job(Status.RUNNING, next_poll_at=now + timedelta(seconds=1))
    job(Status.HELD)
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="x", lock=now - timedelta(seconds=1))
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="y", lock=now + timedelta(minutes=5))  # taken by a worker
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", retired=True)
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/image-to-video", unavailable_since=now)
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", price_per_second={"1080p": "0.01"})
    SchemaMismatch.objects.create(endpoint_id="fal-ai/ltx-2.3/image-to-video", field="end_image_url", message="m",
                                  count=3)
    SchemaMismatch.objects.create(endpoint_id="fal-ai/ltx-2.3/image-to-video", field="fps", message="m", count=1)

    # when: one query per family (the catalog's overrides and the schema drift one each)
    with django_assert_max_num_queries(8):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")

    # then
    assert response.status_code == 200
    values = parse_metrics(response.content.decode())
    assert {status: values[f'studio_generations{{status="{status}"}}'] for status in Status.values} == {
        "pending": 0, "held": 1, "submitting": 0, "queued": 1, "running": 2, "storing": 0,
        "succeeded": 6, "failed": 4, "canceled": 0}
    failed = {name: value for name, value in values.items() if name.startswith("studio_generations_failed_last_hour")}
    assert failed == {'studio_generations_failed_last_hour{error_code="odd\\"code"}': 1,
                      'studio_generations_failed_last_hour{error_code="upstream_rejected"}': 2}
    assert values['studio_generation_store_seconds{quantile="0.5"}'] == 3
    assert values['studio_generation_store_seconds{quantile="0.95"}'] == 10
    assert values["studio_generation_store_seconds_count"] == 5
    assert values["studio_generation_store_seconds_sum"] == 20
    assert values['studio_generation_upstream_seconds{quantile="0.5"}'] == 40
    assert values["studio_tracking_due_generations"] == 2
    assert 30 <= values["studio_tracking_backlog_seconds"] < 40
    assert values['studio_provider_paused{cause="manual"}'] == 0
    assert values['studio_provider_paused{cause="account_locked"}'] == 0
    if not settings.REDIS_URL:
        assert values["studio_task_queue_length"] == 1
    refused = {"fal-ai/ltx-2.3/text-to-video", "fal-ai/ltx-2/image-to-video"}
    assert {e.id: values[f'studio_endpoint_available{{endpoint="{e.id}"}}'] for e in ENDPOINTS} == {
        e.id: 0 if e.id in refused else 1 for e in ENDPOINTS}
    assert {e.id: values[f'studio_endpoint_gone{{endpoint="{e.id}"}}'] for e in ENDPOINTS} == {
        e.id: 1 if e.id == "fal-ai/ltx-2/image-to-video" else 0 for e in ENDPOINTS}
    short = {name: value for name, value in values.items() if name.startswith("studio_short_name_available")}
    assert short == {
        'studio_short_name_available{name="t2v",endpoint="fal-ai/ltx-2.3/text-to-video"}': 0,
        'studio_short_name_available{name="t2v-fast",endpoint="fal-ai/ltx-2.3/text-to-video/fast"}': 1,
        'studio_short_name_available{name="i2v",endpoint="fal-ai/ltx-2.3/image-to-video"}': 1,
        'studio_short_name_available{name="i2v-fast",endpoint="fal-ai/ltx-2.3/image-to-video/fast"}': 1}
    drift = {name: value for name, value in values.items() if name.startswith("studio_schema_mismatches")}
    assert drift == {
        'studio_schema_mismatches{endpoint="fal-ai/ltx-2.3/image-to-video",field="end_image_url"}': 3,
        'studio_schema_mismatches{endpoint="fal-ai/ltx-2.3/image-to-video",field="fps"}': 1}


@pytest.mark.django_db
def test_metrics_on_an_empty_studio(client, settings) -> None:
    settings.STUDIO_METRICS_TOKEN = METRICS_TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").content.decode()
    values = parse_metrics(text)
    assert values["studio_tracking_backlog_seconds"] == 0
    assert values["studio_generation_store_seconds_count"] == 0
    assert 'studio_generation_store_seconds{quantile="0.95"} NaN' in text
    assert "# TYPE studio_generations gauge" in text
    assert all(values[f'studio_endpoint_available{{endpoint="{e.id}"}}'] == 1 for e in ENDPOINTS)
    assert "# TYPE studio_schema_mismatches gauge" in text and "studio_schema_mismatches{" not in text
