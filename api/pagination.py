"""Cursor paging for every list of the API, answering a cursor it did not hand out with a 400.

DRF decodes the cursor's base64 itself (an undecodable one is its 404 "Invalid cursor") but
trusts the position inside, so a forged `p=x` reached the database as a date and failed there.
Here both are a 400 `invalid_cursor` naming the `cursor` parameter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework import exceptions, pagination

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from rest_framework.request import Request
    from rest_framework.views import APIView


class InvalidCursor(exceptions.APIException):
    status_code = 400
    default_code = "invalid_cursor"
    default_detail = "This cursor was not handed out by this list; use the `next` or `previous` link of a page."


class CursorPagination(pagination.CursorPagination):
    def paginate_queryset(self, queryset: QuerySet[Any], request: Request,
                          view: APIView | None = None) -> list[Any] | None:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise InvalidCursor() from None
        if cursor is not None and cursor.position is not None:
            try:
                field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            except FieldDoesNotExist:
                return cursor
            try:
                field.to_python(cursor.position)
            except ValidationError:
                raise InvalidCursor() from None
        return cursor


class NewestFirst(CursorPagination):
    ordering = "-created_at"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
