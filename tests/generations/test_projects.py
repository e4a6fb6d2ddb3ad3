"""Project names: unique per owner, decided by the database's constraint, so two requests at once
cannot both take one name (generations/services/projects.py)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from generations.models import Project
from generations.services.projects import ProjectNameRefused, project_create, project_rename


@pytest.mark.django_db
def test_names_are_trimmed_checked_and_unique_per_owner(user, other_user):
    project = project_create(user, "  Shorts  ")
    assert project.name == "Shorts"
    with pytest.raises(ProjectNameRefused, match="already have a project named 'Shorts'"):
        project_create(user, "Shorts")
    assert project_create(other_user, "Shorts").owner == other_user  # another owner's name is theirs
    for bad, message in (("   ", "give the project a name"), ("x" * 101, "at most 100"),
                         ("a\x00b", "NUL"), ("a\ud800b", "lone surrogate")):
        with pytest.raises(ProjectNameRefused, match=message):
            project_create(user, bad)
    second = project_create(user, "Trailers")
    with pytest.raises(ProjectNameRefused, match="already have"):
        project_rename(second, " Shorts")
    assert Project.objects.get(pk=second.pk).name == "Trailers"
    assert project_rename(second, "Teasers").name == "Teasers" == Project.objects.get(pk=second.pk).name
    assert Project.objects.filter(owner=user).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_creates_of_one_name_at_once_make_one_project(user):
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def create() -> None:
        try:
            start.wait()
            project_create(user, "Same name")
            outcomes.append("created")
        except ProjectNameRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "refused"]
    assert Project.objects.filter(owner=user, name="Same name").count() == 1
