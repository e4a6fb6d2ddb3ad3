"""The catalog's admin: one row per catalog endpoint, overrides set through the catalog services
(validated, audited, superusers only), "fal serves it again", and the schema mismatches with their
dismiss action."""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from fal_protocol import catalog
from fal_protocol.client import FalNotFound
from generations import ltx
from generations.ltx import InputError
from generations.models import EndpointOverride, SchemaMismatch
from generations.services.catalog import (
    endpoint_mark_available,
    endpoint_mark_unavailable,
    endpoint_override_set,
    schema_mismatch_dismiss,
)
from moderation.models import AuditEntry
from tests.factories import StaffFactory
from tests.moderation_fixtures import run_action

pytestmark = pytest.mark.django_db
LIST = "/admin/generations/endpointoverride/"
ADD = LIST + "add/"
MISMATCHES = "/admin/generations/schemamismatch/"
T2V_23 = "fal-ai/ltx-2.3/text-to-video"
T2V_20 = "fal-ai/ltx-2/text-to-video"


def change_url(override: EndpointOverride) -> str:
    return f"{LIST}{override.pk}/change/"


def form(**fields: Any) -> dict[str, Any]:
    """The override form as the browser posts it (an unticked checkbox is left out)."""
    data = {"enabled": "on", "replacement": "", "price_per_second": "{}", "reason": "incident 7"}
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def state_of(endpoint_id: str) -> tuple[Any, ...] | None:
    override = EndpointOverride.objects.filter(endpoint_id=endpoint_id).first()
    if override is None:
        return None
    return (override.enabled, override.retired, override.replacement, override.price_per_second,
            override.unavailable_since)


def form_errors(response) -> dict[str, list[str]]:
    return {field: list(errors) for field, errors in response.context["adminform"].form.errors.items()}


# --- the list: the catalog ----------------------------------------------------------------------

def test_the_list_shows_every_catalog_endpoint_with_or_without_an_override(admin_client, superuser):
    endpoint_override_set(T2V_20, enabled=True, retired=True, replacement=T2V_23, price_per_second={"1080p": "0.07"},
                          by=superuser, reason="2.3 is out")
    response = admin_client.get(LIST)
    page = response.content.decode()
    assert response.status_code == 200
    rows = re.findall(r'data-endpoint="([^"]+)" data-state="([^"]+)" data-short-names="([^"]*)"', page)
    short = {"fal-ai/ltx-2.3/text-to-video": "t2v", "fal-ai/ltx-2.3/text-to-video/fast": "t2v-fast",
             "fal-ai/ltx-2.3/image-to-video": "i2v", "fal-ai/ltx-2.3/image-to-video/fast": "i2v-fast"}
    assert rows == [(e.id, "retired" if e.id == T2V_20 else "usable", short.get(e.id, "")) for e in catalog.ENDPOINTS]
    override = EndpointOverride.objects.get(endpoint_id=T2V_20)
    assert f'href="{change_url(override)}"' in page
    # the endpoints without a row link to the add page, prefilled
    assert f'href="{ADD}?endpoint_id=fal-ai/ltx-2.3/text-to-video"' in page.replace("%2F", "/")
    assert "1080p $0.07*, 1440p $0.12, 2160p $0.24" in page  # the operator's price, marked


def test_the_list_follows_studio_ltx_version(admin_client, settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    page = admin_client.get(LIST).content.decode()
    assert f'data-endpoint="{T2V_20}" data-state="usable" data-short-names="t2v"' in page
    assert f'data-endpoint="{T2V_23}" data-state="usable" data-short-names=""' in page


# --- superuser: disable, retire, prices, fal serves it again ------------------------------------

def test_a_superuser_disables_an_endpoint_without_a_row_then_enables_it(admin_client, superuser):
    page = admin_client.get(ADD + f"?endpoint_id={T2V_23}").content.decode()
    assert f'<option value="{T2V_23}" selected>' in page

    response = admin_client.post(ADD, form(endpoint_id=T2V_23, enabled=None, reason="fal incident 7"))
    assert response.status_code == 302, form_errors(response)
    assert state_of(T2V_23) == (False, False, "", {}, None)
    with pytest.raises(InputError) as refused:
        ltx.endpoint_check_usable(catalog.BY_ID[T2V_23])
    assert refused.value.errors == {"model": f"{T2V_23} is disabled on this studio"}
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id, entry.reason) == (
        superuser, "endpoint_override", "endpoint", T2V_23, "fal incident 7")
    assert (entry.before["enabled"], entry.after["enabled"]) == (True, False)

    override = EndpointOverride.objects.get(endpoint_id=T2V_23)
    response = admin_client.post(change_url(override), form(reason="fixed"))
    assert response.status_code == 302, form_errors(response)
    assert state_of(T2V_23) == (True, False, "", {}, None)
    assert ltx.endpoint_check_usable(catalog.BY_ID[T2V_23]) == override
    assert list(AuditEntry.objects.order_by("id").values_list("action", "reason")) == [
        ("endpoint_override", "fal incident 7"), ("endpoint_override", "fixed")]


def test_a_superuser_retires_an_endpoint_naming_its_replacement(admin_client, superuser):
    override = EndpointOverride.objects.create(endpoint_id=T2V_20)
    response = admin_client.post(change_url(override), form(retired="on", replacement=T2V_23, reason="2.3 is out"))
    assert response.status_code == 302, form_errors(response)
    assert state_of(T2V_20) == (True, True, T2V_23, {}, None)
    with pytest.raises(InputError) as refused:
        ltx.endpoint_check_usable(catalog.BY_ID[T2V_20])
    assert refused.value.errors == {"model": f"{T2V_20} has been retired; use {T2V_23} instead"}
    entry = AuditEntry.objects.get()
    assert entry.before == {"enabled": True, "retired": False, "replacement": "", "price_per_second": {}}
    assert entry.after == {"enabled": True, "retired": True, "replacement": T2V_23, "price_per_second": {}}


@pytest.mark.parametrize(("replacement", "message"), [
    ("fal-ai/ltx-9/text-to-video", "'fal-ai/ltx-9/text-to-video' is not an endpoint of the catalog; allowed: "),
    (T2V_20, "an endpoint cannot replace itself; name another endpoint of the catalog"),
])
def test_a_replacement_outside_the_catalog_is_a_form_error_and_nothing_is_saved(admin_client, replacement, message):
    override = EndpointOverride.objects.create(endpoint_id=T2V_20)
    before = state_of(T2V_20)
    response = admin_client.post(change_url(override), form(retired="on", replacement=replacement))
    assert response.status_code == 200
    errors = form_errors(response)
    assert list(errors) == ["replacement"]
    assert errors["replacement"][0].startswith(message)
    assert html.escape(message) in response.content.decode()
    assert state_of(T2V_20) == before
    assert not AuditEntry.objects.exists()


def test_a_bad_replacement_on_the_add_page_creates_no_row(admin_client):
    response = admin_client.post(ADD, form(endpoint_id=T2V_23, retired="on", replacement="t2v"))
    assert response.status_code == 200
    assert list(form_errors(response)) == ["replacement"]
    assert not EndpointOverride.objects.exists() and not AuditEntry.objects.exists()


@pytest.mark.parametrize(("prices", "message"), [
    ('{"720p": "0.05"}', "'720p' is not a resolution of the catalog; allowed: 1080p, 1440p, 2160p"),
    ('{"1080p": "-0.05"}', ('the price for 1080p must be a positive number of USD per second with at most 4 '
                            'decimals, e.g. "0.05"')),
    ('{"1080p": "0"}', "the price for 1080p must be a positive number"),
    ('{"1080p": "0.000001"}', "the price for 1080p must be a positive number"),
    ('{"1080p": "cheap"}', "the price for 1080p must be a positive number"),
    ('{"1080p": 0.05}', 'the price for 1080p must be a string of USD per second, e.g. "0.05" (not 0.05)'),
    ('["0.05"]', "must be an object of USD per second by resolution"),
    ('{"1080p": ', "Enter a valid JSON."),
])
def test_a_bad_price_override_is_a_form_error_naming_the_field(admin_client, prices, message):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23, price_per_second={"1440p": "0.15"})
    response = admin_client.post(change_url(override), form(price_per_second=prices))
    assert response.status_code == 200
    errors = form_errors(response)
    assert list(errors) == ["price_per_second"]
    assert errors["price_per_second"][0].startswith(message)
    assert EndpointOverride.objects.get().price_per_second == {"1440p": "0.15"}
    assert not AuditEntry.objects.exists()


def test_a_price_override_changes_the_quote(admin_client):
    endpoint = catalog.BY_ID[T2V_23]
    assert ltx.quote_usd(T2V_23, {"duration": 6}) == endpoint.price_per_second["1080p"] * 6
    response = admin_client.post(ADD, form(endpoint_id=T2V_23, price_per_second='{"1080p": " 0.05 "}'))
    assert response.status_code == 302, form_errors(response)
    assert EndpointOverride.objects.get().price_per_second == {"1080p": "0.05"}
    assert str(ltx.quote_usd(T2V_23, {"duration": 6})) == "0.30"
    assert ltx.quote_usd(T2V_23, {"duration": 6, "resolution": "1440p"}) == endpoint.price_per_second["1440p"] * 6


def test_fal_serves_it_again_clears_unavailable(admin_client, superuser):
    endpoint_mark_unavailable(catalog.BY_ID[T2V_23], FalNotFound("x", status_code=404, detail="Application not found"))
    override = EndpointOverride.objects.get()
    page = admin_client.get(change_url(override)).content.decode()
    assert "fal answered 404: Application not found" in page and 'name="fal_serves_it_again"' in page

    response = admin_client.post(change_url(override), form(fal_serves_it_again="on", reason="fal fixed it"))
    assert response.status_code == 302, form_errors(response)
    override.refresh_from_db()
    assert (override.unavailable_since, override.unavailable_detail) == (None, "")
    assert ltx.endpoint_check_usable(catalog.BY_ID[T2V_23]) == override
    assert list(AuditEntry.objects.order_by("id").values_list("actor_name", "action", "reason")) == [
        ("system", "endpoint_unavailable", "fal answered 404: Application not found"),
        ("root", "endpoint_available", "fal fixed it")]
    # the box is offered only while it is marked
    assert 'name="fal_serves_it_again"' not in admin_client.get(change_url(override)).content.decode()


def test_saving_without_a_change_records_nothing(admin_client):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23)
    assert admin_client.post(change_url(override), form()).status_code == 302
    assert not AuditEntry.objects.exists()


def test_a_reason_is_required(admin_client):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23)
    response = admin_client.post(change_url(override), form(enabled=None, reason=""))
    assert list(form_errors(response)) == ["reason"]
    assert EndpointOverride.objects.get().enabled is True


def test_nobody_deletes_an_override_in_the_admin(admin_client):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23, enabled=False)
    assert admin_client.post(f"{LIST}{override.pk}/delete/", {"post": "yes"}).status_code == 403
    assert EndpointOverride.objects.filter(pk=override.pk).exists()


# --- staff and moderators: no changes -----------------------------------------------------------

@pytest.fixture(params=["moderator", "staff"])
def other_staff(request, moderator) -> Client:
    client = Client()
    client.force_login(moderator if request.param == "moderator" else StaffFactory(username="ops"))
    return client


def test_staff_and_moderators_cannot_see_or_change_overrides(other_staff, superuser):
    override = EndpointOverride.objects.create(endpoint_id=T2V_23)
    before = state_of(T2V_23)
    assert other_staff.get(LIST).status_code == 403
    assert other_staff.get(change_url(override)).status_code == 403
    assert other_staff.post(change_url(override), form(enabled=None, retired="on")).status_code == 403
    assert other_staff.post(ADD, form(endpoint_id=T2V_20, enabled=None)).status_code == 403
    assert state_of(T2V_23) == before and state_of(T2V_20) is None
    assert not AuditEntry.objects.exists()


def test_the_services_refuse_without_the_permission(moderator):
    endpoint_mark_unavailable(catalog.BY_ID[T2V_23], FalNotFound("x", status_code=404, detail="gone"))
    before = state_of(T2V_23)
    with pytest.raises(PermissionDenied):
        endpoint_override_set(T2V_23, enabled=False, retired=False, replacement="", price_per_second={}, by=moderator)
    with pytest.raises(PermissionDenied):
        endpoint_mark_available(T2V_23, by=moderator)
    mismatch = SchemaMismatch.objects.create(endpoint_id=T2V_23, field="fps", message="no", value=50)
    with pytest.raises(PermissionDenied):
        schema_mismatch_dismiss(mismatch, by=moderator)
    assert state_of(T2V_23) == before and SchemaMismatch.objects.filter(pk=mismatch.pk).exists()
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["endpoint_unavailable"]


def test_the_service_refuses_an_endpoint_outside_the_catalog(superuser):
    with pytest.raises(InputError) as refused:
        endpoint_override_set("fal-ai/other/model", enabled=False, retired=False, replacement="",
                              price_per_second={}, by=superuser)
    assert list(refused.value.errors) == ["endpoint_id"]
    assert not EndpointOverride.objects.exists()


def test_marking_available_what_is_not_marked_changes_nothing(superuser):
    EndpointOverride.objects.create(endpoint_id=T2V_23)
    assert endpoint_mark_available(T2V_23, by=superuser) is False
    assert endpoint_mark_available(T2V_20, by=superuser) is False
    assert not AuditEntry.objects.exists()


# --- schema mismatches --------------------------------------------------------------------------

@pytest.fixture
def mismatch() -> SchemaMismatch:
    return SchemaMismatch.objects.create(endpoint_id=T2V_23, field="fps", message="Input should be 24 or 25",
                                         value=50, count=3)


def test_schema_mismatches_are_listed_read_only(admin_client, mismatch):
    response = admin_client.get(MISMATCHES)
    page = response.content.decode()
    assert response.status_code == 200
    for text in (T2V_23, "fps", "Input should be 24 or 25", ">50<", ">3<"):
        assert text in page, text
    assert admin_client.get(MISMATCHES + "add/").status_code == 403
    assert admin_client.post(f"{MISMATCHES}{mismatch.pk}/change/", {"count": "0"}).status_code == 403
    assert SchemaMismatch.objects.get().count == 3


def test_a_superuser_dismisses_a_schema_mismatch_with_a_reason(admin_client, superuser, mismatch):
    response = run_action(admin_client, "generations/schemamismatch", "dismiss", [mismatch.pk],
                          reason="catalog updated")
    assert "Dismiss: 1 done." in response.content.decode()
    assert not SchemaMismatch.objects.exists()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id, entry.reason) == (
        superuser, "schema_mismatch_dismiss", "schema_mismatch", str(mismatch.pk), "catalog updated")
    assert (entry.before["endpoint_id"], entry.before["field"], entry.before["count"]) == (T2V_23, "fps", 3)


def test_staff_and_moderators_cannot_dismiss(other_staff, mismatch):
    assert other_staff.get(MISMATCHES).status_code == 403
    response = run_action(other_staff, "generations/schemamismatch", "dismiss", [mismatch.pk])
    assert response.status_code == 403
    assert SchemaMismatch.objects.filter(pk=mismatch.pk).exists() and not AuditEntry.objects.exists()


def test_the_audit_values_are_plain_json(superuser):
    endpoint_override_set(T2V_23, enabled=True, retired=False, replacement="", price_per_second={"2160p": "0.3"},
                          by=superuser)
    entry = AuditEntry.objects.get()
    assert json.loads(json.dumps(entry.after)) == {"enabled": True, "retired": False, "replacement": "",
                                                   "price_per_second": {"2160p": "0.3"}}
    assert entry.created_at <= timezone.now()
