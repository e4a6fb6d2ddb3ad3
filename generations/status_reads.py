"""The reads every API client polls — REST retrieve and the gateway's status and result — in one place.

Clients ask about a job far more often than it changes, so these reads are kept cheap:

- One query. The status endpoints check the API key and read the caller's job in the same SQL
  (`status_row_for_key`: accounts.keys' key check with this module's join), written by hand once —
  building it with the ORM cost several times what the database spends on it — and converted to
  model instances exactly as the ORM converts them (core/rows.py). It selects exactly what the
  answers read: the fields payloads.py declares for them (GENERATION_JSON, FAL_READS, VIDEO_READS).
- Answers remembered per row. An answer is a function of the row as the database returned it and of
  the URL base and options the request names, nothing else; each process remembers the last
  ANSWERS_REMEMBERED bodies it built, keyed by exactly those. The database is still read on every
  request, a changed row is a new key, and a remembered answer is never stale. Answers that carry
  signed media links, which expire, are built afresh every time.
"""
from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest
from rest_framework.renderers import JSONRenderer

from accounts.keys import KeyJoin, api_key_authenticate, api_key_authenticate_joined
from accounts.models import ApiKey
from core import rows
from generations.fair_share import in_flight_cap
from generations.models import Generation
from generations.payloads import (
    FAL_READS,
    GENERATION_JSON,
    VIDEO_FILE_READS,
    VIDEO_READS,
    generation_payload,
    status_body,
)
from storage.models import StoredObject, StoredVideo

# What the answers read (payloads.py declares it), and the owner the reads are scoped by.
STATUS_FIELDS = tuple(dict.fromkeys(("id", "owner_id", *(name for out in GENERATION_JSON for name in out.reads),
                                     *FAL_READS)))


def generation_status_get_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """`generation_get_for` for the status endpoints, which clients poll: the same answer, but only
    STATUS_FIELDS (and of the video STATUS_VIDEO_FIELDS, of its file the size and content type) are
    loaded; any other field loads with a query of its own when read."""
    row = status_row_for(user, pk)
    return None if row is None else row.generation()


@dataclass(frozen=True)
class StatusRow:
    """A generation as the status read found it: its status columns (and its video's) exactly as the
    database returned them. Equal rows make equal answers, which is what lets the status answers be
    remembered per row (see `rest_body` and `gateway_status`)."""

    values: tuple

    @property
    def has_video(self) -> bool:
        return self.values[_status_fields().generation.index("video_id")] is not None

    @property
    def answer_changes_by_itself(self) -> bool:
        """Whether its answer may change while the row does not: signed media links expire, and a job
        waiting for a slot (fair_share.py) moves up as others are sent."""
        return self.has_video or (self.values[_status_fields().generation.index("status")] == Generation.Status.PENDING
                                  and in_flight_cap() is not None)

    def generation(self) -> Generation:
        """The generation, converted exactly as the ORM converts it (fields not read load on access)."""
        generation = _generation_from(self.values, _status_fields())
        assert generation is not None  # a status row is a generation that was found
        return generation


def status_row_for(user: User, pk: uuid.UUID | str) -> StatusRow | None:
    """The user's generation `pk` as the status endpoints read it, or None (also for other users' ids
    and malformed ids). One query."""
    return _status_row(_generation_row(user, pk, _status_fields()))


def status_row_for_key(raw_key: str, pk: uuid.UUID | str) -> tuple[ApiKey | None, StatusRow | None]:
    """The status endpoints' whole read in one query: the live key for `raw_key` exactly as
    `api_key_authenticate` checks it (None: not live, the row is then None too), and its user's
    generation `pk` as `status_row_for` reads it."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return api_key_authenticate(raw_key), None
    join = KeyJoin(columns=_generation_columns(_status_fields(), connection.alias),
                   joins=_key_generation_joins(connection.alias),
                   params=(Generation._meta.pk.get_db_prep_value(pk, connection),))
    key, row = api_key_authenticate_joined(raw_key, join)
    return key, (_status_row(row) if key is not None else None)


def _status_row(values: Sequence | None) -> StatusRow | None:
    if values is None or values[_status_fields().generation.index("id")] is None:  # unmatched in a LEFT JOIN
        return None
    return StatusRow(tuple(values))


def _generation_row(user: User, pk: uuid.UUID | str, fields: _Fields) -> Sequence | None:
    # Written by hand (see studio/rows.py): building it with the ORM cost several times what the
    # database spends on it, on the endpoints every client polls.
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_generation_sql(fields, connection.alias),
                       [Generation._meta.pk.get_db_prep_value(pk, connection), user.pk])
        return cursor.fetchone()


def _generation_from(row: Sequence, fields: _Fields) -> Generation | None:
    ends = (len(fields.generation), len(fields.generation) + len(fields.video))
    generation = rows.instance(Generation, fields.generation, row[:ends[0]])
    if generation is None:
        return None
    video = rows.instance(StoredVideo, fields.video, row[ends[0]:ends[1]])
    if video is not None:
        StoredVideo.file.field.set_cached_value(video, rows.instance(StoredObject, fields.file, row[ends[1]:]))
    Generation.video.field.set_cached_value(generation, video)
    return generation


class _Fields(NamedTuple):
    generation: tuple[str, ...]
    video: tuple[str, ...]
    file: tuple[str, ...]


@functools.cache
def _status_fields() -> _Fields:
    return _Fields(rows.field_names(Generation, only=STATUS_FIELDS),
                   rows.field_names(StoredVideo, only=VIDEO_READS),
                   rows.field_names(StoredObject, only=VIDEO_FILE_READS))


def _column(model: type[Model], name: str, alias: str) -> str:
    return rows.column(model, name, using=alias)


@functools.cache
def _generation_columns(fields: _Fields, alias: str) -> str:
    return (f"{rows.columns(Generation, 'g', fields.generation, using=alias)}, "
            f"{rows.columns(StoredVideo, 'v', fields.video, using=alias)}, "
            f"{rows.columns(StoredObject, 'f', fields.file, using=alias)}")


@functools.cache
def _key_generation_joins(alias: str) -> str:
    """The key's user's generation whose id is the parameter, with its video and file."""
    return (f"LEFT JOIN {rows.table(Generation, using=alias)} g ON g.{_column(Generation, 'id', alias)} = %s "
            f"AND g.{_column(Generation, 'owner', alias)} = k.{_column(ApiKey, 'user', alias)} "
            f"{_video_joins(alias)}")


@functools.cache
def _generation_sql(fields: _Fields, alias: str) -> str:
    return (f"SELECT {_generation_columns(fields, alias)} FROM {rows.table(Generation, using=alias)} g "
            f"{_video_joins(alias)} "
            f"WHERE g.{_column(Generation, 'id', alias)} = %s AND g.{_column(Generation, 'owner', alias)} = %s")


def _video_joins(alias: str) -> str:
    return (f"LEFT JOIN {rows.table(StoredVideo, using=alias)} v "
            f"ON v.{_column(StoredVideo, 'id', alias)} = g.{_column(Generation, 'video', alias)} "
            f"LEFT JOIN {rows.table(StoredObject, using=alias)} f "
            f"ON f.{_column(StoredObject, 'id', alias)} = v.{_column(StoredVideo, 'file', alias)}")


# Per process and per kind of answer. A job's row and body are a few kB (logs are capped at 100
# entries), so this is a few MB, and it covers the jobs one process's pollers ask about at once.
ANSWERS_REMEMBERED = 1024


def rest_body(row: StatusRow, request: HttpRequest) -> bytes:
    """REST retrieve's body for `row`: GenerationSerializer's shape as DRF's JSONRenderer writes it."""
    if row.answer_changes_by_itself:
        return JSONRenderer().render(generation_payload(row.generation(), request))
    return _rest_body(row)


@functools.lru_cache(maxsize=ANSWERS_REMEMBERED)
def _rest_body(row: StatusRow) -> bytes:
    return JSONRenderer().render(generation_payload(row.generation()))


def gateway_status(row: StatusRow, *, app: str, base: str, logs: bool) -> tuple[int, bytes]:
    """The gateway's status answer for `row`: 202 while fal's status is not COMPLETED, else 200, and
    fal's status object as JsonResponse writes it."""
    if row.answer_changes_by_itself:
        return _gateway_status(row, app=app, base=base, logs=logs)
    return _remembered_gateway_status(row, app=app, base=base, logs=logs)


@functools.lru_cache(maxsize=ANSWERS_REMEMBERED)
def _remembered_gateway_status(row: StatusRow, *, app: str, base: str, logs: bool) -> tuple[int, bytes]:
    return _gateway_status(row, app=app, base=base, logs=logs)


def _gateway_status(row: StatusRow, *, app: str, base: str, logs: bool) -> tuple[int, bytes]:
    body = status_body(row.generation(), app=app, base=base, logs=logs)
    return 200 if body["status"] == "COMPLETED" else 202, json.dumps(body, cls=DjangoJSONEncoder).encode()
