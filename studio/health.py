"""Liveness and health endpoints for load balancers and monitoring (docs/production.md).

- `GET /livez`: the process answers; no I/O at all.
- `GET /healthz`: JSON `{"status": "ok" | "degraded", "checks": {name: {"ok", "ms", "detail"}}}`.
  `database`, `broker` and `storage` decide the answer: 200 when all three are ok, 503 otherwise.
  `provider` (fal's queue host answers HTTP at all, and the studio has not paused itself because fal
  refuses its account) and `workers` (a django-q2 cluster is alive) are reported but only warn: the
  studio still takes jobs without them, they wait in the queue. So is `catalog`: every endpoint a
  short name (t2v, t2v-fast, i2v, i2v-fast) means under STUDIO_LTX_VERSION takes new jobs; a warning
  names each one that is unavailable at fal, retired or disabled, with why.

Nothing is cached, every network check has a short timeout, and the network checks run side by
side under one deadline, so an outage shows at once and the endpoint answers within a few seconds.
No credential is ever sent to fal or written into the body.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from storage.backend import is_s3

if TYPE_CHECKING:
    from generations.selectors import EndpointState

CHECK_TIMEOUT_SECONDS = 2.0
# Network checks run in threads; whatever has not answered by then is reported as timed out.
DEADLINE_SECONDS = CHECK_TIMEOUT_SECONDS + 1.0
# django-q2's scheduler runs every 30 s inside each cluster and moves every schedule's next_run
# forward (the sweeper runs once a minute), so a schedule this overdue means no cluster runs.
SCHEDULE_OVERDUE_SECONDS = 120
REQUIRED = ("database", "broker", "storage")
_DETAIL_MAX = 600  # room for the catalog check to name all four short names' endpoints


@dataclass(frozen=True)
class Check:
    ok: bool
    ms: float
    detail: str


class CheckFailed(Exception):
    """A check ran and found a problem (its message is the check's detail)."""


@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests. No database, no network."""
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Run every check; 200 when database, broker and storage are ok, else 503. Never raises."""
    try:
        checks = run_checks()
        healthy = all(checks[name].ok for name in REQUIRED)
    except Exception as exc:  # a bug here must not turn the health endpoint into a 500
        checks, healthy = {"health": Check(False, 0.0, _describe(exc))}, False
    body = {"status": "ok" if healthy else "degraded",
            "checks": {name: asdict(check) for name, check in checks.items()}}
    return JsonResponse(body, status=200 if healthy else 503)


def run_checks() -> dict[str, Check]:
    """All checks: network ones in threads under one deadline, database ones in this thread."""
    network: dict[str, Callable[[], str]] = {"storage": check_storage, "provider": check_provider}
    if settings.REDIS_URL:
        network["broker"] = check_redis_broker
    pool = ThreadPoolExecutor(max_workers=len(network), thread_name_prefix="healthz")
    started = {name: time.monotonic() for name in network}
    futures = {name: pool.submit(_timed_in_thread, func) for name, func in network.items()}
    try:
        results: dict[str, Check] = {"database": _timed(check_database)}
        database_ok = results["database"].ok
        if not settings.REDIS_URL:
            results["broker"] = _timed(check_orm_broker) if database_ok else _skipped("the database is unavailable")
        results["workers"] = _timed(check_workers) if database_ok else _skipped("the database is unavailable")
        results["catalog"] = _timed(check_catalog) if database_ok else _skipped("the database is unavailable")
        wait_futures(futures.values(), timeout=DEADLINE_SECONDS)
        for name, future in futures.items():
            if future.done():
                results[name] = future.result()
            else:
                elapsed = (time.monotonic() - started[name]) * 1000
                results[name] = Check(False, round(elapsed, 1), f"no answer within {DEADLINE_SECONDS:g} s")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung check ends on its own timeout
    order = ("database", "broker", "storage", "provider", "workers", "catalog")
    return {name: results[name] for name in order}


# --- the checks: each returns a short detail, or raises (CheckFailed or anything else) --------

def check_database() -> str:
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_orm_broker() -> str:
    """The ORM broker's queue table answers (django-q2 keeps its queue in the main database)."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    OrmQ.objects.using(Conf.ORM or "default").exists()
    return f"orm ({Conf.ORM or 'default'})"


def check_redis_broker() -> str:
    client = redis_client()
    if not client.ping():
        raise CheckFailed("redis did not answer PING")
    return f"redis {_safe_url(settings.REDIS_URL)}"


def check_storage() -> str:
    """Cheap and read-only: the bucket answers (S3) or the media folder is writable (filesystem)."""
    storage = default_storage
    if is_s3(storage):
        return _check_s3_bucket(storage)
    if isinstance(storage, FileSystemStorage):
        return _check_folder(Path(storage.location))
    # Any other backend: one existence lookup of a key that need not exist.
    storage.exists("healthz/probe")
    return storage.__class__.__name__


def check_provider() -> str:
    """fal's queue host answers HTTP (any status, even 401/404; sends no key), and submissions are
    not paused because fal refuses the studio's account."""
    from generations.selectors import provider_switch

    switch = provider_switch()
    if switch.paused and switch.cause:
        probe = f"; last probe {switch.probed_at:%H:%M:%S}: {switch.probe_result}" if switch.probed_at else ""
        raise CheckFailed(f"submissions paused automatically since {switch.changed_at:%Y-%m-%d %H:%M:%S}: "
                          f"{switch.get_cause_display()}{probe}")
    url = settings.FAL_QUEUE_URL
    where = _safe_url(url) + (" (the local fal simulator)" if settings.FAL_USES_SIMULATOR else "")
    timeout = httpx.Timeout(CHECK_TIMEOUT_SECONDS, connect=CHECK_TIMEOUT_SECONDS * 0.75)
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise CheckFailed(f"{where} unreachable: {type(exc).__name__}") from None
    return f"{where} answered HTTP {response.status_code}"


def check_workers() -> str:
    """A django-q2 cluster is alive: cluster stats (Redis or a shared cache), else schedules that advance."""
    from django_q.models import Schedule

    clusters = clusters_seen()
    schedules = (Schedule.objects.exclude(repeats=0).filter(cluster__isnull=True)
                 .order_by("next_run").values_list("next_run", flat=True)[:1])
    oldest = next(iter(schedules), None)
    if oldest is None:
        overdue_note = "no schedules to judge by"
        schedules_move = False
    else:
        overdue = (timezone.now() - oldest).total_seconds()
        schedules_move = overdue < SCHEDULE_OVERDUE_SECONDS
        overdue_note = ("schedules run on time" if schedules_move
                        else f"a schedule is {timedelta(seconds=int(overdue))} overdue")
    detail = f"{clusters} cluster(s) seen; {overdue_note}"
    if clusters == 0 and not schedules_move:
        raise CheckFailed(f"no worker cluster seems to run ({detail}): start `manage.py qcluster`")
    return detail


def check_catalog() -> str:
    """Every endpoint a short name means under STUDIO_LTX_VERSION takes new jobs (one query). Fails
    naming each that does not, with a one-line reason; endpoints no short name means are only noted."""
    from generations.ltx import version
    from generations.selectors import endpoint_states

    states = endpoint_states()
    refused = [state for state in states if state.short_names and not state.usable]
    others = [_refusal_line(state) for state in states if not state.short_names and not state.usable]
    also = f"; also refused: {'; '.join(others)}" if others else ""
    if refused:
        lines = [f"{', '.join(state.short_names)}: {_refusal_line(state)}" for state in refused]
        raise CheckFailed(f"short names refused under STUDIO_LTX_VERSION={version()}: {'; '.join(lines)}{also}")
    return f"the short names mean LTX-{version()}'s endpoints, all usable{also}"


def _refusal_line(state: EndpointState) -> str:
    """One line on why a refused endpoint is refused (it has an override: refusals come from one)."""
    override = state.override
    assert override is not None
    if state.gone:
        why = (f"unavailable at fal since {override.unavailable_since:%Y-%m-%d %H:%M:%S} "
               f"({' '.join(override.unavailable_detail.split())[:80]})")
    else:
        why = "retired" if override.retired else "disabled"
    replacement = f", replacement {override.replacement}" if override.replacement else ", no replacement set"
    return f"{state.endpoint.id} {why}{replacement}"


def clusters_seen() -> int:
    """Clusters that published stats within the last seconds. Without Redis the stats live in
    Django's cache, so other processes' clusters are seen only with a shared cache backend."""
    from django_q.conf import Conf

    if settings.REDIS_URL:
        return len(redis_client().keys(f"{Conf.Q_STAT}:*"))
    from django_q.status import Stat

    return len(Stat.get_all())


# --- helpers --------------------------------------------------------------------------------

_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}
_s3_lock = threading.Lock()
_s3_clients: dict[tuple, Any] = {}


def redis_client() -> Any:
    """A redis-py client with short timeouts (django-q2's own connection has none)."""
    try:
        import redis
    except ImportError:
        raise CheckFailed("REDIS_URL is set but redis-py is not installed (pip install redis)") from None
    url = settings.REDIS_URL
    with _redis_lock:
        if url not in _redis_clients:
            _redis_clients[url] = redis.Redis.from_url(
                url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS * 0.5, socket_timeout=CHECK_TIMEOUT_SECONDS * 0.5)
        return _redis_clients[url]


def _check_s3_bucket(storage: Any) -> str:
    """HeadBucket with django-storages' credentials and endpoint, but short timeouts and no retries."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    key = (storage.endpoint_url, storage.bucket_name, storage.access_key, storage.region_name)
    with _s3_lock:
        client = _s3_clients.get(key)
        if client is None:
            config = storage.client_config.merge(Config(
                connect_timeout=CHECK_TIMEOUT_SECONDS * 0.5, read_timeout=CHECK_TIMEOUT_SECONDS * 0.5,
                retries={"max_attempts": 1, "mode": "standard"}))
            client = storage._create_session().client(  # django-storages' own session (keys or profile)
                "s3", region_name=storage.region_name, use_ssl=storage.use_ssl,
                endpoint_url=storage.endpoint_url, config=config, verify=storage.verify)
            _s3_clients[key] = client
    try:
        client.head_bucket(Bucket=storage.bucket_name)
    except ClientError as exc:
        code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = {404: "does not exist", 403: "access denied (HeadBucket needs s3:ListBucket)"}.get(code, str(code))
        raise CheckFailed(f"bucket {storage.bucket_name!r}: {reason}") from None
    return f"s3 bucket {storage.bucket_name!r}"


def _check_folder(location: Path) -> str:
    folder = location
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # created on the first save; its nearest existing parent must be writable
    if not folder.is_dir():
        raise CheckFailed(f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CheckFailed(f"{folder} is not writable")
    free = shutil.disk_usage(folder).free
    return f"filesystem, {free / 1024**3:.1f} GiB free"


def _timed(func: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail, ok = func(), True
    except Exception as exc:
        detail, ok = _describe(exc), False
    return Check(ok, round((time.monotonic() - started) * 1000, 1), detail[:_DETAIL_MAX])


def _timed_in_thread(func: Callable[[], str]) -> Check:
    try:
        return _timed(func)
    finally:
        connections.close_all()  # this thread's connections only, should a storage backend use the DB


def _skipped(reason: str) -> Check:
    return Check(False, 0.0, f"not checked: {reason}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    message = _scrub(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _scrub(text: str) -> str:
    """Blank out any configured secret that an error message might quote."""
    secrets = (settings.FAL_KEY, settings.SECRET_KEY, settings.AWS_SECRET_ACCESS_KEY,
               settings.DATABASES["default"].get("PASSWORD"), settings.STUDIO_METRICS_TOKEN)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _safe_url(url: str) -> str:
    """The URL without user, password, path or query (nothing secret goes into the body)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, "", "", ""))
    except ValueError:
        return "(unparseable URL)"
