"""The operations dashboard's figures."""
from __future__ import annotations

from decimal import Decimal

import pytest

from generations.models import Generation
from moderation.dashboard import dashboard_figures
from tests.factories import FailedGenerationFactory, GenerationFactory, SucceededGenerationFactory

pytestmark = pytest.mark.django_db


def test_figures_count_jobs_spend_bytes_and_recent_failures(admin_client, user, media_root, task_queue, tmp_path):
    done = SucceededGenerationFactory(owner=user, tmp_path=tmp_path)
    GenerationFactory(owner=user, prompt="waiting")
    broken = FailedGenerationFactory(owner=user)
    figures = dashboard_figures()
    counts = {value: count for _, value, count in figures["jobs_by_status"]}
    assert counts == {**dict.fromkeys(Generation.Status.values, 0), "succeeded": 1, "pending": 1, "failed": 1}
    assert figures["spend_today"] == figures["spend_month"] == Decimal("0.7200")  # failed one released
    assert figures["stored_bytes"] == done.video.file.size + done.video.poster.size
    assert figures["failed_last_hour"] == 1 and figures["recent_failures"] == [broken]
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert 'id="spend-today">$0.72<' in page and 'data-status="succeeded">1<' in page
    assert "/admin/django_q/failure/" in page
