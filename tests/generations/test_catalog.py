"""Every catalog endpoint, as the studio validates and prices it (generations.ltx over
fal_protocol.catalog), the operator's overrides, and what fal's answers teach the catalog."""
from decimal import Decimal

import pytest

from fal_protocol import catalog
from fal_protocol.catalog import BY_ID, ENDPOINTS
from fal_protocol.client import FalNotFound, FalRejected
from generations import ltx
from generations.models import EndpointOverride, SchemaMismatch
from generations.services.catalog import endpoint_gone, endpoint_mark_unavailable, schema_mismatches_record

IMAGE = "https://example.com/a.png"
V20 = [e for e in ENDPOINTS if e.version == "2.0"]
V23 = [e for e in ENDPOINTS if e.version == "2.3"]

# What each endpoint offers, written out here rather than read from the catalog.
EXPECTED = {
    "fal-ai/ltx-2/text-to-video": ("2.0", "t2v", "standard", (6, 8, 10), (25, 50), ("16:9",)),
    "fal-ai/ltx-2/text-to-video/fast": ("2.0", "t2v", "fast", (6, 8, 10, 12, 14, 16, 18, 20), (25, 50), ("16:9",)),
    "fal-ai/ltx-2/image-to-video": ("2.0", "i2v", "standard", (6, 8, 10), (25, 50), ("16:9",)),
    "fal-ai/ltx-2/image-to-video/fast": ("2.0", "i2v", "fast", (6, 8, 10, 12, 14, 16, 18, 20), (25, 50), ("16:9",)),
    "fal-ai/ltx-2.3/text-to-video": ("2.3", "t2v", "standard", (6, 8, 10), (24, 25, 48, 50), ("16:9", "9:16")),
    "fal-ai/ltx-2.3/text-to-video/fast": ("2.3", "t2v", "fast", (6, 8, 10, 12, 14, 16, 18, 20), (24, 25, 48, 50),
                                          ("16:9", "9:16")),
    "fal-ai/ltx-2.3/image-to-video": ("2.3", "i2v", "standard", (6, 8, 10), (24, 25, 48, 50),
                                      ("auto", "16:9", "9:16")),
    "fal-ai/ltx-2.3/image-to-video/fast": ("2.3", "i2v", "fast", (6, 8, 10, 12, 14, 16, 18, 20), (24, 25, 48, 50),
                                           ("auto", "16:9", "9:16")),
}
# USD per second at 1080p / 1440p / 2160p (fal's pages; 2.3 i2v fast unconfirmed).
RATES = {
    "fal-ai/ltx-2/text-to-video": ("0.06", "0.12", "0.24"),
    "fal-ai/ltx-2/text-to-video/fast": ("0.04", "0.08", "0.16"),
    "fal-ai/ltx-2/image-to-video": ("0.06", "0.12", "0.24"),
    "fal-ai/ltx-2/image-to-video/fast": ("0.04", "0.08", "0.16"),
    "fal-ai/ltx-2.3/text-to-video": ("0.08", "0.16", "0.32"),
    "fal-ai/ltx-2.3/text-to-video/fast": ("0.04", "0.08", "0.16"),
    "fal-ai/ltx-2.3/image-to-video": ("0.06", "0.12", "0.24"),
    "fal-ai/ltx-2.3/image-to-video/fast": ("0.04", "0.08", "0.16"),
}


def base(endpoint, **fields):
    return {"prompt": "x", **({"image_url": IMAGE} if endpoint.kind == "i2v" else {}), **fields}


def test_the_catalog_holds_exactly_the_expected_endpoints():
    assert {e.id for e in ENDPOINTS} == set(EXPECTED)
    for endpoint in ENDPOINTS:
        version, kind, tier, durations, fps, aspects = EXPECTED[endpoint.id]
        assert (endpoint.version, endpoint.kind, endpoint.tier) == (version, kind, tier)
        assert endpoint.fields_by_name["duration"].enum == durations
        assert endpoint.fields_by_name["fps"].enum == fps
        assert endpoint.fields_by_name["aspect_ratio"].enum == aspects
        assert endpoint.fields_by_name["resolution"].enum == ("1080p", "1440p", "2160p")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_every_allowed_value_is_accepted_and_sent_in_the_endpoints_wire_type(endpoint):
    _, _, _, durations, fps_values, aspects = EXPECTED[endpoint.id]
    as_wire = str if endpoint.version == "2.0" else int
    for duration in durations:
        for given in (duration, str(duration)):  # users may send numbers as ints or digit strings
            data = ltx.validate_input(endpoint, base(endpoint, duration=given))
            assert data["duration"] == as_wire(duration)
    for fps in fps_values:
        assert ltx.validate_input(endpoint, base(endpoint, fps=fps))["fps"] == as_wire(fps)
    for aspect in aspects:
        assert ltx.validate_input(endpoint, base(endpoint, aspect_ratio=aspect))["aspect_ratio"] == aspect
    for resolution in ("1080p", "1440p", "2160p"):
        assert ltx.validate_input(endpoint, base(endpoint, resolution=resolution))["resolution"] == resolution


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_every_value_outside_an_enum_is_refused_naming_the_field_and_the_allowed_values(endpoint):
    _, _, _, durations, fps_values, aspects = EXPECTED[endpoint.id]
    refused = {"duration": [durations[0] - 1, durations[-1] + 1, durations[-1] + 2, 7, 6.0, True, "6s"],
               "fps": [23, 30, 51, *([24, 48] if endpoint.version == "2.0" else [])],
               "aspect_ratio": ["1:1", "4:3", *(["9:16"] if endpoint.version == "2.0" else []),
                                *(["auto"] if "auto" not in aspects else [])],
               "resolution": ["720p", "4k"]}
    for field, values in refused.items():
        allowed = ", ".join(str(v) for v in endpoint.fields_by_name[field].enum)
        for value in values:
            with pytest.raises(ltx.InputError) as info:
                ltx.validate_input(endpoint, base(endpoint, **{field: value}))
            assert list(info.value.errors) == [field], (field, value)
            assert f"allowed values: {allowed}" in info.value.errors[field]


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.tier == "fast"], ids=lambda e: e.id)
def test_fast_longer_than_ten_seconds_only_at_25_fps_and_1080p(endpoint):
    assert ltx.validate_input(endpoint, base(endpoint, duration=20))["duration"] in (20, "20")
    assert ltx.validate_input(endpoint, base(endpoint, duration=10, fps=50, resolution="2160p"))
    for other in ({"fps": 50}, {"resolution": "1440p"}, *([{"fps": 24}, {"fps": 48}] if endpoint.version == "2.3"
                                                         else [])):
        with pytest.raises(ltx.InputError) as info:
            ltx.validate_input(endpoint, base(endpoint, duration=12, **other))
        assert info.value.errors == {"duration": "12 seconds is only available at 25 fps and 1080p; use 6, 8 or 10 "
                                                 "seconds for other settings"}


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.tier == "standard"], ids=lambda e: e.id)
def test_standard_tiers_stop_at_ten_seconds(endpoint):
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(endpoint, base(endpoint, duration=12))
    assert info.value.errors == {"duration": "12 is not allowed; allowed values: 6, 8, 10 seconds"}


def test_2_3_defaults_are_integers_and_image_to_video_follows_its_image():
    t2v = ltx.validate_input(BY_ID["fal-ai/ltx-2.3/text-to-video"], {"prompt": "x"})
    assert t2v == {"prompt": "x", "duration": 6, "resolution": "1080p", "fps": 25, "generate_audio": True,
                   "aspect_ratio": "16:9"}
    i2v = ltx.validate_input(BY_ID["fal-ai/ltx-2.3/image-to-video"], {"prompt": "x", "image_url": IMAGE})
    assert i2v["aspect_ratio"] == "auto" and "end_image_url" not in i2v


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_an_end_image_only_on_2_3_image_to_video(endpoint):
    raw = base(endpoint, end_image_url="https://example.com/end.png")
    if endpoint.version == "2.3" and endpoint.kind == "i2v":
        assert ltx.validate_input(endpoint, raw)["end_image_url"] == "https://example.com/end.png"
        with pytest.raises(ltx.InputError) as info:
            ltx.validate_input(endpoint, base(endpoint, end_image_url="ftp://example.com/end.png"))
        assert info.value.errors == {"end_image_url": "must be an http(s) URL or a data:image/… URI"}
    else:
        with pytest.raises(ltx.InputError) as info:
            ltx.validate_input(endpoint, raw)
        assert list(info.value.errors) == ["end_image_url"]
        assert info.value.errors["end_image_url"].startswith(f"unknown field for {endpoint.id}")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_every_endpoint_is_priced_as_fals_table_says(endpoint):
    for resolution, rate in zip(("1080p", "1440p", "2160p"), RATES[endpoint.id], strict=True):
        for duration in (6, 10):
            data = ltx.validate_input(endpoint, base(endpoint, duration=duration, resolution=resolution))
            assert ltx.price_usd(endpoint, data) == Decimal(rate) * duration
    assert endpoint.price_confirmed == (endpoint.id != "fal-ai/ltx-2.3/image-to-video/fast")


@pytest.mark.parametrize("version, short, expected", [
    ("2.3", "t2v", "fal-ai/ltx-2.3/text-to-video"),
    ("2.3", "t2v-fast", "fal-ai/ltx-2.3/text-to-video/fast"),
    ("2.3", "i2v", "fal-ai/ltx-2.3/image-to-video"),
    ("2.3", "i2v-fast", "fal-ai/ltx-2.3/image-to-video/fast"),
    ("2.0", "i2v-fast", "fal-ai/ltx-2/image-to-video/fast"),
    ("2.3", "fal-ai/ltx-2/text-to-video", "fal-ai/ltx-2/text-to-video"),  # an id always means itself
    ("2.3", "fal-ai/ltxv-2/image-to-video", "fal-ai/ltx-2/image-to-video"),  # the seed's aliases stay 2.0
    ("2.0", "fal-ai/ltx-2.3/text-to-video", "fal-ai/ltx-2.3/text-to-video"),
])
def test_short_names_follow_the_operators_version(settings, version, short, expected):
    settings.STUDIO_LTX_VERSION = version
    assert ltx.resolve_model(short).id == expected


def test_the_default_version_is_2_3():
    assert ltx.version() == "2.3"
    assert ltx.resolve_model("t2v").id == "fal-ai/ltx-2.3/text-to-video"


def test_portrait_output_is_tall_and_auto_follows_the_start_image():
    t2v = BY_ID["fal-ai/ltx-2.3/text-to-video"]
    portrait = t2v.output({"resolution": "1080p", "fps": 24, "duration": 8, "aspect_ratio": "9:16"})
    assert (portrait.width, portrait.height, portrait.num_frames) == (1080, 1920, 192)
    i2v = BY_ID["fal-ai/ltx-2.3/image-to-video"]
    params = {"resolution": "1440p", "fps": 48, "duration": 6, "aspect_ratio": "auto"}
    assert (i2v.output(params, portrait_source=True).width, i2v.output(params, portrait_source=True).height) == (
        1440, 2560)
    assert (i2v.output(params).width, i2v.output(params).height) == (2560, 1440)


# --- the operator's overrides --------------------------------------------------------------------

@pytest.mark.django_db
def test_an_operator_price_overrides_the_catalog_for_the_resolutions_it_names():
    endpoint = BY_ID["fal-ai/ltx-2.3/image-to-video/fast"]
    override = EndpointOverride.objects.create(endpoint_id=endpoint.id, price_per_second={"1080p": "0.05"})
    data = ltx.validate_input(endpoint, base(endpoint, duration=8))
    assert ltx.price_usd(endpoint, data, override) == Decimal("0.40")
    assert ltx.price_usd(endpoint, {**data, "resolution": "1440p"}, override) == Decimal("0.64")
    assert ltx.quote_usd(endpoint.id, {"duration": 8}) == Decimal("0.40")


@pytest.mark.django_db
@pytest.mark.parametrize("columns, message", [
    ({"enabled": False}, "fal-ai/ltx-2/text-to-video is disabled on this studio"),
    ({"retired": True, "replacement": "fal-ai/ltx-2.3/text-to-video"},
     "fal-ai/ltx-2/text-to-video has been retired; use fal-ai/ltx-2.3/text-to-video instead"),
    ({"retired": True}, "fal-ai/ltx-2/text-to-video has been retired"),
    ({"unavailable_since": "2026-12-01T00:00:00Z", "replacement": "fal-ai/ltx-2.3/text-to-video"},
     "fal-ai/ltx-2/text-to-video is no longer available at fal; use fal-ai/ltx-2.3/text-to-video instead"),
])
def test_a_disabled_retired_or_gone_endpoint_is_refused_naming_model_and_replacement(columns, message):
    endpoint = BY_ID["fal-ai/ltx-2/text-to-video"]
    EndpointOverride.objects.create(endpoint_id=endpoint.id, **columns)
    with pytest.raises(ltx.InputError) as info:
        ltx.endpoint_check_usable(endpoint)
    assert info.value.errors == {"model": message}
    assert ltx.endpoint_check_usable(BY_ID["fal-ai/ltx-2.3/text-to-video"]) is None


@pytest.mark.django_db
def test_an_override_that_changes_nothing_leaves_the_endpoint_usable():
    endpoint = BY_ID["fal-ai/ltx-2/text-to-video"]
    override = EndpointOverride.objects.create(endpoint_id=endpoint.id, replacement="fal-ai/ltx-2.3/text-to-video")
    assert ltx.endpoint_check_usable(endpoint) == override


# --- what fal's answers teach --------------------------------------------------------------------

def test_only_404_and_410_mean_the_endpoint_is_gone():
    assert endpoint_gone(FalNotFound("gone", status_code=404))
    assert endpoint_gone(FalRejected("gone", status_code=410))
    assert not endpoint_gone(FalRejected("bad input", status_code=422))
    assert not endpoint_gone(FalRejected("forbidden", status_code=403))


@pytest.mark.django_db
def test_marking_unavailable_keeps_the_first_sighting():
    endpoint = BY_ID["fal-ai/ltx-2/image-to-video"]
    endpoint_mark_unavailable(endpoint, FalNotFound("x", status_code=404, detail="Application not found"))
    first = EndpointOverride.objects.get(endpoint_id=endpoint.id)
    assert first.unavailable_since is not None
    assert first.unavailable_detail == "fal answered 404: Application not found"
    endpoint_mark_unavailable(endpoint, FalRejected("x", status_code=410, detail="Gone"))
    again = EndpointOverride.objects.get(endpoint_id=endpoint.id)
    assert (again.unavailable_since, again.unavailable_detail) == (first.unavailable_since, first.unavailable_detail)
    assert EndpointOverride.objects.count() == 1


@pytest.mark.django_db
def test_a_422_on_a_catalog_field_is_counted_as_schema_drift_and_others_are_not():
    endpoint = BY_ID["fal-ai/ltx-2.3/text-to-video"]
    detail = [{"loc": ["body", "fps"], "msg": "Input should be 24 or 25", "type": "enum", "input": 50},
              {"loc": ["body", "seed"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
              {"loc": ["query"], "msg": "odd", "type": "x"}, "not an item"]
    error = FalRejected("x", status_code=422, detail=detail)
    assert schema_mismatches_record(endpoint, error, {"fps": 50, "prompt": "x"}) == ["fps"]
    assert schema_mismatches_record(endpoint, error, {"fps": 50, "prompt": "x"}) == ["fps"]
    mismatch = SchemaMismatch.objects.get()
    assert (mismatch.endpoint_id, mismatch.field, mismatch.message, mismatch.value, mismatch.count) == (
        endpoint.id, "fps", "Input should be 24 or 25", 50, 2)
    assert schema_mismatches_record(endpoint, FalRejected("x", status_code=400, detail=detail), {}) == []
    assert SchemaMismatch.objects.get().count == 2


def test_every_short_name_has_an_endpoint_in_every_version():
    for version in catalog.VERSIONS:
        for short in catalog.SHORT_NAMES:
            assert catalog.endpoint_for(short, version=version) is not None


@pytest.mark.django_db
def test_a_price_override_edited_by_hand_into_nonsense_keeps_the_catalog_price():
    endpoint = BY_ID["fal-ai/ltx-2.3/text-to-video"]
    override = EndpointOverride.objects.create(endpoint_id=endpoint.id,
                                               price_per_second={"1080p": "abc", "1440p": "-1", "2160p": "0.5"})
    assert ltx.rates(endpoint, override) == {"1080p": Decimal("0.08"), "1440p": Decimal("0.16"),
                                             "2160p": Decimal("0.5")}
