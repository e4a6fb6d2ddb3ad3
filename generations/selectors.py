"""Reads that users see, scoped to their owner in one place."""
from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections
from django.db.models import QuerySet

from accounts.keys import KeyJoin, api_key_authenticate, api_key_authenticate_joined
from accounts.models import ApiKey
from generations.models import Generation, ProviderSwitch
from storage.models import StoredObject, StoredVideo
from core import rows


def generation_list_for(user: AbstractBaseUser, *, project: uuid.UUID | None = None,
                        statuses: Sequence[str] | None = None, model: str | None = None,
                        created_after: datetime | None = None,
                        created_before: datetime | None = None) -> QuerySet[Generation]:
    """The user's generations, newest first, narrowed by whichever filters are given: a project, any
    of `statuses`, an exact model id, and a creation time window (`created_after` inclusive,
    `created_before` exclusive)."""
    generations = (Generation.objects.filter(owner=user)
                   .select_related("project", "video", "video__file", "video__poster")
                   .order_by("-created_at"))
    if project is not None:
        generations = generations.filter(project_id=project)
    if statuses:
        generations = generations.filter(status__in=statuses)
    if model:
        generations = generations.filter(model_id=model)
    if created_after is not None:
        generations = generations.filter(created_at__gte=created_after)
    if created_before is not None:
        generations = generations.filter(created_at__lt=created_before)
    return generations


def generation_get_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """The user's generation `pk`, or None (also for other users' ids and malformed ids).

    One query: every field, and the stored video with its file (other relations load on access)."""
    row = _generation_row(user, pk, _all_fields())
    return None if row is None else _generation_from(row, _all_fields())


# What the status answers show (the REST payload, fal's status and result objects).
STATUS_FIELDS = ("id", "owner_id", "project_id", "model_id", "status", "fal_status", "queue_position", "logs",
                 "input", "cost_usd", "error_code", "error_message", "is_hidden", "video_id", "inference_seconds",
                 "created_at", "submitted_at", "started_at", "completed_at", "finished_at")


STATUS_VIDEO_FIELDS = ("id", "file_id", "poster_id", "file_name", "width", "height", "fps", "duration", "num_frames",
                       "has_audio")


def generation_status_get_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """`generation_get_for` for the status endpoints, which clients poll: the same answer, but only
    STATUS_FIELDS (and of the video STATUS_VIDEO_FIELDS, of its file the size and content type) are
    loaded; any other field loads with a query of its own when read."""
    row = status_row_for(user, pk)
    return None if row is None else row.generation()


@dataclass(frozen=True)
class StatusRow:
    """A generation as the status read found it: its status columns (and its video's) exactly as the
    database returned them. Equal rows make equal answers, which is what lets the status answers be
    remembered per row (generations/status_answers.py)."""

    values: tuple

    @property
    def has_video(self) -> bool:
        return self.values[_status_fields().generation.index("video_id")] is not None

    def generation(self) -> Generation:
        """The generation, converted exactly as the ORM converts it (fields not read load on access)."""
        return _generation_from(self.values, _status_fields())


def status_row_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> StatusRow | None:
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


def _generation_row(user: AbstractBaseUser, pk: uuid.UUID | str, fields: _Fields) -> Sequence | None:
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
def _all_fields() -> _Fields:
    return _Fields(rows.field_names(Generation), rows.field_names(StoredVideo), rows.field_names(StoredObject))


@functools.cache
def _status_fields() -> _Fields:
    return _Fields(rows.field_names(Generation, only=STATUS_FIELDS),
                   rows.field_names(StoredVideo, only=STATUS_VIDEO_FIELDS),
                   rows.field_names(StoredObject, only=("id", "size", "content_type")))


def _column(model, name: str, alias: str) -> str:
    return connections[alias].ops.quote_name(model._meta.get_field(name).column)


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


def generation_viewable_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """A generation `user` may look at (and so report): their own, or any for staff. None otherwise."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    generations = Generation.objects.filter(pk=pk)
    if not user.is_staff:
        generations = generations.filter(owner=user)
    return generations.first()


def generation_playable_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """A generation with a stored video that `user` may play or download: their own unless a
    moderator hid it; staff may play any (moderation needs it). None otherwise."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    generations = Generation.objects.select_related("video__file", "video__poster").filter(pk=pk, video__isnull=False)
    if not user.is_staff:
        generations = generations.filter(owner=user, is_hidden=False)
    return generations.first()


def generation_linkable(pk: uuid.UUID | str) -> Generation | None:
    """A generation whose signed media links still work: it has a video and is not hidden."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    return (Generation.objects.select_related("video__file", "video__poster")
            .filter(pk=pk, video__isnull=False, is_hidden=False).first())


# --- the provider switch (generations/services/provider_switch.py changes it) -----------------------

def provider_switch() -> ProviderSwitch:
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON).first() or ProviderSwitch(paused=False)


def provider_is_paused() -> bool:
    """Whether new submissions to fal are held in the studio (one indexed read)."""
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON, paused=True).exists()


def provider_is_paused_automatically() -> bool:
    """Whether the studio paused itself because fal refuses its account (it probes fal meanwhile)."""
    return ProviderSwitch.objects.filter(pk=ProviderSwitch.SINGLETON, paused=True).exclude(cause="").exists()
