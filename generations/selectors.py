"""Reads that users see, scoped to their owner in one place."""
from __future__ import annotations

import functools
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, connections
from django.db.models import QuerySet

from generations.models import Generation
from storage.models import StoredObject, StoredVideo
from studio import rows


def generation_list_for(user: AbstractBaseUser) -> QuerySet[Generation]:
    return (Generation.objects.filter(owner=user)
            .select_related("project", "video", "video__file", "video__poster")
            .order_by("-created_at"))


def generation_get_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """The user's generation `pk`, or None (also for other users' ids and malformed ids).

    One query, with its stored video and the video's file loaded (what the API's and the gateway's
    answers show); every field of the generation is loaded, its other relations load on access.
    It serves the status endpoints, which clients poll, so it is written by hand (see
    studio/rows.py): the ORM spent several times the database's time building it."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_generation_sql(connection.alias),
                       [Generation._meta.pk.get_db_prep_value(pk, connection), user.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    generation_fields, video_fields, file_fields = _fields()
    ends = (len(generation_fields), len(generation_fields) + len(video_fields))
    generation = rows.instance(Generation, generation_fields, row[:ends[0]])
    video = rows.instance(StoredVideo, video_fields, row[ends[0]:ends[1]])
    if video is not None:
        StoredVideo.file.field.set_cached_value(video, rows.instance(StoredObject, file_fields, row[ends[1]:]))
    Generation.video.field.set_cached_value(generation, video)
    return generation


@functools.cache
def _fields() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return rows.field_names(Generation), rows.field_names(StoredVideo), rows.field_names(StoredObject)


@functools.cache
def _generation_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    generation_fields, video_fields, file_fields = _fields()
    return (f"SELECT {rows.columns(Generation, 'g', generation_fields, using=alias)}, "
            f"{rows.columns(StoredVideo, 'v', video_fields, using=alias)}, "
            f"{rows.columns(StoredObject, 'f', file_fields, using=alias)} "
            f"FROM {rows.table(Generation, using=alias)} g "
            f"LEFT JOIN {rows.table(StoredVideo, using=alias)} v "
            f"ON v.{column(StoredVideo, 'id')} = g.{column(Generation, 'video')} "
            f"LEFT JOIN {rows.table(StoredObject, using=alias)} f "
            f"ON f.{column(StoredObject, 'id')} = v.{column(StoredVideo, 'file')} "
            f"WHERE g.{column(Generation, 'id')} = %s AND g.{column(Generation, 'owner')} = %s")


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
