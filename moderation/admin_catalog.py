"""The catalog's admin (registered with the admin site by moderation/admin.py): the operator's
overrides of each endpoint and the schema drift fal reported.

- Endpoint overrides: the list is the catalog itself, one row per endpoint of
  `fal_protocol.catalog.ENDPOINTS` whether it has an override row yet or not, with its state (usable,
  disabled, retired, unavailable at fal), replacement and prices; each row links to its override
  (created on first save). Saving calls `endpoint_override_set` and, when ticked, "fal serves it
  again" calls `endpoint_mark_available` (generations/services/catalog.py; audited there). Changing
  needs `generations.change_endpointoverride`: superusers only (no role is granted it); nobody
  deletes overrides here (an override equal to the catalog changes nothing).
- Schema mismatches: read-only, with a "dismiss" action (`schema_mismatch_dismiss`, for holders of
  `generations.delete_schemamismatch`: superusers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from core.admin_readonly import ReadOnlyAdmin
from core.requests import AuthenticatedHttpRequest, signed_in_user
from fal_protocol import catalog
from generations import ltx
from generations.models import EndpointOverride, SchemaMismatch
from generations.selectors import endpoint_overrides_stale, endpoint_states, short_names_meaning
from generations.services.catalog import (
    DISMISS_PERMISSION,
    OVERRIDE_PERMISSION,
    endpoint_mark_available,
    endpoint_override_problems,
    endpoint_override_set,
    schema_mismatch_dismiss,
)
from moderation.admin_actions import reason_action

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec


def _endpoint_choice(endpoint: catalog.Endpoint) -> tuple[str, str]:
    return endpoint.id, f"{endpoint.id} ({endpoint.label})"


class EndpointOverrideForm(forms.ModelForm):
    """The override's fields, checked by the service's own rules (`endpoint_override_problems`), plus
    the reason recorded in the audit log and, for an endpoint fal answered as gone, "fal serves it again"."""

    replacement = forms.CharField(required=False, widget=forms.Select(), max_length=200,
                                  help_text="The endpoint users are told to use instead (when disabled, retired or "
                                            "unavailable).")
    fal_serves_it_again = forms.BooleanField(
        required=False, label="fal serves it again",
        help_text="Clear the studio's \"unavailable\" mark: new jobs may use it again (unless disabled or retired).")
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Recorded in the audit log with your name.")

    class Meta:
        model = EndpointOverride
        fields = ["endpoint_id", "enabled", "retired", "replacement", "price_per_second"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        own = self.instance.endpoint_id or self.initial.get("endpoint_id", "")
        self.fields["replacement"].widget.choices = [("", "— none —")] + [
            _endpoint_choice(e) for e in catalog.ENDPOINTS if e.id != own]
        if "endpoint_id" in self.fields:  # the add form: the catalog's endpoints that have no override yet
            taken = set(EndpointOverride.objects.values_list("endpoint_id", flat=True))
            self.fields["endpoint_id"] = forms.ChoiceField(
                label="Endpoint", choices=[_endpoint_choice(e) for e in catalog.ENDPOINTS if e.id not in taken],
                help_text="An endpoint of the catalog (those with an override already are edited from the list).")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors.get("price_per_second"):
            return data
        if data.get("price_per_second") is None:
            data["price_per_second"] = {}  # an empty box: the catalog's prices
        endpoint_id = data.get("endpoint_id", self.instance.endpoint_id)
        if not endpoint_id:
            return data  # the add form's own error names the endpoint
        problems = endpoint_override_problems(endpoint_id, replacement=(data.get("replacement") or "").strip(),
                                              price_per_second=data["price_per_second"])
        for field, message in problems.items():
            self.add_error(field if field in self.fields else None, message)
        return data


@admin.register(EndpointOverride)
class EndpointOverrideAdmin(admin.ModelAdmin):
    """One row per catalog endpoint (see the module docstring); edits go through the catalog services."""

    form = EndpointOverrideForm
    change_list_template = "admin/generations/endpointoverride/catalog.html"
    readonly_fields = ["endpoint_id", "catalog_facts", "unavailable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OVERRIDE_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: EndpointOverride | None = None) -> bool:
        return request.user.has_perm(OVERRIDE_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: EndpointOverride | None = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: EndpointOverride | None = None) -> _FieldsetSpec:
        override: Any = ("Override", {"fields": ["enabled", "retired", "replacement", "price_per_second"]})
        audit: Any = ("Audit", {"fields": ["reason"]})
        if obj is None:
            return [("Endpoint", {"fields": ["endpoint_id"]}), override, audit]
        fieldsets: list[Any] = [("Endpoint", {"fields": ["endpoint_id", "catalog_facts", "unavailable"]}), override]
        if not self.has_change_permission(request, obj):
            return fieldsets  # read-only: Django shows every field as text
        if obj.unavailable_since is not None:
            fieldsets.append(("fal", {"fields": ["fal_serves_it_again"]}))
        return [*fieldsets, audit]

    def get_readonly_fields(self, request: HttpRequest, obj: EndpointOverride | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: EndpointOverride, form: forms.ModelForm, change: bool) -> None:
        data, user = form.cleaned_data, signed_in_user(request)
        reason = data["reason"].strip()
        saved = endpoint_override_set(obj.endpoint_id, enabled=data["enabled"], retired=data["retired"],
                                      replacement=data.get("replacement") or "",
                                      price_per_second=data["price_per_second"], by=user, reason=reason)
        if data.get("fal_serves_it_again"):
            endpoint_mark_available(obj.endpoint_id, by=user, reason=reason)
        saved.refresh_from_db()
        obj.pk, obj.updated_at = saved.pk, saved.updated_at
        obj.unavailable_since, obj.unavailable_detail = saved.unavailable_since, saved.unavailable_detail

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The catalog: every endpoint with its state, whether or not it has an override row."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request), **(extra_context or {}),
            "title": "Model endpoints (the catalog and its overrides)", "opts": self.model._meta,
            "states": endpoint_states(), "stale": endpoint_overrides_stale(), "version": ltx.version(),
            "resolutions": catalog.RESOLUTIONS, "can_change": self.has_change_permission(request),
            "can_see_mismatches": request.user.has_perm("generations.view_schemamismatch"),
        }
        return TemplateResponse(request, self.change_list_template or "", context)

    @admin.display(description="catalog")
    def catalog_facts(self, obj: EndpointOverride) -> str:
        endpoint = catalog.BY_ID.get(obj.endpoint_id)
        if endpoint is None:
            return "not an endpoint of the catalog: this override changes nothing"
        names = short_names_meaning(endpoint)
        meant = (f"what {', '.join(names)} mean under STUDIO_LTX_VERSION={ltx.version()}" if names
                 else f"not what a short name means under STUDIO_LTX_VERSION={ltx.version()}")
        prices = format_html_join(", ", "{} ${}/s", ((r, p) for r, p in endpoint.price_per_second.items()))
        return format_html("{} · {}<br>catalog prices: {}{}", endpoint.label, meant, prices,
                           "" if endpoint.price_confirmed else " (not confirmed by fal's pages)")

    @admin.display(description="unavailable at fal")
    def unavailable(self, obj: EndpointOverride) -> str:
        if obj.unavailable_since is None:
            return "no: fal has not answered it as gone"
        return format_html("<span id='unavailable-since'>since {}</span>: {}",
                           obj.unavailable_since.strftime("%Y-%m-%d %H:%M:%S"), obj.unavailable_detail)


@admin.register(SchemaMismatch)
class SchemaMismatchAdmin(ReadOnlyAdmin):
    """fal's 422s on fields the catalog holds valid, one row per endpoint and field; dismissing deletes
    the row (a new refusal records it afresh)."""

    list_display = ["endpoint_id", "field", "message", "value", "count", "first_seen", "last_seen"]
    list_filter = ["endpoint_id"]
    fields = readonly_fields = ("endpoint_id", "field", "message", "value", "count", "first_seen", "last_seen")
    actions = ["dismiss"]

    def has_dismiss_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DISMISS_PERMISSION)

    @admin.action(description="Dismiss (delete the record)", permissions=["dismiss"])
    def dismiss(self, request: AuthenticatedHttpRequest, queryset: QuerySet[SchemaMismatch]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="dismiss",
                             apply=lambda mismatch, reason: schema_mismatch_dismiss(mismatch, by=request.user,
                                                                                    reason=reason))
