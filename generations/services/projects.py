from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from generations.models import Generation, Project
from generations.services.delete import generation_delete


def project_default_for(user: AbstractBaseUser) -> Project:
    """The user's "Inbox" project, created on first use (safe under concurrent first uses)."""
    project, _ = Project.objects.get_or_create(owner=user, name=Project.DEFAULT_NAME)
    return project


def project_get_or_create(user: AbstractBaseUser, name: str) -> Project:
    name = name.strip()
    if not name:
        return project_default_for(user)
    project, _ = Project.objects.get_or_create(owner=user, name=name[:100])
    return project


class ProjectBusy(Exception):
    """The project still has active generations."""


def project_delete(project: Project) -> None:
    """Delete a project with all its (finished) generations and their stored files.

    Raises ProjectBusy, deleting nothing, while any of its generations is active.
    """
    if project.generations.filter(status__in=Generation.ACTIVE).exists():
        raise ProjectBusy("the project has generations in progress; cancel them or wait until they finish")
    for generation in project.generations.all():
        generation_delete(generation)
    project.delete()
