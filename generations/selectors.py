"""Reads that users see, scoped to their owner in one place."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import QuerySet

from generations.models import Generation, ProviderSwitch


def generation_list_for(user: User, *, project: uuid.UUID | None = None,
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


def generation_get_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """The user's generation `pk`, or None (also for other users' ids and malformed ids).

    One query: every field, and the stored video with its file (other relations load on access)."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    return Generation.objects.select_related("video__file").filter(pk=pk, owner=user).first()


def generation_viewable_for(user: User, pk: uuid.UUID | str) -> Generation | None:
    """A generation `user` may look at (and so report): their own, or any for staff. None otherwise."""
    try:
        pk = uuid.UUID(str(pk))
    except ValueError:
        return None
    generations = Generation.objects.filter(pk=pk)
    if not user.is_staff:
        generations = generations.filter(owner=user)
    return generations.first()


def generation_playable_for(user: User, pk: uuid.UUID | str) -> Generation | None:
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


def provider_is_paused_for_hold() -> bool:
    """Whether a job may be put on hold now, for a caller that holds it in the same transaction.

    A pause seen here is confirmed under the switch's row lock, which a resume keeps until it has
    released every held job: with a resume in flight the caller waits for it and then sees the studio
    resumed, so a job held here is never left behind by a resume that did not see it. When not paused
    nothing is locked (a pause in flight is safe: a job created pending is held at submit).
    """
    if not provider_is_paused():
        return False
    return ProviderSwitch.objects.select_for_update().filter(pk=ProviderSwitch.SINGLETON, paused=True).exists()
