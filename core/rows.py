"""Model instances from hand-written SQL, converted exactly as the ORM converts them.

For the few hot reads (the status endpoints, polled by every client) where building the query
with the ORM costs several times what the database does: the SQL is written once, and each
row's columns go through the same backend and field converters a QuerySet applies, then
`Model.from_db`, so the instances behave like ORM-loaded ones (fields not selected are
deferred and load on access).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def columns(model: type[Model], alias: str, names: Sequence[str], *, using: str = "default") -> str:
    """`alias.col, alias.col, …` for the concrete fields `names` of `model` (attnames, e.g. `owner_id`)."""
    quote = connections[using].ops.quote_name
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    return ", ".join(f"{alias}.{quote(by_attname[name].column)}" for name in names)


def column(model: type[Model], name: str, *, using: str = "default") -> str:
    """The quoted column of `model`'s concrete field `name` (its field name, e.g. `last_used_at`)."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column, f"{model.__name__}.{name} has no column"
    return connections[using].ops.quote_name(field.column)


def table(model: type[Model], *, using: str = "default") -> str:
    return connections[using].ops.quote_name(model._meta.db_table)


def field_names(model: type[Model], only: Sequence[str] | None = None) -> tuple[str, ...]:
    """The concrete fields of `model` by attname, in the model's order (which `instance` needs):
    all of them (what a plain QuerySet selects), or those in `only`."""
    return tuple(field.attname for field in model._meta.concrete_fields if only is None or field.attname in only)


def instance(model: type[M], names: Sequence[str], values: Sequence[Any], *,
             using: str = "default") -> M | None:
    """`model` from one row's `values` for the fields `names` (in the model's order, as
    `field_names` gives them); None when its primary key is NULL (the unmatched side of a LEFT JOIN)."""
    converted = list(values)
    if converted[names.index(model._meta.pk.attname)] is None:
        return None
    connection = connections[using]
    for index, chain in _converters(model, tuple(names), using):
        value = converted[index]
        if value is None:  # what every converter of Django's own fields makes of NULL
            continue
        for convert, expression in chain:
            value = convert(value, expression, connection)
        converted[index] = value
    return model.from_db(using, list(names), converted)


@functools.cache
def _converters(model: type[Model], names: tuple[str, ...],
                using: str) -> list[tuple[int, list[tuple[Callable[..., Any], Any]]]]:
    """Per column, the converters the ORM would apply: the backend's first, then the field's."""
    connection = connections[using]
    by_attname = {field.attname: field for field in model._meta.concrete_fields}
    result = []
    for index, name in enumerate(names):
        expression = by_attname[name].get_col(model._meta.db_table)
        chain = [(convert, expression) for convert in
                 connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)]
        if chain:
            result.append((index, chain))
    return result
