"""The studio's reading of the catalog for LTX-2.0 (string enums on the wire); LTX-2.3 and the
catalog as a whole are in test_catalog.py."""
from decimal import Decimal

import pytest

from fal_protocol.catalog import BY_ID
from generations import ltx

T2V = BY_ID["fal-ai/ltx-2/text-to-video"]
T2V_FAST = BY_ID["fal-ai/ltx-2/text-to-video/fast"]
I2V = BY_ID["fal-ai/ltx-2/image-to-video"]


def test_defaults_are_applied_and_numbers_become_fal_enum_strings():
    data = ltx.validate_input(T2V, {"prompt": "  a cowboy  ", "duration": 8, "fps": 50})
    assert data == {"prompt": "a cowboy", "duration": "8", "resolution": "1080p", "aspect_ratio": "16:9",
                    "fps": "50", "generate_audio": True}


@pytest.mark.parametrize("name, expected", [
    ("t2v", "fal-ai/ltx-2/text-to-video"),  # STUDIO_LTX_VERSION = 2.0 (below)
    ("t2v-fast", "fal-ai/ltx-2/text-to-video/fast"),
    ("i2v", "fal-ai/ltx-2/image-to-video"),
    ("i2v-fast", "fal-ai/ltx-2/image-to-video/fast"),
    ("fal-ai/ltxv-2/text-to-video", "fal-ai/ltx-2/text-to-video"),
    ("fal-ai/ltxv-2/image-to-video", "fal-ai/ltx-2/image-to-video"),
    ("fal-ai/ltx-2/image-to-video/fast", "fal-ai/ltx-2/image-to-video/fast"),
])
def test_model_names_and_aliases_resolve_to_canonical_ids(name, expected, settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    assert ltx.resolve_model(name).id == expected


def test_unknown_model_names_the_field_and_lists_allowed_ids():
    with pytest.raises(ltx.InputError) as info:
        ltx.resolve_model("fal-ai/ltx-3/text-to-video")
    assert list(info.value.errors) == ["model"]
    assert "fal-ai/ltx-2/text-to-video" in info.value.errors["model"]


@pytest.mark.parametrize("spec, raw, field, allowed_hint", [
    (T2V, {}, "prompt", "required"),
    (T2V, {"prompt": "   "}, "prompt", "required"),
    (T2V, {"prompt": 5}, "prompt", "required"),
    (T2V, {"prompt": "x", "duration": 7}, "duration", "6, 8, 10"),
    (T2V, {"prompt": "x", "duration": "12"}, "duration", "6, 8, 10 seconds"),
    (T2V, {"prompt": "x", "duration": 6.5}, "duration", "6, 8, 10"),
    (T2V, {"prompt": "x", "duration": True}, "duration", "6, 8, 10"),
    (T2V, {"prompt": "x", "resolution": "720p"}, "resolution", "1080p, 1440p, 2160p"),
    (T2V, {"prompt": "x", "fps": 30}, "fps", "25, 50"),
    (T2V, {"prompt": "x", "aspect_ratio": "9:16"}, "aspect_ratio", "16:9"),
    (T2V, {"prompt": "x", "generate_audio": "yes"}, "generate_audio", "true or false"),
    (T2V, {"prompt": "x", "seed": 3}, "seed", "allowed fields"),
    (T2V, {"prompt": "x", "image_url": "https://example.com/a.png"}, "image_url", "allowed fields"),
    (T2V_FAST, {"prompt": "x", "duration": 12, "fps": 50}, "duration", "25 fps and 1080p"),
    (T2V_FAST, {"prompt": "x", "duration": 12, "resolution": "1440p"}, "duration", "25 fps and 1080p"),
    (T2V_FAST, {"prompt": "x", "duration": 13}, "duration", "12, 14"),
    (I2V, {"prompt": "x"}, "image_url", "required"),
    (I2V, {"prompt": "x", "image_url": "ftp://host/a.png"}, "image_url", "http(s) URL"),
])
def test_invalid_input_names_the_field_and_what_is_allowed(spec, raw, field, allowed_hint):
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(spec, raw)
    assert field in info.value.errors
    assert allowed_hint in info.value.errors[field]


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(T2V, {"duration": 7, "resolution": "720p", "fps": 30})
    assert set(info.value.errors) == {"prompt", "duration", "resolution", "fps"}


@pytest.mark.parametrize("spec, field, message", [
    (T2V, "duration", "must not be null; leave it out to use the default 6"),
    (T2V, "resolution", "must not be null; leave it out to use the default 1080p"),
    (T2V, "aspect_ratio", "must not be null; leave it out to use the default 16:9"),
    (T2V, "fps", "must not be null; leave it out to use the default 25"),
    (T2V, "generate_audio", "must not be null; leave it out to use the default true"),
    (T2V, "prompt", "must not be null; it is required"),
    (I2V, "image_url", "must not be null; it is required"),
])
def test_a_null_field_is_refused_as_fal_does_not_taken_as_absent(spec, field, message):
    raw = {"prompt": "x", **({"image_url": "https://example.com/a.png"} if spec.kind == "i2v" else {}), field: None}
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(spec, raw)
    assert info.value.errors == {field: message}


NUL = "must not contain NUL characters (U+0000)"
SURROGATE = "must be valid Unicode text: it holds a lone surrogate (U+D800), which cannot be encoded as UTF-8"


@pytest.mark.parametrize("spec, raw, errors", [
    (T2V, {"prompt": "a\x00b"}, {"prompt": NUL}),
    (T2V, {"prompt": "a\ud800b"}, {"prompt": SURROGATE}),
    (T2V, {"prompt": "x", "resolution": "1080p\x00"}, {"resolution": NUL}),
    (T2V, {"prompt": "x", "seed": ["ok", {"deep": "\ud800"}]}, {"seed": SURROGATE + " (at 1.deep)"}),
    (T2V, {"prompt": "x", "\ud800": 1}, {"input": "has a field name that " + SURROGATE}),
    (I2V, {"prompt": "x", "image_url": "https://example.com/\ud800.png"}, {"image_url": SURROGATE}),
    (I2V, {"prompt": "\x00", "image_url": "data:image/png;base64,\x00"}, {"prompt": NUL, "image_url": NUL}),
])
def test_text_that_cannot_be_stored_or_sent_is_refused_naming_the_field(spec, raw, errors):
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(spec, raw)
    assert info.value.errors == errors


def test_refused_lists_and_objects_are_described_not_repeated():
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(T2V, {"prompt": "x", "duration": [6] * 100_000, "fps": {"a": 1}, "resolution": "r" * 500})
    assert info.value.errors["duration"].startswith("a list is not allowed")
    assert info.value.errors["fps"].startswith("an object is not allowed")
    assert info.value.errors["resolution"].startswith("'" + "r" * 56 + "... is not allowed")


def test_prompt_length_limit_is_configurable(settings):
    settings.STUDIO_PROMPT_MAX_CHARS = 10
    assert ltx.validate_input(T2V, {"prompt": "x" * 10})["prompt"] == "x" * 10
    with pytest.raises(ltx.InputError) as info:
        ltx.validate_input(T2V, {"prompt": "x" * 11})
    assert info.value.errors["prompt"] == "is 11 characters long; at most 10 are allowed"


def test_fast_tier_allows_twenty_seconds_at_25_fps_1080p():
    data = ltx.validate_input(T2V_FAST, {"prompt": "x", "duration": "20"})
    assert (data["duration"], data["fps"], data["resolution"]) == ("20", "25", "1080p")


@pytest.mark.parametrize("spec, raw, price", [
    (T2V, {"prompt": "x"}, Decimal("0.36")),
    (T2V, {"prompt": "x", "duration": 10, "resolution": "2160p"}, Decimal("2.40")),
    (T2V, {"prompt": "x", "duration": 8, "resolution": "1440p", "fps": 50}, Decimal("0.96")),
    (T2V_FAST, {"prompt": "x", "duration": 20}, Decimal("0.80")),
    (I2V, {"prompt": "x", "image_url": "https://example.com/a.png"}, Decimal("0.36")),
])
def test_price_is_rate_times_duration(spec, raw, price):
    assert ltx.price_usd(spec, ltx.validate_input(spec, raw)) == price


def test_upstream_id_follows_the_configured_prefix_for_2_0_only(settings):
    assert ltx.upstream_id(T2V_FAST) == "fal-ai/ltx-2/text-to-video/fast"
    settings.STUDIO_UPSTREAM_MODEL_PREFIX = "fal-ai/ltx-2-next"
    assert ltx.upstream_id(T2V_FAST) == "fal-ai/ltx-2-next/text-to-video/fast"
    assert ltx.upstream_id(BY_ID["fal-ai/ltx-2.3/text-to-video/fast"]) == "fal-ai/ltx-2.3/text-to-video/fast"


@pytest.mark.django_db
@pytest.mark.parametrize("model, chosen, expected", [
    ("t2v", {}, "0.36"),  # the defaults: 6 s at 1080p
    ("t2v-fast", {"duration": "20", "resolution": "1080p", "fps": "25"}, "0.80"),
    ("i2v", {"duration": 10, "resolution": "2160p"}, "2.40"),
    ("t2v", {"duration": None, "resolution": "1440p"}, "0.72"),  # a field not chosen yet: its default
    ("t2v-fast", {"duration": "20", "fps": "50"}, None),  # > 10 s only at 25 fps
    ("t2v", {"duration": "7"}, None),
    ("no-such-model", {}, None),
])
def test_a_quote_prices_the_video_settings_alone(model, chosen, expected, settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    quote = ltx.quote_usd(model, chosen)
    assert (None if quote is None else f"{quote:.2f}") == expected
