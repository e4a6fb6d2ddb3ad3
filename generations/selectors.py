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
