"""The usage ledger is not part of the moderator role: the generation page's ledger lines and the
dashboard's spend figures are shown only to users with `storage.view_usageentry` (superusers)."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from storage.models import UsageEntry
from tests.factories import SucceededGenerationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def video(user, media_root, task_queue, tmp_path):
    return SucceededGenerationFactory(owner=user, prompt="A cowboy at high noon", tmp_path=tmp_path)


def generation_page(client, who, video) -> str:
    client.force_login(who)
    response = client.get(f"/admin/generations/generation/{video.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def dashboard(client, who) -> str:
    client.force_login(who)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_moderator_sees_the_job_but_not_its_ledger_lines(client, moderator, superuser, video):
    assert [entry.event for entry in UsageEntry.objects.filter(job=video.pk)] == ["reserve", "settle"]

    as_moderator = generation_page(client, moderator, video)
    assert "A cowboy at high noon" in as_moderator  # the page itself is there
    assert "id='ledger'" not in as_moderator and "<td>reserve</td>" not in as_moderator
    assert 'class="fieldset-heading">Spend</h2>' not in as_moderator

    as_superuser = generation_page(client, superuser, video)
    assert 'class="fieldset-heading">Spend</h2>' in as_superuser and "id='ledger'" in as_superuser
    assert "<td>reserve</td>" in as_superuser and "<td>settle</td>" in as_superuser


def test_the_ledger_permission_shows_the_lines_to_staff_who_have_it(client, moderator, video):
    moderator.user_permissions.add(Permission.objects.get(content_type__app_label="storage",
                                                          codename="view_usageentry"))
    assert "<td>reserve</td>" in generation_page(client, moderator, video)


def test_the_dashboards_spend_figures_are_for_the_ledger_permission_only(client, moderator, superuser, video):
    as_moderator = dashboard(client, moderator)
    assert 'id="jobs-by-status"' in as_moderator  # the rest of the dashboard is there
    assert 'id="spend-today"' not in as_moderator and 'id="spend-month"' not in as_moderator
    assert "$0.48" not in as_moderator

    as_superuser = dashboard(client, superuser)
    assert 'id="spend-today">$0.48<' in as_superuser and 'id="spend-month">$0.48<' in as_superuser
