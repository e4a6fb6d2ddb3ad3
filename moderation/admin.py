"""Admin for moderation and operations: the audit log (read-only), the prompt blocklist, user
reports, suspensions, the user admin with suspend/reinstate and quota overrides, the ledger (and,
from their own modules, the generations and the catalog's overrides)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin_readonly import ReadOnlyAdmin
from core.requests import AuthenticatedHttpRequest, signed_in_user
from generations.models import Generation
from moderation import (
    admin_catalog,  # noqa: F401  (registers the endpoint overrides and schema mismatches)
    admin_generations,  # noqa: F401  (registers the generations admin)
)
from moderation.admin_actions import reason_action
from moderation.models import AuditEntry, BlockedTerm, Suspension, VideoReport
from moderation.services import (
    QUOTA_FIELDS,
    blocked_term_delete,
    blocked_term_save,
    quota_override_set,
    user_reinstate,
    user_suspend,
)
from storage.models import UsageEntry, UserQuota
from storage.quotas import usage_for


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Every moderation and operations action. Nobody can add, change or delete entries here."""

    list_display = ["created_at", "actor_name", "action", "target_type", "target_link", "reason_short", "change"]
    list_filter = ["action", "target_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_name", "target_id", "reason"]
    readonly_fields = ("created_at", "actor", "actor_name", "action", "target_type", "target_id", "reason", "before",
                       "after")
    fields = readonly_fields
    list_select_related = ["actor"]

    def get_actions(self, request: HttpRequest) -> dict[str, tuple[Callable[..., str], str, str] | None]:
        return {}

    @admin.display(description="target")
    def target_link(self, entry: AuditEntry) -> str:
        names = {"generation": "admin:generations_generation_change", "user": "admin:auth_user_change",
                 "blocked_term": "admin:moderation_blockedterm_change"}
        if entry.target_type in names and entry.action != AuditEntry.Action.DELETE:
            try:
                return format_html('<a href="{}">{}</a>', reverse(names[entry.target_type], args=[entry.target_id]),
                                   entry.target_id[:8])
            except Exception:  # noqa: BLE001 - an id that no longer resolves is shown as text
                pass
        return entry.target_id[:12]

    @admin.display(description="reason")
    def reason_short(self, entry: AuditEntry) -> str:
        return entry.reason if len(entry.reason) <= 80 else entry.reason[:79] + "…"

    @admin.display(description="before → after")
    def change(self, entry: AuditEntry) -> str:
        keys = sorted(set(entry.before) | set(entry.after))
        changed = [k for k in keys if entry.before.get(k) != entry.after.get(k)]
        return "; ".join(f"{k}: {entry.before.get(k, '–')} → {entry.after.get(k, '–')}" for k in changed)[:200]


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    """The prompt blocklist; saved terms apply to the next job created, in every process."""

    list_display = ["term", "kind", "is_active", "note", "created_by", "updated_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["term", "note"]
    list_select_related = ["created_by"]

    def save_model(self, request: HttpRequest, obj: BlockedTerm, form: Any, change: bool) -> None:
        blocked_term_save(obj, actor=signed_in_user(request), reason="edited in the admin")

    def delete_model(self, request: HttpRequest, obj: BlockedTerm) -> None:
        blocked_term_delete(obj, actor=signed_in_user(request), reason="deleted in the admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[BlockedTerm]) -> None:
        for term in queryset:
            blocked_term_delete(term, actor=signed_in_user(request), reason="deleted in the admin")


@admin.register(VideoReport)
class VideoReportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "generation_link", "reporter", "reason"]
    search_fields = ["reason", "reporter__username", "generation__id"]
    list_select_related = ["reporter", "generation"]
    fields = readonly_fields = ("generation_link", "reporter", "reason", "created_at")

    @admin.display(description="generation")
    def generation_link(self, report: VideoReport) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:generations_generation_change",
                                                          args=[report.generation_id]), str(report.generation_id)[:8])


@admin.register(Suspension)
class SuspensionAdmin(ReadOnlyAdmin):
    list_display = ["user", "suspended_at", "suspended_by", "reason", "lifted_at", "lifted_by"]
    list_select_related = ["user", "suspended_by", "lifted_by"]
    search_fields = ["user__username", "reason"]


@admin.register(UsageEntry)
class UsageEntryAdmin(ReadOnlyAdmin):
    """The append-only usage ledger, line by line (superusers; not part of the moderator role)."""

    list_display = ["created_at", "user", "event", "job", "usd", "bytes", "jobs", "month", "note"]
    list_filter = ["event", "month"]
    search_fields = ["user__username", "=job", "note"]
    list_select_related = ["user"]


# --- users --------------------------------------------------------------------------------------

class UserQuotaInline(admin.StackedInline):
    """Limit overrides. Saved through `quota_override_set` (audited); editable by superusers only."""

    model = UserQuota
    fields = list(QUOTA_FIELDS)
    can_delete = False
    max_num = 1
    verbose_name = verbose_name_plural = "quota overrides (empty = the default)"


admin.site.unregister(User)


@admin.register(User)
class StudioUserAdmin(UserAdmin):
    list_display = ["username", "email", "account", "is_staff", "generation_count", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups"]
    inlines = [UserQuotaInline]
    actions = ["suspend", "reinstate"]
    fieldsets = (*(UserAdmin.fieldsets or ()),
        ("Studio", {"fields": ["suspension_status", "usage_at_glance", "recent_generations"]}),
    )
    readonly_fields = ["is_active", "suspension_status", "usage_at_glance", "recent_generations", "last_login",
                       "date_joined"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).annotate(generation_count=Count("generations"))

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("moderation.suspend_user")

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        # `is_active` changes only through Suspend/Reinstate (which cancel queued jobs and audit); a new
        # user is created active.
        return [] if obj is None else list(self.readonly_fields)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not UserQuota:
            return super().save_formset(request, form, formset, change)
        for quota_form in formset.forms:
            if quota_form.has_changed() and quota_form.is_valid():
                quota_override_set(user=form.instance, actor=signed_in_user(request),
                                   reason="changed in the user admin",
                                   **{field: quota_form.cleaned_data.get(field) for field in QUOTA_FIELDS})
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    @admin.display(description="account", ordering="is_active", boolean=False)
    def account(self, user: User) -> str:
        return "active" if user.is_active else "suspended"

    @admin.display(description="generations", ordering="generation_count")
    def generation_count(self, user: User) -> int:
        return getattr(user, "generation_count", 0)

    @admin.display(description="suspension")
    def suspension_status(self, user: User) -> str:
        if user.is_active:
            return "not suspended"
        open_ = Suspension.objects.filter(user=user, lifted_at__isnull=True).select_related("suspended_by").first()
        if open_ is None:
            return "inactive"
        return format_html("suspended {} by {}: {}", open_.suspended_at.strftime("%Y-%m-%d %H:%M"),
                           open_.suspended_by or "—", open_.reason)

    @admin.display(description="usage at a glance")
    def usage_at_glance(self, user: User) -> str:
        if user.pk is None:
            return "–"
        usage = usage_for(user)
        limits = usage.limits
        return format_html(
            "<span id='usage-glance'>storage {} MB of {} MB · spend ${} of ${} in {} · active jobs {} of {}</span>",
            f"{usage.bytes / 1_000_000:,.1f}", f"{limits.storage_bytes / 1_000_000:,.0f}",
            f"{usage.spend_usd:.2f}", f"{limits.monthly_spend_usd:.2f}", usage.month.strftime("%Y-%m"),
            usage.active_jobs, limits.active_jobs)

    @admin.display(description="recent generations")
    def recent_generations(self, user: User) -> str:
        if user.pk is None:
            return "–"
        recent = Generation.objects.filter(owner=user).order_by("-created_at")[:10]
        if not recent:
            return "none"
        rows = format_html_join("", "<li><a href='{}'>{}</a> · {} · {} · {}{}</li>", (
            (reverse("admin:generations_generation_change", args=[g.pk]), str(g.pk)[:8], g.status,
             g.created_at.strftime("%Y-%m-%d %H:%M"), g.prompt[:60], " · hidden" if g.is_hidden else "")
            for g in recent))
        link = reverse("admin:generations_generation_changelist") + f"?owner__id__exact={user.pk}"
        return format_html("<ul id='recent-generations'>{}</ul><a href='{}'>all of them</a>", rows, link)

    @admin.action(description="Suspend (sign-in, API keys and queued jobs stop)", permissions=["suspend"])
    def suspend(self, request: AuthenticatedHttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="suspend",
                             apply=lambda user, reason: user_suspend(user, actor=request.user,
                                                                     reason=reason) is not None)

    @admin.action(description="Reinstate", permissions=["suspend"])
    def reinstate(self, request: AuthenticatedHttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        return reason_action(self, request, queryset, verb="reinstate",
                             apply=lambda user, reason: user_reinstate(user, actor=request.user, reason=reason))
