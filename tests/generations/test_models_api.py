"""The catalog over REST: `GET /api/v1/models/`, `POST /api/v1/price/` (no side effect), creates of LTX-2.3
(portrait, end image upload), refused models, and the OpenAPI schema's per-model input."""
from __future__ import annotations

import base64
import io
import json
import uuid
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from generations.models import EndpointOverride, Generation, Project
from generations.services.create import generation_create
from storage.models import StoredObject, UsageEntry
from storage.quotas import estimate_bytes

pytestmark = pytest.mark.django_db
URL = "https://example.com/start.png"

# Every endpoint, written out: version, kind, tier, durations, fps, aspect ratios, image fields, rates.
STANDARD, FAST = [6, 8, 10], [6, 8, 10, 12, 14, 16, 18, 20]
EXPECTED = {
    "fal-ai/ltx-2/text-to-video": ("2.0", "t2v", "standard", STANDARD, [25, 50], ["16:9"], [],
                                   ["0.06", "0.12", "0.24"]),
    "fal-ai/ltx-2/text-to-video/fast": ("2.0", "t2v", "fast", FAST, [25, 50], ["16:9"], [], ["0.04", "0.08", "0.16"]),
    "fal-ai/ltx-2/image-to-video": ("2.0", "i2v", "standard", STANDARD, [25, 50], ["16:9"], ["image_url"],
                                    ["0.06", "0.12", "0.24"]),
    "fal-ai/ltx-2/image-to-video/fast": ("2.0", "i2v", "fast", FAST, [25, 50], ["16:9"], ["image_url"],
                                         ["0.04", "0.08", "0.16"]),
    "fal-ai/ltx-2.3/text-to-video": ("2.3", "t2v", "standard", STANDARD, [24, 25, 48, 50], ["16:9", "9:16"], [],
                                     ["0.08", "0.16", "0.32"]),
    "fal-ai/ltx-2.3/text-to-video/fast": ("2.3", "t2v", "fast", FAST, [24, 25, 48, 50], ["16:9", "9:16"], [],
                                          ["0.04", "0.08", "0.16"]),
    "fal-ai/ltx-2.3/image-to-video": ("2.3", "i2v", "standard", STANDARD, [24, 25, 48, 50], ["auto", "16:9", "9:16"],
                                      ["image_url", "end_image_url"], ["0.06", "0.12", "0.24"]),
    "fal-ai/ltx-2.3/image-to-video/fast": ("2.3", "i2v", "fast", FAST, [24, 25, 48, 50], ["auto", "16:9", "9:16"],
                                           ["image_url", "end_image_url"], ["0.04", "0.08", "0.16"]),
}
SHORT_NAMES_23 = {"fal-ai/ltx-2.3/text-to-video": "t2v", "fal-ai/ltx-2.3/text-to-video/fast": "t2v-fast",
                  "fal-ai/ltx-2.3/image-to-video": "i2v", "fal-ai/ltx-2.3/image-to-video/fast": "i2v-fast"}


@pytest.fixture
def no_image_fetch(monkeypatch):
    """Fails the test if anything reads an image: a price checks only the form of image fields."""
    def refuse(*args, **kwargs):
        raise AssertionError("an image was fetched or decoded")

    monkeypatch.setattr("generations.images._fetch", refuse)
    monkeypatch.setattr("generations.images._detect", refuse)


def png(color=(200, 80, 20), size=(64, 36)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_error(response, status, code, fields):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"code", "message", "details"} and body["code"] == code
    assert set(body["details"]) == set(fields), body
    return body["details"]


def assert_nothing_made(task_queue, *, generations=0, entries=0):
    assert Generation.objects.count() == generations and UsageEntry.objects.count() == entries
    assert StoredObject.objects.count() == 0 and task_queue.calls == []


# --- GET /api/v1/models/ ------------------------------------------------------------------------

def test_models_lists_every_endpoint_with_its_fields_prices_and_short_name(api):
    response = api.get("/api/v1/models/")
    assert response.status_code == 200
    models = response.json()
    assert [m["id"] for m in models] == list(EXPECTED)
    for model in models:
        version, kind, tier, durations, fps, aspects, images, rates = EXPECTED[model["id"]]
        assert (model["version"], model["kind"], model["tier"]) == (version, kind, tier)
        assert (model["enabled"], model["retired"], model["available"], model["refusal"], model["replacement"]) == (
            True, False, True, None, None)
        assert model["short_name"] == SHORT_NAMES_23.get(model["id"])
        fields = model["fields"]
        assert list(fields) == ["prompt", "duration", "resolution", "fps", "generate_audio", "aspect_ratio", *images]
        assert fields["prompt"] == {"type": "text", "required": True, "max": 2500,
                                    "description": "what the video shows and sounds like"}
        assert fields["duration"] == {"type": "integer", "required": False, "enum": durations, "default": 6,
                                      "description": "seconds"}
        assert fields["fps"]["enum"] == fps and fields["fps"]["default"] == 25
        assert fields["aspect_ratio"]["enum"] == aspects and fields["aspect_ratio"]["default"] == aspects[0]
        assert fields["resolution"] == {"type": "choice", "required": False, "enum": ["1080p", "1440p", "2160p"],
                                        "default": "1080p"}
        assert fields["generate_audio"] == {"type": "boolean", "required": False, "default": True}
        for image in images:
            assert fields[image]["type"] == "image" and fields[image]["required"] == (image == "image_url")
        example = {"prompt": "A cowboy walking through a dusty town at high noon",
                   **({"image_url": "https://example.com/start.png"} if kind == "i2v" else {})}
        assert model["price"] == {
            "unit": "second", "per_second": dict(zip(["1080p", "1440p", "2160p"], rates, strict=True)),
            "confirmed": model["id"] != "fal-ai/ltx-2.3/image-to-video/fast", "overridden": False,
            "example": {"input": example, "cost_usd": f"{Decimal(rates[0]) * 6:.2f}"}}
    aliases = {m["id"]: m["aliases"] for m in models if m["aliases"]}
    assert aliases == {"fal-ai/ltx-2/text-to-video": ["fal-ai/ltxv-2/text-to-video"],
                       "fal-ai/ltx-2/image-to-video": ["fal-ai/ltxv-2/image-to-video"]}


def test_under_ltx_2_0_the_short_names_are_on_the_2_0_endpoints(api, settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    shown = {m["id"]: m["short_name"] for m in api.get("/api/v1/models/").json() if m["short_name"]}
    assert shown == {"fal-ai/ltx-2/text-to-video": "t2v", "fal-ai/ltx-2/text-to-video/fast": "t2v-fast",
                     "fal-ai/ltx-2/image-to-video": "i2v", "fal-ai/ltx-2/image-to-video/fast": "i2v-fast"}


def test_models_show_the_operators_prices_and_refused_endpoints(api):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", price_per_second={"1080p": "0.05"})
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", retired=True,
                                    replacement="fal-ai/ltx-2.3/text-to-video")
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video/fast", enabled=False)
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/image-to-video", unavailable_since=timezone.now(),
                                    unavailable_detail="fal answered 404")
    models = {m["id"]: m for m in api.get("/api/v1/models/").json()}

    priced = models["fal-ai/ltx-2.3/text-to-video"]
    assert priced["price"]["per_second"] == {"1080p": "0.05", "1440p": "0.16", "2160p": "0.32"}
    assert priced["price"]["overridden"] is True and priced["price"]["example"]["cost_usd"] == "0.30"
    assert (priced["enabled"], priced["available"], priced["refusal"]) == (True, True, None)

    def state(model_id):
        model = models[model_id]
        return model["enabled"], model["retired"], model["available"], model["replacement"], model["refusal"]

    assert state("fal-ai/ltx-2/text-to-video") == (
        False, True, True, "fal-ai/ltx-2.3/text-to-video",
        "fal-ai/ltx-2/text-to-video has been retired; use fal-ai/ltx-2.3/text-to-video instead")
    assert state("fal-ai/ltx-2/text-to-video/fast") == (
        False, False, True, None, "fal-ai/ltx-2/text-to-video/fast is disabled on this studio")
    assert state("fal-ai/ltx-2/image-to-video") == (
        True, False, False, None, "fal-ai/ltx-2/image-to-video is no longer available at fal")
    assert models["fal-ai/ltx-2/text-to-video"]["price"]["overridden"] is False


def test_models_reads_every_override_in_one_query(api, django_assert_num_queries, django_assert_max_num_queries):
    api.get("/api/v1/models/")  # the key's last use is recorded once; later requests are steady
    with django_assert_max_num_queries(3) as none:
        assert api.get("/api/v1/models/").status_code == 200
    for endpoint_id in EXPECTED:
        EndpointOverride.objects.create(endpoint_id=endpoint_id, price_per_second={"1080p": "0.01"})
    with django_assert_num_queries(len(none.captured_queries)) as every:
        models = api.get("/api/v1/models/").json()
    assert {m["price"]["per_second"]["1080p"] for m in models} == {"0.01"}
    assert sum("endpointoverride" in query["sql"] for query in every.captured_queries) == 1


def test_models_needs_a_key():
    response = APIClient().get("/api/v1/models/")
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


# --- POST /api/v1/price/ -----------------------------------------------------------------------

# (model, input, exact endpoint, cost, per second, seconds, normalised values)
PRICES = [
    ("fal-ai/ltx-2/text-to-video", {"duration": 8}, "fal-ai/ltx-2/text-to-video", "0.48", "0.06", 8,
     {"duration": "8", "fps": "25", "aspect_ratio": "16:9"}),
    ("fal-ai/ltxv-2/text-to-video", {"resolution": "2160p", "fps": 50}, "fal-ai/ltx-2/text-to-video", "1.44", "0.24",
     6, {"duration": "6", "fps": "50"}),
    ("fal-ai/ltx-2/text-to-video/fast", {"duration": "20"}, "fal-ai/ltx-2/text-to-video/fast", "0.80", "0.04", 20,
     {"duration": "20"}),
    ("fal-ai/ltx-2/image-to-video", {"image_url": URL, "resolution": "1440p", "duration": 10},
     "fal-ai/ltx-2/image-to-video", "1.20", "0.12", 10, {"image_url": URL}),
    ("t2v", {"aspect_ratio": "9:16"}, "fal-ai/ltx-2.3/text-to-video", "0.48", "0.08", 6,
     {"duration": 6, "fps": 25, "aspect_ratio": "9:16"}),
    ("fal-ai/ltx-2.3/text-to-video", {"aspect_ratio": "9:16", "resolution": "2160p", "duration": 10, "fps": 48},
     "fal-ai/ltx-2.3/text-to-video", "3.20", "0.32", 10, {"fps": 48, "aspect_ratio": "9:16"}),
    ("t2v-fast", {"duration": 20}, "fal-ai/ltx-2.3/text-to-video/fast", "0.80", "0.04", 20, {"duration": 20}),
    ("i2v", {"image_url": URL, "end_image_url": "https://example.com/end.png"}, "fal-ai/ltx-2.3/image-to-video",
     "0.36", "0.06", 6, {"aspect_ratio": "auto", "end_image_url": "https://example.com/end.png"}),
    ("i2v-fast", {"image_url": "data:image/png;base64,iVBORw0KGgo=", "resolution": "1440p", "duration": 8},
     "fal-ai/ltx-2.3/image-to-video/fast", "0.64", "0.08", 8, {"image_url": "studio:start-image"}),
]


@pytest.mark.parametrize("model, given, endpoint, cost, per_second, seconds, normalised", PRICES,
                         ids=[f"{p[0]}-{p[3]}" for p in PRICES])
def test_price_quotes_each_endpoint_without_any_side_effect(api, task_queue, no_image_fetch, model, given, endpoint,
                                                            cost, per_second, seconds, normalised):
    response = api.post("/api/v1/price/", {"model": model, "input": {"prompt": "a fox", **given}}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body == {"model": endpoint, "cost_usd": cost, "currency": "USD", "input": body["input"],
                    "per_second": per_second, "seconds": seconds}
    assert body["input"]["prompt"] == "a fox" and normalised.items() <= body["input"].items()
    assert_nothing_made(task_queue)
    assert not Project.objects.exists()  # not even the Inbox a first create makes


def test_price_follows_the_operators_price_and_a_source_does_not_change_it(api, user, task_queue):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video", price_per_second={"1440p": "0.125"})
    source, _ = generation_create(owner=user, model="t2v", input={"prompt": "the first take"})
    task_queue.calls.clear()
    body = {"model": "t2v", "input": {"prompt": "a fox", "resolution": "1440p", "duration": 8},
            "source": str(source.pk)}
    answer = api.post("/api/v1/price/", body, format="json").json()
    assert (answer["cost_usd"], answer["per_second"], answer["seconds"]) == ("1.00", "0.125", 8)
    assert_nothing_made(task_queue, generations=1, entries=1)


@pytest.mark.parametrize("body, details", [
    ({"model": "sora", "input": {"prompt": "x"}}, {"model": "unknown model 'sora'; allowed: "}),
    ({"input": {"prompt": "x"}}, {"model": "This field is required."}),
    ({"model": "t2v"}, {"input": "This field is required."}),
    ({"model": "t2v", "input": "a fox"}, {"input": "must be a JSON object"}),
    ({"model": "t2v", "input": {"duration": 7, "fps": 30, "aspect_ratio": "4:3", "resolution": "720p"}},
     {"input.prompt": "is required", "input.duration": "7 is not allowed; allowed values: 6, 8, 10 seconds",
      "input.fps": "30 is not allowed; allowed values: 24, 25, 48, 50",
      "input.aspect_ratio": "'4:3' is not allowed; allowed values: 16:9, 9:16",
      "input.resolution": "'720p' is not allowed; allowed values: 1080p, 1440p, 2160p"}),
    ({"model": "fal-ai/ltx-2/text-to-video", "input": {"prompt": "x", "aspect_ratio": "9:16", "fps": 24}},
     {"input.aspect_ratio": "'9:16' is not allowed; allowed values: 16:9",
      "input.fps": "24 is not allowed; allowed values: 25, 50"}),
    ({"model": "t2v-fast", "input": {"prompt": "x", "duration": 12, "fps": 50}},
     {"input.duration": "12 seconds is only available at 25 fps and 1080p"}),
    ({"model": "i2v", "input": {"prompt": "x"}}, {"input.image_url": "is required for fal-ai/ltx-2.3/image-to-video"}),
    ({"model": "i2v", "input": {"prompt": "x", "image_url": "ftp://example.com/a.png", "end_image_url": 3}},
     {"input.image_url": "must be an http(s) URL", "input.end_image_url": "must be an http(s) URL"}),
    ({"model": "fal-ai/ltx-2/image-to-video", "input": {"prompt": "x", "image_url": URL, "end_image_url": URL}},
     {"input.end_image_url": "unknown field for fal-ai/ltx-2/image-to-video"}),
    ({"model": "t2v", "input": {"prompt": "x", "duration": None}},
     {"input.duration": "must not be null; leave it out to use the default 6"}),
    ({"model": "t2v", "input": {"prompt": "x"}, "source": "not-a-uuid"}, {"source": "Must be a valid UUID."}),
    ({"model": "t2v", "input": {"prompt": "x"}, "source": str(uuid.uuid4())},
     {"source": "no generation of yours has this id"}),
    ({"model": "sora", "input": {"prompt": "x"}, "source": str(uuid.uuid4())},
     {"model": "unknown model", "source": "no generation of yours"}),
])
def test_price_refuses_bad_input_naming_every_field_like_a_create(api, task_queue, no_image_fetch, body, details):
    shown = assert_error(api.post("/api/v1/price/", body, format="json"), 422, "validation_error", details)
    for field, start in details.items():
        assert shown[field].startswith(start), (field, shown[field])
    assert_nothing_made(task_queue)
    # the create refuses the same fields (a source aside: a create takes none yet)
    if "source" not in body:
        create = api.post("/api/v1/generations/", body, format="json")
        assert create.status_code == 422 and set(create.json()["details"]) == set(details)
        assert_nothing_made(task_queue)


def test_price_of_another_users_generation_as_source_is_refused(api, other_user, task_queue):
    theirs, _ = generation_create(owner=other_user, model="t2v", input={"prompt": "their take"})
    task_queue.calls.clear()
    body = {"model": "t2v", "input": {"prompt": "x"}, "source": str(theirs.pk)}
    assert assert_error(api.post("/api/v1/price/", body, format="json"), 422, "validation_error", ["source"]) == {
        "source": "no generation of yours has this id"}


@pytest.mark.parametrize("override, refusal", [
    ({"retired": True, "replacement": "fal-ai/ltx-2.3/text-to-video"},
     "fal-ai/ltx-2/text-to-video has been retired; use fal-ai/ltx-2.3/text-to-video instead"),
    ({"enabled": False}, "fal-ai/ltx-2/text-to-video is disabled on this studio"),
    ({"unavailable_since": timezone.now(), "replacement": "fal-ai/ltx-2.3/text-to-video"},
     "fal-ai/ltx-2/text-to-video is no longer available at fal; use fal-ai/ltx-2.3/text-to-video instead"),
])
def test_a_refused_model_is_422_naming_model_and_its_replacement_for_price_and_create(api, task_queue, override,
                                                                                      refusal):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", **override)
    for alias in ("fal-ai/ltx-2/text-to-video", "fal-ai/ltxv-2/text-to-video"):
        body = {"model": alias, "input": {"prompt": "a fox"}}
        for path in ("/api/v1/price/", "/api/v1/generations/"):
            assert assert_error(api.post(path, body, format="json"), 422, "validation_error", ["model"]) == {
                "model": refusal}
    # bad input as well: a price names every field
    body = {"model": "fal-ai/ltx-2/text-to-video", "input": {"prompt": "a fox", "duration": 7}}
    assert set(assert_error(api.post("/api/v1/price/", body, format="json"), 422, "validation_error",
                            ["model", "input.duration"])) == {"model", "input.duration"}
    assert_nothing_made(task_queue)


# --- creates of LTX-2.3 ----------------------------------------------------------------------------

def test_a_portrait_2_3_text_to_video_is_created_as_asked(api, user, task_queue):
    body = {"model": "t2v", "input": {"prompt": "A lighthouse keeper climbs the stairs", "aspect_ratio": "9:16",
                                      "fps": "24", "duration": 8}}
    response = api.post("/api/v1/generations/", body, format="json")
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert answer["model"] == "fal-ai/ltx-2.3/text-to-video" and answer["cost_usd"] == "0.64"
    assert answer["input"] == {"prompt": "A lighthouse keeper climbs the stairs", "duration": 8, "resolution": "1080p",
                               "fps": 24, "generate_audio": True, "aspect_ratio": "9:16"}
    generation = Generation.objects.get()
    assert generation.model_id == "fal-ai/ltx-2.3/text-to-video" and generation.input == answer["input"]
    assert UsageEntry.objects.get().usd == Decimal("0.64")


def test_a_2_3_image_to_video_takes_start_and_end_images_as_uploads(api, user, task_queue, media_root):
    start, end = png((200, 80, 20)), png((20, 80, 200), size=(48, 27))
    response = api.post("/api/v1/generations/", {
        "model": "fal-ai/ltx-2.3/image-to-video", "input": json.dumps({"prompt": "from dawn to dusk"}),
        "image": SimpleUploadedFile("start.png", start, content_type="image/png"),
        "end_image": SimpleUploadedFile("end.png", end, content_type="image/png")}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["input"]["image_url"] == "studio:start-image"
    assert response.json()["input"]["end_image_url"] == "studio:end-image"
    generation = Generation.objects.get()
    assert generation.input["end_image_url"] == "studio:end-image" and generation.input["aspect_ratio"] == "auto"
    for stored, data, stem in ((generation.start_image, start, "start"), (generation.end_image, end, "end")):
        assert stored.key == f"users/{user.pk}/generations/{generation.pk}/{stem}.png"
        assert (stored.size, stored.content_type, stored.owner) == (len(data), "image/png", user)
        with default_storage.open(stored.key, "rb") as handle:
            assert handle.read() == data
    reserve = UsageEntry.objects.get(job=generation.pk, event="reserve")
    assert reserve.bytes == estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True) + len(start) + len(end)
    assert reserve.usd == Decimal("0.36")


def test_an_end_image_upload_that_is_refused_names_end_image(api, settings, task_queue, media_root):
    body = {"model": "i2v", "input": json.dumps({"prompt": "x", "image_url": "data:image/png;base64,"
                                                 + base64.b64encode(png()).decode()})}
    text = SimpleUploadedFile("end.png", b"not a picture", content_type="image/png")
    assert assert_error(api.post("/api/v1/generations/", {**body, "end_image": text}, format="multipart"),
                        415, "unsupported_media_type", ["end_image"])
    settings.STUDIO_MAX_IMAGE_BYTES = 100
    big = SimpleUploadedFile("end.png", png(size=(400, 400)), content_type="image/png")
    assert assert_error(api.post("/api/v1/generations/", {**body, "end_image": big}, format="multipart"),
                        413, "payload_too_large", ["end_image"])
    assert_nothing_made(task_queue)


def test_an_end_image_for_a_2_0_model_is_422_naming_it(api, task_queue, media_root):
    response = api.post("/api/v1/generations/", {
        "model": "fal-ai/ltx-2/image-to-video", "input": json.dumps({"prompt": "x"}),
        "image": SimpleUploadedFile("start.png", png(), content_type="image/png"),
        "end_image": SimpleUploadedFile("end.png", png(), content_type="image/png")}, format="multipart")
    details = assert_error(response, 422, "validation_error", ["input.end_image_url"])
    assert details["input.end_image_url"].startswith("unknown field for fal-ai/ltx-2/image-to-video")
    assert_nothing_made(task_queue)


# --- the schema ----------------------------------------------------------------------------------

def test_the_schema_documents_models_inputs_per_endpoint_and_the_new_operations(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    assert set(components["ModelEnum"]["enum"]) == {*EXPECTED, "fal-ai/ltxv-2/text-to-video",
                                                    "fal-ai/ltxv-2/image-to-video", "t2v", "t2v-fast", "i2v",
                                                    "i2v-fast"}
    inputs = {schema["title"]: schema for schema in components["LtxInput"]["anyOf"]}
    assert list(inputs) == list(EXPECTED)
    for endpoint_id, (_, _, _, durations, fps, aspects, images, _) in EXPECTED.items():
        properties = inputs[endpoint_id]["properties"]
        assert properties["duration"]["anyOf"][0] == {"type": "integer", "enum": durations}
        assert properties["fps"]["anyOf"][0] == {"type": "integer", "enum": fps}
        assert properties["aspect_ratio"]["allOf"] == [{"type": "string", "enum": aspects}]
        assert [name for name in properties if name.endswith("image_url")] == images
        assert inputs[endpoint_id]["required"] == ["prompt", *(["image_url"] if images else [])]
    for name in ("GenerationCreateRequest", "PriceRequestRequest"):
        assert components[name]["properties"]["input"] == {"$ref": "#/components/schemas/LtxInput"}
    assert "end_image" in components["GenerationCreateRequest"]["properties"]
    models = schema["paths"]["/api/v1/models/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert models["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/CatalogModel"}}
    assert next(iter(models["examples"].values()))["value"][0]["id"] == "fal-ai/ltx-2.3/text-to-video"
    price = schema["paths"]["/api/v1/price/"]["post"]
    answer = price["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/Price"}
    assert next(iter(answer["examples"].values()))["value"]["cost_usd"] == "0.48"
    assert price["requestBody"]["content"]["application/json"]["examples"]
