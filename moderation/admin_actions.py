"""Admin actions that need a reason: an intermediate confirmation page (the pattern of Django's own
"delete selected"), then one service call per selected object. Service errors become messages."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from generations.ltx import InputError
from generations.services.cancel import NotCancelable
from generations.services.create import NotRetryable, OwnerSuspended
from generations.services.delete import StillActive
from generations.services.visibility import NotRefundable
from moderation.services import SuspendRefused
from storage.quotas import QuotaExceeded

# What a service may refuse with; each becomes an error message naming the object.
REFUSALS = (NotCancelable, NotRetryable, StillActive, NotRefundable, PermissionDenied, QuotaExceeded, InputError,
            OwnerSuspended, SuspendRefused, ValidationError)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000,
                             help_text="Recorded in the audit log with your name.")


def reason_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, verb: str,
                  apply: Callable[[Any, str], Any], warning: str = "") -> TemplateResponse | None:
    """Ask for a reason, then call `apply(obj, reason)` for each selected object.

    `apply` returns something falsy when the object needed no change (counted as skipped).
    """
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        reason = form.cleaned_data["reason"].strip()
        done, skipped, failures = 0, 0, []
        for obj in queryset:
            try:
                changed = apply(obj, reason)
            except REFUSALS as exc:
                failures.append(f"{obj}: {exc}")
                continue
            done, skipped = (done + 1, skipped) if changed else (done, skipped + 1)
        if done:
            modeladmin.message_user(request, f"{verb.capitalize()}: {done} done.", messages.SUCCESS)
        if skipped:
            modeladmin.message_user(request, f"{verb.capitalize()}: {skipped} needed no change.", messages.INFO)
        for failure in failures:
            modeladmin.message_user(request, f"Not {verb}: {failure}", messages.ERROR)
        return None
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{verb.capitalize()}: give a reason",
        "verb": verb, "warning": warning, "form": form, "objects": list(queryset), "opts": opts,
        "action": request.POST.get("action", ""), "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "select_across": request.POST.get("select_across", "0"),
    }
    return TemplateResponse(request, "admin/moderation/reason_form.html", context)


def permitted_actions(modeladmin: admin.ModelAdmin, request: HttpRequest) -> Iterable[tuple[str, str]]:
    """(name, description) of the actions this user may run, for buttons on a change page."""
    return [(name, action[2]) for name, action in modeladmin.get_actions(request).items() if action is not None]
