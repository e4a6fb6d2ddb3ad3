"""Admin pages that show rows but never write them through the admin's own forms."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest


class NoWritesMixin:
    """No add, change or delete through the admin's forms (for a ModelAdmin or an inline): the rows
    are records, or every change is an admin action that calls a service."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(NoWritesMixin, admin.ModelAdmin):
    pass
