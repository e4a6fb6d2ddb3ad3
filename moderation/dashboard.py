"""The operations dashboard (an admin page): jobs by status, spend, stored bytes, recent failures,
the review queue, the "pause provider" switch, and warnings about the model catalog: endpoints fal
answered as gone, endpoints the short names mean that are retired or disabled (every user's "t2v"
is refused then), and schema drift (fields fal refused although the catalog holds them valid)."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django_q.models import Failure

from core.requests import AuthenticatedHttpRequest
from generations import ltx
from generations.models import Generation
from generations.selectors import endpoint_states, provider_switch, schema_mismatches
from generations.services.provider_switch import PAUSE_PERMISSION
from moderation.models import VideoReport
from moderation.services import provider_pause, provider_resume
from storage.models import StoredObject, UsageEntry
from storage.quotas import month_of

SCHEMA_MISMATCHES_SHOWN = 20


class SwitchForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 60}))


def dashboard_figures(now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as plain values (also handy in tests)."""
    now = now or timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour_ago = now - timedelta(hours=1)
    by_status = dict(Generation.objects.values_list("status").annotate(n=Count("id")).order_by())
    failed_recently = Generation.objects.filter(status=Generation.Status.FAILED, finished_at__gte=hour_ago)
    # Worth a warning: an endpoint fal answered as gone, and any refused endpoint a short name means.
    endpoint_warnings = [state for state in endpoint_states() if state.gone or (state.short_names and not state.usable)]
    return {
        "jobs_by_status": [(status.label, status.value, by_status.get(status.value, 0))
                           for status in Generation.Status],
        "spend_today": UsageEntry.objects.filter(created_at__gte=today).aggregate(v=Sum("usd"))["v"] or Decimal(0),
        "spend_month": UsageEntry.objects.filter(month=month_of(now)).aggregate(v=Sum("usd"))["v"] or Decimal(0),
        "stored_bytes": StoredObject.objects.aggregate(v=Sum("size"))["v"] or 0,
        "ledger_bytes": UsageEntry.objects.aggregate(v=Sum("bytes"))["v"] or 0,
        "failed_last_hour": failed_recently.count(),
        "recent_failures": list(failed_recently.select_related("owner").order_by("-finished_at")[:10]),
        "task_failures_last_hour": Failure.objects.filter(stopped__gte=hour_ago).count(),
        "flagged": Generation.objects.filter(flagged_at__isnull=False).count(),
        "hidden": Generation.objects.filter(is_hidden=True).count(),
        "reports_today": VideoReport.objects.filter(created_at__gte=today).count(),
        "ltx_version": ltx.version(),
        "endpoint_warnings": endpoint_warnings,
        "schema_mismatches": schema_mismatches(limit=SCHEMA_MISMATCHES_SHOWN),
    }


def dashboard_view(request: AuthenticatedHttpRequest) -> HttpResponse:
    """GET: the figures. POST (pause_provider permission): pause or resume with a reason."""
    can_switch = request.user.has_perm(PAUSE_PERMISSION)
    switch = provider_switch()
    form = SwitchForm(request.POST or None)
    if request.method == "POST":
        if not can_switch:
            raise PermissionDenied
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            if switch.paused:
                released = provider_resume(actor=request.user, reason=reason)
                messages.success(request, f"Provider resumed: {len(released)} held job(s) submitted in fair order.")
            else:
                held = provider_pause(actor=request.user, reason=reason)
                messages.success(request, f"Provider paused: new jobs are held ({held} pending job(s) held now).")
            return redirect("admin-dashboard")
    figures = dashboard_figures()
    can_see_spend = request.user.has_perm(UsageEntry.VIEW_PERMISSION)
    if not can_see_spend:
        del figures["spend_today"], figures["spend_month"]
    context = {
        **admin.site.each_context(request), "title": "Operations dashboard", "switch": switch,
        "probe_seconds": settings.STUDIO_PROVIDER_PROBE_SECONDS,
        "can_switch": can_switch, "form": form, **figures, "can_see_spend": can_see_spend,
        "can_see_tasks": request.user.has_perm("django_q.view_failure"),
        "can_see_overrides": request.user.has_perm("generations.view_endpointoverride")
                             or request.user.has_perm("generations.change_endpointoverride"),
        "can_see_mismatches": request.user.has_perm("generations.view_schemamismatch"),
    }
    return TemplateResponse(request, "admin/moderation/dashboard.html", context)
