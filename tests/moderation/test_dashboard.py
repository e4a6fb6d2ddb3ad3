"""The operations dashboard's figures."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from fal_protocol.catalog import BY_ID
from fal_protocol.client import FalNotFound
from generations.models import EndpointOverride, Generation, SchemaMismatch
from generations.services.catalog import endpoint_mark_unavailable
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
    # t2v is LTX-2.3's: $0.08 a second, 6 s; the failed one's reservation released
    assert figures["spend_today"] == figures["spend_month"] == Decimal("0.96")
    assert figures["stored_bytes"] == done.video.file.size + done.video.poster.size
    assert figures["failed_last_hour"] == 1 and figures["recent_failures"] == [broken]
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert 'id="spend-today">$0.96<' in page and 'data-status="succeeded">1<' in page
    assert "/admin/django_q/failure/" in page


# --- the catalog's warnings ----------------------------------------------------------------------

T2V_23 = "fal-ai/ltx-2.3/text-to-video"
I2V_20 = "fal-ai/ltx-2/image-to-video"


def test_no_catalog_warning_when_all_is_well(admin_client):
    # an override that refuses nothing, and a refused endpoint no short name means, warn of nothing
    EndpointOverride.objects.create(endpoint_id=T2V_23, price_per_second={"1080p": "0.05"})
    EndpointOverride.objects.create(endpoint_id=I2V_20, retired=True)
    figures = dashboard_figures()
    assert figures["endpoint_warnings"] == [] and figures["schema_mismatches"] == []
    page = admin_client.get("/admin/dashboard/").content.decode()
    assert 'id="catalog-warnings"' not in page and 'id="schema-mismatches"' not in page


def test_an_endpoint_gone_at_fal_is_a_warning_with_fal_s_answer_and_a_link(admin_client):
    endpoint_mark_unavailable(BY_ID[I2V_20], FalNotFound("x", status_code=404, detail="Application not found"))
    override = EndpointOverride.objects.get()
    EndpointOverride.objects.filter(pk=override.pk).update(replacement="fal-ai/ltx-2.3/image-to-video")
    page = admin_client.get("/admin/dashboard/").content.decode()
    warning = _warning(page, I2V_20)
    assert 'data-state="unavailable"' in warning
    assert f"unavailable at fal since {override.unavailable_since:%Y-%m-%d %H:%M:%S}" in warning
    assert "fal answered 404: Application not found" in warning
    assert 'class="endpoint-replacement">fal-ai/ltx-2.3/image-to-video<' in warning
    assert f'href="/admin/generations/endpointoverride/{override.pk}/change/"' in warning
    assert "short-names-refused" not in warning  # 2.0's endpoint: no short name means it under 2.3


@pytest.mark.parametrize(("fields", "state"), [({"retired": True}, "retired"), ({"enabled": False}, "disabled")])
def test_a_refused_endpoint_a_short_name_means_says_every_user_is_refused(admin_client, fields, state):
    EndpointOverride.objects.create(endpoint_id=T2V_23, **fields)
    page = admin_client.get("/admin/dashboard/").content.decode()
    warning = _warning(page, T2V_23)
    assert f'data-state="{state}"' in warning
    assert ("It is what t2v means under STUDIO_LTX_VERSION=2.3: every user's t2v is refused."
            in warning)
    assert "No replacement is set." in warning


def test_moderators_see_the_warning_without_the_link_they_could_not_follow(moderator_client):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23, enabled=False)
    warning = _warning(moderator_client.get("/admin/dashboard/").content.decode(), T2V_23)
    assert "every user's t2v is refused" in warning
    assert f"/admin/generations/endpointoverride/{override.pk}/change/" not in warning


def test_schema_mismatches_are_listed(admin_client):
    SchemaMismatch.objects.create(endpoint_id=T2V_23, field="fps", message="Input should be 24 or 25", value=50,
                                  count=4)
    mismatch = SchemaMismatch.objects.get()
    page = admin_client.get("/admin/dashboard/").content.decode()
    row = re.search(r'<tr class="schema-mismatch" data-endpoint="([^"]+)" data-field="([^"]+)">(.*?)</tr>', page)
    assert row is not None and row.group(1, 2) == (T2V_23, "fps")
    assert (f"<td>{T2V_23}</td><td>fps</td><td>Input should be 24 or 25</td><td class=\"mismatch-count\">4</td>"
            f"<td>{mismatch.last_seen:%Y-%m-%d %H:%M:%S}</td>") == row.group(3)
    assert 'href="/admin/generations/schemamismatch/"' in page


def _warning(page: str, endpoint_id: str) -> str:
    found = re.findall(r'<li class="catalog-warning" data-endpoint="([^"]+)"(.*?)</li>', page, re.S)
    assert [endpoint for endpoint, _ in found] == [endpoint_id]
    return found[0][1]
