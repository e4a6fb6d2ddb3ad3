"""`GET /metrics`: a few gauges in Prometheus' text format (docs/production.md).

Readable by staff sessions, or with `Authorization: Bearer <STUDIO_METRICS_TOKEN>`; 403 otherwise.
Eight cheap queries, nothing cached:

- `studio_generations{status}`: every generation by status (one grouped COUNT).
- `studio_generations_failed_last_hour{error_code}`: failures that ended in the last hour.
- `studio_generation_store_seconds`, `studio_generation_upstream_seconds` (summaries over the jobs
  that succeeded in the last 15 minutes): `finished_at - completed_at`, the studio's copy/probe/poster
  time after it saw fal's COMPLETED; and `completed_at - submitted_at`, fal's queue and run time
  plus the studio's tracking lag (when fal itself finished is not stored, so the lag alone is not).
- `studio_tracking_due_generations`, `studio_tracking_backlog_seconds`: active jobs whose
  `next_poll_at` has passed, and how long the oldest has waited — a tracker that keeps up stays
  near 0; a growing value means tracking is stuck or overloaded.
- `studio_task_queue_length`: django-q2 tasks waiting for a worker.
- `studio_provider_paused{cause}`: 1 for the cause of a pause of submissions to fal (`manual`, or
  the automatic ones: `account_locked`, `balance_exhausted`, `bad_key`), 0 for the others — alert on
  `max(studio_provider_paused) == 1`.
- `studio_endpoint_available{endpoint}`: 1 while new jobs may use a catalog endpoint, 0 while it is
  disabled, retired or answered by fal as gone; `studio_endpoint_gone{endpoint}`: 1 while fal answers
  it as gone (until an operator clears it); `studio_short_name_available{name,endpoint}`: the same as
  `studio_endpoint_available` for the endpoint each short name means under STUDIO_LTX_VERSION —
  alert on `min(studio_short_name_available) == 0` (every user's "t2v" is refused). One query.
- `studio_schema_mismatches{endpoint,field}`: how often fal refused a field the catalog holds valid
  (until an operator dismisses the record).
"""
from __future__ import annotations

import hmac
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fal_protocol import catalog
from generations.models import Generation, ProviderSwitch, SchemaMismatch
from generations.selectors import endpoint_states, provider_switch

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAILED_WINDOW = timedelta(hours=1)
DURATION_WINDOW = timedelta(minutes=15)
DURATION_SAMPLE_LIMIT = 10_000  # newest first; bounds the rows read even at a very high rate
QUANTILES = (0.5, 0.95)
# The statuses of the partial index `generation_due`, so the backlog query can use it.
TRACKED = ("pending", "submitting", "queued", "running", "storing")


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _may_read(request):
        return HttpResponse("Metrics need a staff session or `Authorization: Bearer <STUDIO_METRICS_TOKEN>`.\n",
                            status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)


def _may_read(request: HttpRequest) -> bool:
    """A bearer header is judged alone (no session lookup); otherwise an active staff session."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = settings.STUDIO_METRICS_TOKEN
        return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                                   expected.encode())
    user = request.user
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def render_metrics() -> str:
    now = timezone.now()
    lines: list[str] = []

    by_status = dict(Generation.objects.order_by().values_list("status").annotate(n=Count("pk")))
    _family(lines, "studio_generations", "gauge", "Generations by status.",
            ((f'status="{status}"', by_status.get(status, 0)) for status in Generation.Status.values))

    failed = (Generation.objects.order_by()
              .filter(status=Generation.Status.FAILED, finished_at__gte=now - FAILED_WINDOW)
              .values_list("error_code").annotate(n=Count("pk")))
    _family(lines, "studio_generations_failed_last_hour", "gauge",
            "Generations that failed in the last hour, by error code.",
            ((f'error_code="{_label(code or "unknown")}"', n) for code, n in sorted(failed)))

    recent = list(Generation.objects.order_by("-finished_at")
                  .filter(status=Generation.Status.SUCCEEDED, finished_at__gte=now - DURATION_WINDOW,
                          completed_at__isnull=False)
                  .values_list("submitted_at", "completed_at", "finished_at")[:DURATION_SAMPLE_LIMIT])
    # Both set, as filtered: finished_at by its range, completed_at by isnull=False.
    store = [(finished - completed).total_seconds() for _, completed, finished in recent if finished and completed]
    upstream = [(completed - submitted).total_seconds() for submitted, completed, _ in recent
                if submitted and completed]
    _summary(lines, "studio_generation_store_seconds",
             "Seconds from seeing fal's COMPLETED to the job succeeding (fetch, store, probe, poster); "
             "jobs that succeeded in the last 15 minutes.", store)
    _summary(lines, "studio_generation_upstream_seconds",
             "Seconds from submit to the studio recording fal's COMPLETED (fal's queue and run time plus "
             "tracking lag); jobs that succeeded in the last 15 minutes.", upstream)

    due = (Generation.objects.order_by().filter(status__in=TRACKED, next_poll_at__lt=now)
           .aggregate(n=Count("pk"), oldest=Min("next_poll_at")))
    backlog = (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0
    _family(lines, "studio_tracking_due_generations", "gauge",
            "Active generations whose next_poll_at has passed (waiting for the tracker).", [("", due["n"])])
    _family(lines, "studio_tracking_backlog_seconds", "gauge",
            "How long the most overdue active generation has waited past its next_poll_at.", [("", backlog)])

    switch = provider_switch()
    current = (switch.cause or "manual") if switch.paused else None
    _family(lines, "studio_provider_paused", "gauge",
            "1 while submissions to fal are paused, labelled with why (manual or fal refusing the account).",
            ((f'cause="{cause}"', int(cause == current)) for cause in ("manual", *ProviderSwitch.Cause.values)))

    _catalog_families(lines)

    queued = task_queue_length()
    _family(lines, "studio_task_queue_length", "gauge",
            "django-q2 tasks waiting for a worker (-1: broker unreachable).",
            [("", queued)])
    return "\n".join(lines) + "\n"


def _catalog_families(lines: list[str]) -> None:
    """The catalog's endpoints (one query for every override) and the schema drift (one query)."""
    states = endpoint_states()
    _family(lines, "studio_endpoint_available", "gauge",
            "1 while new jobs may use the endpoint; 0 while disabled, retired or answered by fal as gone.",
            ((f'endpoint="{_label(state.endpoint.id)}"', int(state.usable)) for state in states))
    _family(lines, "studio_endpoint_gone", "gauge",
            "1 while fal answers the endpoint as gone (404/410 to a submit), until an operator clears it.",
            ((f'endpoint="{_label(state.endpoint.id)}"', int(state.gone)) for state in states))
    meant = {name: state for state in states for name in state.short_names}
    _family(lines, "studio_short_name_available", "gauge",
            "1 while the endpoint a short name means under STUDIO_LTX_VERSION takes new jobs.",
            ((f'name="{name}",endpoint="{_label(meant[name].endpoint.id)}"', int(meant[name].usable))
             for name in catalog.SHORT_NAMES if name in meant))
    mismatches = (SchemaMismatch.objects.order_by("endpoint_id", "field")
                  .values_list("endpoint_id", "field", "count"))
    _family(lines, "studio_schema_mismatches", "gauge",
            "Times fal refused a field the catalog holds valid (schema drift), until dismissed.",
            ((f'endpoint="{_label(endpoint)}",field="{_label(field)}"', count)
             for endpoint, field, count in mismatches))


def task_queue_length() -> int:
    """Tasks in django-q2's queue not yet taken by a worker; -1 when the broker cannot be asked."""
    try:
        if settings.REDIS_URL:
            from django_q.brokers import get_broker

            from studio.health import redis_client

            return int(redis_client().llen(get_broker().list_key))
        from django_q.conf import Conf
        from django_q.models import OrmQ

        # What the ORM broker's queue_size() counts, without its close_old_connections() side effect.
        return OrmQ.objects.using(Conf.ORM or "default").filter(key=Conf.CLUSTER_NAME,
                                                                 lock__lte=timezone.now()).count()
    except Exception:
        return -1


def _family(lines: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")


def _summary(lines: list[str], name: str, help_text: str, values: Sequence[float]) -> None:
    ordered = sorted(values)
    samples = [(f'quantile="{q}"', _quantile(ordered, q)) for q in QUANTILES]
    _family(lines, name, "summary", help_text, samples)
    lines.append(f"{name}_sum {_number(sum(ordered))}")
    lines.append(f"{name}_count {len(ordered)}")


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile; NaN for no samples (Prometheus' convention for an empty summary)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return repr(round(value, 3))
    return str(value)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
