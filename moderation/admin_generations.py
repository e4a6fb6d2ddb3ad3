"""The generations admin: a read-only view of every job with moderation and operations actions
(registered with the admin site by moderation/admin.py: the admin is where the staff work).

Nothing is edited in forms here; every change is an action that calls a staff action
(moderation/generation_actions.py), asks for a reason and is written to the audit log.
"""
from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.db.models import Count, Exists, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from core.admin_readonly import NoWritesMixin
from core.requests import AuthenticatedHttpRequest
from fal_protocol import catalog
from generations.models import Generation, GenerationAttempt, GenerationEvent
from moderation.admin_actions import permitted_actions, reason_action
from moderation.generation_actions import (
    generation_admin_cancel,
    generation_admin_delete,
    generation_admin_retry,
    generation_flag,
    generation_hide,
    generation_refund,
    generation_review,
    generation_unhide,
)
from moderation.models import AuditEntry, VideoReport
from storage.models import UsageEntry

VIEW = "generations.view_generation"


if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec


class ModerationFilter(admin.SimpleListFilter):
    title = "moderation"
    parameter_name = "moderation"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("review", "Needs review (flagged)"), ("hidden", "Hidden"), ("reported", "Reported"),
                ("refunded", "Refunded"), ("clean", "Not hidden or flagged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        return {
            "review": lambda: queryset.filter(flagged_at__isnull=False),
            "hidden": lambda: queryset.filter(is_hidden=True),
            "reported": lambda: queryset.filter(Exists(VideoReport.objects.filter(generation=OuterRef("pk")))),
            "refunded": lambda: queryset.filter(refunded_at__isnull=False),
            "clean": lambda: queryset.filter(is_hidden=False, flagged_at__isnull=True),
        }.get(self.value() or "", lambda: queryset)()


class ModelFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(endpoint.id, endpoint.label) for endpoint in catalog.ENDPOINTS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Generation]) -> QuerySet[Generation]:
        return queryset.filter(model_id=self.value()) if self.value() else queryset


class ReadOnlyInline(NoWritesMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.has_perm(VIEW)


class GenerationEventInline(ReadOnlyInline):
    model = GenerationEvent
    verbose_name_plural = "status history"
    fields = readonly_fields = ("at", "status", "error_code")


class GenerationAttemptInline(ReadOnlyInline):
    model = GenerationAttempt
    verbose_name_plural = "attempts (calls to fal)"
    fields = readonly_fields = ("kind", "number", "outcome", "http_status", "duration", "error", "started_at")

    @admin.display(description="duration")
    def duration(self, attempt: GenerationAttempt) -> str:
        if attempt.finished_at is None:
            return "unfinished"
        return f"{(attempt.finished_at - attempt.started_at).total_seconds() * 1000:.0f} ms"


class VideoReportInline(ReadOnlyInline):
    model = VideoReport
    verbose_name_plural = "reports"
    fields = readonly_fields = ("reporter", "reason", "created_at")


@admin.register(Generation)
class GenerationAdmin(NoWritesMixin, admin.ModelAdmin):
    list_display = ["short_id", "status", "owner", "project", "model_short", "spec", "cost", "age", "flags"]
    list_select_related = ["owner", "project"]
    list_filter = ["status", ModelFilter, ("created_at", admin.DateFieldListFilter), ModerationFilter,
                   ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["input__prompt", "owner__username", "fal_request_id"]
    search_help_text = "Search prompts, usernames, fal request ids, or paste a generation id."
    list_per_page = 50
    ordering = ["-created_at"]
    inlines = [GenerationEventInline, GenerationAttemptInline, VideoReportInline]
    change_form_template = "admin/generations/generation/change_form.html"
    actions = ["hide", "unhide", "flag", "mark_reviewed", "cancel", "retry", "refund", "delete_with_files"]
    fieldsets = [
        ("Video", {"fields": ["player", "poster"]}),
        ("Job", {"fields": ["id", "owner_link", "project", "model_id", "status", "fal_status", "cost_usd",
                            "created_at", "submitted_at", "started_at", "completed_at", "finished_at",
                            "error_code", "error_message"]}),
        ("Input", {"fields": ["input_json", "start_image"]}),
        ("Upstream", {"fields": ["fal_request_id", "fal_status_url", "fal_response_url", "submit_attempts"]}),
        ("Moderation", {"fields": ["is_hidden", "hidden_reason", "hidden_at", "flagged_at", "flag_reason",
                                   "reviewed_at", "refunded_at", "audit_trail"]}),
        ("Spend", {"fields": ["ledger"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"] if isinstance(field, str)]

    # --- permissions: read-only (NoWritesMixin; even the plain admin delete, which would bypass
    # generation_delete: see delete_with_files); changes are actions with their own permissions --
    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.moderate_generation")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.operate_generation")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.refund_generation")

    def has_remove_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.delete_generation")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Generation]:
        # A subquery, not a join: filters on other relations must not multiply the count.
        reports = (VideoReport.objects.filter(generation=OuterRef("pk")).order_by().values("generation")
                   .annotate(n=Count("id")).values("n"))
        return super().get_queryset(request).annotate(
            report_count=Coalesce(Subquery(reports, output_field=IntegerField()), 0))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Generation],
                           search_term: str) -> tuple[QuerySet[Generation], bool]:
        results, duplicates = super().get_search_results(request, queryset, search_term)
        try:
            pk = uuid.UUID(search_term.strip())
        except ValueError:
            return results, duplicates
        return results | queryset.filter(pk=pk), duplicates

    def get_fieldsets(self, request: HttpRequest, obj: Generation | None = None) -> _FieldsetSpec:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.has_perm(UsageEntry.VIEW_PERMISSION):
            return fieldsets
        return [(name, options) for name, options in fieldsets if "ledger" not in options["fields"]]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "moderation_actions": permitted_actions(self, request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # --- list columns -------------------------------------------------------------------------
    @admin.display(description="id", ordering="id")
    def short_id(self, g: Generation) -> str:
        return str(g.pk)[:8]

    @admin.display(description="model", ordering="model_id")
    def model_short(self, g: Generation) -> str:
        endpoint = catalog.BY_ID.get(g.model_id)
        return endpoint.label if endpoint else g.model_id

    @admin.display(description="video")
    def spec(self, g: Generation) -> str:
        return f"{g.input.get('resolution', '?')} · {g.input.get('duration', '?')} s · {g.input.get('fps', '?')} fps"

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, g: Generation) -> str:
        return f"${g.cost_usd:.2f}"

    @admin.display(description="age", ordering="-created_at")
    def age(self, g: Generation) -> str:
        return timesince(g.created_at, timezone.now()).split(",")[0]

    @admin.display(description="flags")
    def flags(self, g: Generation) -> str:
        flags = []
        if g.is_hidden:
            flags.append("hidden")
        if g.flagged_at:
            flags.append("flagged")
        reports = getattr(g, "report_count", None)
        if reports:
            flags.append(f"{reports} report{'s' if reports != 1 else ''}")
        if g.refunded_at:
            flags.append("refunded")
        return ", ".join(flags) or "–"

    # --- detail fields ------------------------------------------------------------------------
    @admin.display(description="player")
    def player(self, g: Generation) -> str:
        if not g.video_id:
            return "no stored video"
        poster = reverse("generations:poster", args=[g.pk]) if g.video and g.video.poster_id else ""
        return format_html('<video id="admin-player" controls preload="metadata" playsinline poster="{}" src="{}" '
                           'style="width:640px;max-width:100%;background:#000"></video>',
                           poster, reverse("generations:video", args=[g.pk]))

    @admin.display(description="poster")
    def poster(self, g: Generation) -> str:
        if g.video is None or not g.video.poster_id:
            return "–"
        return format_html('<img id="admin-poster" src="{}" alt="poster" style="max-width:240px">',
                           reverse("generations:poster", args=[g.pk]))

    @admin.display(description="owner")
    def owner_link(self, g: Generation) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:auth_user_change", args=[g.owner_id]), g.owner)

    @admin.display(description="input")
    def input_json(self, g: Generation) -> str:
        return format_html("<pre style='white-space:pre-wrap;max-width:60em'>{}</pre>",
                           json.dumps(g.input, indent=2, ensure_ascii=False))

    @admin.display(description="audit log")
    def audit_trail(self, g: Generation) -> str:
        entries = AuditEntry.objects.filter(target_type="generation", target_id=str(g.pk)).order_by("created_at", "id")
        if not entries:
            return "–"
        return format_html("<ul id='audit-trail'>{}</ul>", format_html_join(
            "", "<li>{} · {} · {} · {}</li>",
            ((e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.actor_name, e.action, e.reason) for e in entries)))

    @admin.display(description="ledger")
    def ledger(self, g: Generation) -> str:
        lines = UsageEntry.objects.filter(job=g.pk).order_by("created_at", "id")
        if not lines:
            return "–"
        return format_html("<table id='ledger'><tr><th>event</th><th>USD</th><th>bytes</th><th>note</th></tr>"
                           "{}</table>",
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                            ((e.event, f"{e.usd:.4f}", e.bytes, e.note) for e in lines)))

    # --- actions ------------------------------------------------------------------------------
    @admin.action(description="Hide (staff only can see it)", permissions=["moderate"])
    def hide(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="hide",
                             apply=lambda g, reason: generation_hide(g, actor=request.user, reason=reason))

    @admin.action(description="Unhide", permissions=["moderate"])
    def unhide(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="unhide",
                             apply=lambda g, reason: generation_unhide(g, actor=request.user, reason=reason))

    @admin.action(description="Flag for review", permissions=["moderate"])
    def flag(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="flag",
                             apply=lambda g, reason: generation_flag(g, actor=request.user, reason=reason))

    @admin.action(description="Mark reviewed (leave the review queue)", permissions=["moderate"])
    def mark_reviewed(self, request: AuthenticatedHttpRequest,
                            queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="mark reviewed",
                             apply=lambda g, reason: generation_review(g, actor=request.user, reason=reason))

    @admin.action(description="Cancel", permissions=["operate"])
    def cancel(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="cancel",
                             apply=lambda g, reason: generation_admin_cancel(g, actor=request.user, reason=reason))

    @admin.action(description="Retry as a new job (charged to the owner)", permissions=["operate"])
    def retry(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="retry",
                             apply=lambda g, reason: generation_admin_retry(g, actor=request.user, reason=reason))

    @admin.action(description="Refund the spend", permissions=["refund"])
    def refund(self, request: AuthenticatedHttpRequest, queryset: QuerySet[Generation]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="refund",
                             apply=lambda g, reason: generation_refund(g, actor=request.user, reason=reason))

    @admin.action(description="Delete with its files", permissions=["remove"])
    def delete_with_files(self, request: AuthenticatedHttpRequest,
                                queryset: QuerySet[Generation]) -> TemplateResponse | None:
        def apply(g: Generation, reason: str) -> bool:
            generation_admin_delete(g, actor=request.user, reason=reason)
            return True

        return reason_action(self, request, queryset, verb="delete", apply=apply,
                             warning="The video, poster and start image are deleted from storage; "
                                     "this cannot be undone.")

