"""A user's projects: the default "Inbox", creating, renaming and deleting them.

Names are unique per owner, which the database enforces (`project_unique_name_per_owner`); the
services catch the constraint instead of checking first, so two requests at once cannot both take
one name.
"""
from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from core.text import text_problem
from generations.models import Generation, Project
from generations.services.delete import generation_delete

NAME_MAX_CHARS = 100


class ProjectNameRefused(Exception):
    """The name cannot be used (blank, not storable, or taken); the message says why."""


class ProjectBusy(Exception):
    """The project still has active generations."""


def project_default_for(user: User) -> Project:
    """The user's "Inbox" project, created on first use (safe under concurrent first uses)."""
    project, _ = Project.objects.get_or_create(owner=user, name=Project.DEFAULT_NAME)
    return project


def project_get_or_create(user: User, name: str) -> Project:
    """The user's project called `name` (created if new; the Inbox for a blank name): for callers that
    name a project rather than create one (the command line)."""
    name = name.strip()
    if not name:
        return project_default_for(user)
    project, _ = Project.objects.get_or_create(owner=user, name=name[:NAME_MAX_CHARS])
    return project


def project_create(owner: User, name: str) -> Project:
    """A new project of `owner` called `name` (trimmed). Raises ProjectNameRefused when the name is
    blank, too long, not storable, or already one of the owner's projects."""
    name = _clean_name(name)
    try:
        with transaction.atomic():
            return Project.objects.create(owner=owner, name=name)
    except IntegrityError:
        raise ProjectNameRefused(f"you already have a project named {name!r}") from None


def project_rename(project: Project, name: str) -> Project:
    """Give `project` the name `name` (trimmed), with the same rules as `project_create`."""
    name = _clean_name(name)
    try:
        with transaction.atomic():
            Project.objects.filter(pk=project.pk).update(name=name)
    except IntegrityError:
        raise ProjectNameRefused(f"you already have a project named {name!r}") from None
    project.name = name
    return project


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ProjectNameRefused("give the project a name")
    if len(name) > NAME_MAX_CHARS:
        raise ProjectNameRefused(f"a project name has at most {NAME_MAX_CHARS} characters")
    if problem := text_problem(name):
        raise ProjectNameRefused(f"the name {problem}")
    return name


def project_delete(project: Project) -> None:
    """Delete a project with all its (finished) generations and their stored files.

    Raises ProjectBusy, deleting nothing, while any of its generations is active.
    """
    if project.generations.filter(status__in=Generation.ACTIVE).exists():
        raise ProjectBusy("the project has generations in progress; cancel them or wait until they finish")
    for generation in project.generations.all():
        generation_delete(generation)
    project.delete()
