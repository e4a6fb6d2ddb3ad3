"""Reads that users see, scoped to their owner in one place."""
from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from generations.models import Generation


def generation_list_for(user: AbstractBaseUser) -> QuerySet[Generation]:
    return (Generation.objects.filter(owner=user)
            .select_related("project", "video", "video__file", "video__poster")
            .order_by("-created_at"))


def generation_get_for(user: AbstractBaseUser, pk: uuid.UUID | str) -> Generation | None:
    """The user's generation `pk`, or None (also for other users' ids and malformed ids)."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    return generation_list_for(user).filter(pk=pk).first()


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
