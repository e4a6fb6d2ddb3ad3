from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from generations.models import Project


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
