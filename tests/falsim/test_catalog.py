"""falsim serves every endpoint of fal_protocol.catalog: validation as fal answers it, renders as
`Endpoint.output` says (size by resolution and aspect ratio, `auto` by the start image, fps, frames),
the end image as the last frame, and endpoints retired like an app fal removed.

Validation runs over real HTTP with prompts carrying `[sim:422]`, so accepted requests fail half-way
and render nothing; the renders are real MP4s at 1/16 scale, probed with PyAV.
"""

import argparse
import base64
import io

import av
import fal_client
import fal_client.client
import httpx
import numpy as np
import pytest
from PIL import Image

from fal_protocol import catalog
from falsim import FalSimulator, add_cli_arguments, simulator_from_args
from falsim.schema import ROUTES, validate_input
from tests.conftest import wait_until
from tests.images import quadrants

KEY = "falsim-id:falsim-secret"
SCALE = 16
CHECK_ONLY = "[sim:422] validation only"  # accepted requests fail half-way: nothing is rendered

V20_T2V, V20_T2V_FAST = "fal-ai/ltx-2/text-to-video", "fal-ai/ltx-2/text-to-video/fast"
V20_I2V, V20_I2V_FAST = "fal-ai/ltx-2/image-to-video", "fal-ai/ltx-2/image-to-video/fast"
ALIAS_T2V, ALIAS_I2V = "fal-ai/ltxv-2/text-to-video", "fal-ai/ltxv-2/image-to-video"
V23_T2V, V23_T2V_FAST = "fal-ai/ltx-2.3/text-to-video", "fal-ai/ltx-2.3/text-to-video/fast"
V23_I2V, V23_I2V_FAST = "fal-ai/ltx-2.3/image-to-video", "fal-ai/ltx-2.3/image-to-video/fast"
V20 = (V20_T2V, V20_T2V_FAST, V20_I2V, V20_I2V_FAST, ALIAS_T2V, ALIAS_I2V)
V23 = (V23_T2V, V23_T2V_FAST, V23_I2V, V23_I2V_FAST)
FAST = (V20_T2V_FAST, V20_I2V_FAST, V23_T2V_FAST, V23_I2V_FAST)
I2V = (V20_I2V, V20_I2V_FAST, ALIAS_I2V, V23_I2V, V23_I2V_FAST)
APP = {**dict.fromkeys((V20_T2V, V20_T2V_FAST, V20_I2V, V20_I2V_FAST), "fal-ai/ltx-2"),
       ALIAS_T2V: "fal-ai/ltxv-2", ALIAS_I2V: "fal-ai/ltxv-2", **dict.fromkeys(V23, "fal-ai/ltx-2.3")}
NOT_AN_IMAGE = "data:image/png;base64,iVBORw0KGgo="  # a valid data URI whose bytes do not decode

# What fal says for each enum, by version and tier (2.0: string enums; 2.3: integer enums).
DURATIONS = {
    ("2.0", "standard"): "Input should be '6', '8' or '10'",
    ("2.0", "fast"): "Input should be '6', '8', '10', '12', '14', '16', '18' or '20'",
    ("2.3", "standard"): "Input should be 6, 8 or 10",
    ("2.3", "fast"): "Input should be 6, 8, 10, 12, 14, 16, 18 or 20",
}
FPS = {"2.0": "Input should be '25' or '50'", "2.3": "Input should be 24, 25, 48 or 50"}
RESOLUTION = "Input should be '1080p', '1440p' or '2160p'"


def aspect_error(model, sent):
    """The 422 item for an aspect ratio `model` does not offer."""
    if model in V20:
        return item("aspect_ratio", "Input should be '16:9'", "literal_error", sent)
    if model in I2V:
        return item("aspect_ratio", "Input should be 'auto', '16:9' or '9:16'", "enum", sent)
    return item("aspect_ratio", "Input should be '16:9' or '9:16'", "enum", sent)


def item(field, msg, type_, sent=None):
    entry = {"loc": ["body", field], "msg": msg, "type": type_}
    if sent is not None:
        entry["input"] = sent
    return entry


def version_tier(model):
    endpoint = ROUTES[model].endpoint
    return endpoint.version, endpoint.tier


def number(model, value):
    """`value` as `model` takes a number on the wire: "6" on 2.0, 6 on 2.3."""
    return str(value) if model in V20 else value


def body(model, **inputs):
    base = {"prompt": CHECK_ONLY}
    if model in I2V:
        base["image_url"] = NOT_AN_IMAGE
    return {**base, **inputs}


@pytest.fixture(scope="module")
def sim():
    with FalSimulator(key=KEY, runners=4, run_seconds=0.05, scale=SCALE) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def client():
    with httpx.Client(headers={"Authorization": f"Key {KEY}"}, timeout=10, trust_env=False) as c:
        yield c


def post(client, sim, model, payload):
    return client.post(f"{sim.url}/{model}", json=payload)


def assert_refused(client, sim, model, payload, *items):
    before = len(sim.requests())
    response = post(client, sim, model, payload)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": list(items)}
    assert len(sim.requests()) == before  # never enqueued


def assert_accepted(client, sim, model, payload):
    response = post(client, sim, model, payload)
    assert response.status_code == 200, response.text
    return response.json()


def params_of(model, payload):
    params, errors = validate_input(ROUTES[model].endpoint, payload)
    assert errors == []
    return params


# --- every endpoint is served --------------------------------------------------------------------


def test_the_simulator_serves_every_catalog_endpoint_and_alias():
    ids = {endpoint.id for endpoint in catalog.ENDPOINTS} | {a for e in catalog.ENDPOINTS for a in e.aliases}
    assert set(ROUTES) == ids == set(V20) | set(V23)
    assert {model: ROUTES[model].endpoint for model in (ALIAS_T2V, ALIAS_I2V)} == {
        ALIAS_T2V: catalog.BY_ID[V20_T2V], ALIAS_I2V: catalog.BY_ID[V20_I2V]}


@pytest.mark.parametrize("model", sorted(ROUTES))
def test_each_endpoint_takes_its_defaults_and_answers_under_its_app(sim, client, model):
    job = assert_accepted(client, sim, model, body(model))
    assert job["status_url"] == f"{sim.url}/{APP[model]}/requests/{job['request_id']}/status"
    assert client.get(job["status_url"]).status_code in (200, 202)
    assert next(r for r in sim.requests() if r["request_id"] == job["request_id"])["model_id"] == model
    params = params_of(model, body(model))
    expected = {"prompt": CHECK_ONLY, "duration": 6, "resolution": "1080p", "fps": 25, "generate_audio": True,
                "aspect_ratio": "auto" if model in (V23_I2V, V23_I2V_FAST) else "16:9"}
    assert params == ({**expected, "image_url": NOT_AN_IMAGE} if model in I2V else expected)


# --- enums and ranges ------------------------------------------------------------------------------


def refusal_cases():
    for model in sorted(ROUTES):
        version, tier = version_tier(model)
        longest = 20 if tier == "fast" else 10
        for seconds in (4, 7, longest + 2):  # below the shortest, between two, beyond the longest
            yield model, "duration", number(model, seconds), DURATIONS[version, tier], "enum"
        for fps in ((24, 30, 48, 60) if version == "2.0" else (23, 30, 60)):  # 2.0 refuses 2.3's 24 and 48
            yield model, "fps", number(model, fps), FPS[version], "enum"
        for resolution in ("720p", "4k", "1080P"):
            yield model, "resolution", resolution, RESOLUTION, "enum"


@pytest.mark.parametrize("model, field, sent, msg, type_", list(refusal_cases()))
def test_each_enum_refuses_what_it_does_not_list(sim, client, model, field, sent, msg, type_):
    assert_refused(client, sim, model, body(model, **{field: sent}), item(field, msg, type_, sent))


@pytest.mark.parametrize("model", sorted(ROUTES))
def test_each_enum_accepts_its_edges(sim, client, model):
    version, tier = version_tier(model)
    longest = 20 if tier == "fast" else 10
    fps_edges = (25, 50) if version == "2.0" else (24, 50)
    edges = [{"duration": number(model, 6)}, {"duration": number(model, longest)},
             {"fps": number(model, fps_edges[0])}, {"fps": number(model, fps_edges[1])},
             {"resolution": "1080p"}, {"resolution": "2160p"}, {"prompt": "x" * 2500}]
    for inputs in edges:
        assert_accepted(client, sim, model, body(model, **inputs))
        params = params_of(model, body(model, **inputs))
        for name, value in inputs.items():
            assert params[name] == (int(value) if name in ("duration", "fps") else value)


@pytest.mark.parametrize("model", sorted(ROUTES))
def test_prompt_and_start_image_are_checked_on_every_endpoint(sim, client, model):
    assert_refused(client, sim, model, body(model, prompt="x" * 2501),
                   item("prompt", "String should have at most 2500 characters", "string_too_long"))
    assert_refused(client, sim, model, body(model, prompt="  "),
                   item("prompt", "String should have at least 1 character", "string_too_short", "  "))
    without_prompt = {k: v for k, v in body(model).items() if k != "prompt"}
    assert_refused(client, sim, model, without_prompt, item("prompt", "Field required", "missing"))
    assert_refused(client, sim, model, body(model, generate_audio="maybe"),
                   item("generate_audio", "Input should be a valid boolean", "bool_type", "maybe"))
    if model in I2V:
        assert_refused(client, sim, model, {"prompt": CHECK_ONLY}, item("image_url", "Field required", "missing"))
        assert_refused(client, sim, model, body(model, image_url="ftp://x/a.png"),
                       item("image_url", "Input should be a valid URL or a data URI of an image", "url_parsing"))
    assert_accepted(client, sim, model, body(model, seed=7, negative_prompt="blur"))  # unknown fields: ignored


# --- numbers on the wire: 2.0 takes strings, 2.3 integers ----------------------------------------------


@pytest.mark.parametrize("model", V23)
@pytest.mark.parametrize("field, sent", [("duration", "6"), ("duration", 6.0), ("duration", True),
                                         ("fps", "25"), ("fps", 25.0), ("fps", None)])
def test_2_3_takes_numbers_as_json_integers_only(sim, client, model, field, sent):
    msg = FPS["2.3"] if field == "fps" else DURATIONS[version_tier(model)]
    assert_refused(client, sim, model, body(model, **{field: sent}), item(field, msg, "enum", sent))


@pytest.mark.parametrize("model", V20)
@pytest.mark.parametrize("inputs", [{"duration": "8", "fps": "50"}, {"duration": 8, "fps": 50},
                                    {"duration": 8.0, "fps": " 50 "}])
def test_2_0_takes_its_string_enums_and_numbers_for_them(sim, client, model, inputs):
    assert_accepted(client, sim, model, body(model, **inputs))
    params = params_of(model, body(model, **inputs))
    assert (params["duration"], params["fps"]) == (8, 50)


@pytest.mark.parametrize("model", V20)
@pytest.mark.parametrize("sent", [True, "06", "8s"])
def test_2_0_refuses_what_is_not_its_enum_string(sim, client, model, sent):
    assert_refused(client, sim, model, body(model, duration=sent),
                   item("duration", DURATIONS[version_tier(model)], "enum", sent))


# --- the fast tiers' rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", FAST)
def test_fast_tiers_offer_long_videos_only_at_25_fps_and_1080p(sim, client, model):
    fps_msg = "Durations longer than 10 seconds require 25 fps"
    resolution_msg = "Durations longer than 10 seconds require 1080p"
    for seconds in (12, 20):
        long = number(model, seconds)
        assert_refused(client, sim, model, body(model, duration=long, fps=number(model, 50)),
                       item("fps", fps_msg, "value_error", number(model, 50)))
        assert_refused(client, sim, model, body(model, duration=long, resolution="1440p"),
                       item("resolution", resolution_msg, "value_error", "1440p"))
        assert_refused(client, sim, model, body(model, duration=long, fps=number(model, 50), resolution="2160p"),
                       item("fps", fps_msg, "value_error", number(model, 50)),
                       item("resolution", resolution_msg, "value_error", "2160p"))
        assert_accepted(client, sim, model, body(model, duration=long, fps=number(model, 25), resolution="1080p"))
        assert_accepted(client, sim, model, body(model, duration=long))  # the defaults are 25 fps, 1080p
    if model in V23:
        assert_refused(client, sim, model, body(model, duration=12, fps=24),
                       item("fps", fps_msg, "value_error", 24))
    # up to 10 s, any fps and resolution
    assert_accepted(client, sim, model, body(model, duration=number(model, 10), fps=number(model, 50),
                                             resolution="2160p"))


# --- aspect ratio and the end image ------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(ROUTES))
def test_portrait_only_on_2_3_and_auto_only_on_2_3_image_to_video(sim, client, model):
    assert_accepted(client, sim, model, body(model, aspect_ratio="16:9"))
    for aspect in ("9:16", "auto"):
        offered = model in V23 and (aspect == "9:16" or model in I2V)
        if offered:
            assert_accepted(client, sim, model, body(model, aspect_ratio=aspect))
            assert params_of(model, body(model, aspect_ratio=aspect))["aspect_ratio"] == aspect
        else:
            assert_refused(client, sim, model, body(model, aspect_ratio=aspect), aspect_error(model, aspect))
    for never in ("1:1", "4:3", "16:9 ", None):
        assert_refused(client, sim, model, body(model, aspect_ratio=never), aspect_error(model, never))


@pytest.mark.parametrize("model", sorted(ROUTES))
def test_end_image_only_on_2_3_image_to_video(sim, client, model):
    end = "http://127.0.0.1:1/end.png"  # loopback: the run's download fails at once, never the internet
    assert_accepted(client, sim, model, body(model, end_image_url=end))
    params = params_of(model, body(model, end_image_url=end))
    if model in (V23_I2V, V23_I2V_FAST):
        assert params["end_image_url"] == end
        assert_refused(client, sim, model, body(model, end_image_url="end.png"),
                       item("end_image_url", "Input should be a valid URL or a data URI of an image", "url_parsing"))
        assert_refused(client, sim, model, body(model, end_image_url=5),
                       item("end_image_url", "Input should be a valid string", "string_type", 5))
        assert "end_image_url" not in params_of(model, body(model, end_image_url=None))  # null: left out
    else:
        # Not a field of this endpoint: ignored, as fal's input models ignore unknown fields.
        assert "end_image_url" not in params
        assert_accepted(client, sim, model, body(model, end_image_url="not even a URL"))


# --- renders follow Endpoint.output ------------------------------------------------------------------


def png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image):
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


LANDSCAPE_IMAGE = quadrants((320, 180))
PORTRAIT_IMAGE = quadrants((180, 320))
END_IMAGE = quadrants((320, 180)).rotate(180)  # the same colours, each in the opposite corner


def rendered(client, sim, model, inputs):
    """Submit `inputs`, wait for the result; (the result's video, its probed facts, its frames)."""
    job = assert_accepted(client, sim, model, inputs)
    wait_until(lambda: sim.completed_at(job["request_id"]))
    result = client.get(job["response_url"])
    assert result.status_code == 200, result.text
    video = result.json()["video"]
    content = httpx.get(video["url"], trust_env=False, timeout=10).content
    assert len(content) == video["file_size"]
    with av.open(io.BytesIO(content)) as container:
        stream = container.streams.video[0]
        facts = {"width": stream.codec_context.width, "height": stream.codec_context.height,
                 "fps": float(stream.average_rate), "frames": stream.frames,
                 "duration": float(stream.duration * stream.time_base), "audio": len(container.streams.audio)}
        frames = [frame.to_image() for frame in container.decode(video=0)]
    facts["decoded"] = len(frames)
    return video, facts, frames


# model, inputs, (width, height) at 1/16 scale, fps, seconds, audio
RENDERS = [
    (V20_T2V, {"duration": "8", "fps": "50", "resolution": "1440p"}, (160, 90), 50, 8, True),
    (V20_T2V_FAST, {"duration": "12", "generate_audio": False}, (120, 66), 25, 12, False),
    (V20_I2V, {"image_url": data_uri(LANDSCAPE_IMAGE)}, (120, 66), 25, 6, True),
    (V20_I2V_FAST, {"image_url": data_uri(PORTRAIT_IMAGE), "fps": 50}, (120, 66), 50, 6, True),  # 2.0: no portrait
    (ALIAS_T2V, {"resolution": "2160p"}, (240, 134), 25, 6, True),
    (ALIAS_I2V, {"image_url": data_uri(PORTRAIT_IMAGE), "generate_audio": False}, (120, 66), 25, 6, False),
    (V23_T2V, {"aspect_ratio": "9:16", "fps": 24}, (66, 120), 24, 6, True),
    (V23_T2V_FAST, {"aspect_ratio": "9:16", "fps": 48, "resolution": "2160p"}, (134, 240), 48, 6, True),
    (V23_T2V_FAST, {"duration": 14, "generate_audio": False}, (120, 66), 25, 14, False),
    (V23_I2V, {"image_url": data_uri(PORTRAIT_IMAGE)}, (66, 120), 25, 6, True),  # auto: the image's orientation
    (V23_I2V, {"image_url": data_uri(LANDSCAPE_IMAGE), "aspect_ratio": "9:16", "duration": 8}, (66, 120), 25, 8, True),
    (V23_I2V, {"image_url": data_uri(PORTRAIT_IMAGE), "aspect_ratio": "16:9", "fps": 48}, (120, 66), 48, 6, True),
    (V23_I2V_FAST, {"image_url": data_uri(LANDSCAPE_IMAGE), "aspect_ratio": "auto", "fps": 50}, (120, 66), 50, 6, True),
    (V23_I2V_FAST, {"image_url": data_uri(PORTRAIT_IMAGE), "resolution": "1440p", "fps": 24}, (90, 160), 24, 6, True),
]


@pytest.mark.parametrize("model, inputs, size, fps, seconds, audio", RENDERS)
def test_each_endpoint_renders_what_it_was_asked(sim, client, model, inputs, size, fps, seconds, audio):
    audio_off = inputs.get("generate_audio") is False
    assert audio is not audio_off
    video, facts, frames = rendered(client, sim, model, {"prompt": "A paper boat on a river", **inputs})
    width, height = size
    assert (facts["width"], facts["height"]) == (video["width"], video["height"]) == (width, height)
    assert facts["fps"] == video["fps"] == fps
    assert facts["frames"] == facts["decoded"] == video["num_frames"] == fps * seconds
    assert facts["duration"] == pytest.approx(seconds, abs=1e-6) and video["duration"] == seconds
    assert facts["audio"] == (1 if audio else 0)
    aspect = inputs.get("aspect_ratio", ROUTES[model].endpoint.defaults()["aspect_ratio"])
    if aspect == "auto":
        aspect = "9:16" if inputs["image_url"] == data_uri(PORTRAIT_IMAGE) else "16:9"
    assert (height > width) is (aspect == "9:16")  # portrait is portrait
    if "image_url" in inputs:
        start = PORTRAIT_IMAGE if inputs["image_url"] == data_uri(PORTRAIT_IMAGE) else LANDSCAPE_IMAGE
        # frame 0 is the start image, fitted (centre-cropped) to the frame
        assert np.abs(small(frames[0]) - small(fitted(start, size))).mean() < 10


def small(image):
    return np.asarray(image.convert("RGB").resize((9, 9), Image.Resampling.BOX), dtype=np.float32)


def fitted(image, size):
    from PIL import ImageOps

    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("model", [V23_I2V, V23_I2V_FAST])
def test_the_end_image_is_the_last_frame(sim, client, model):
    video, facts, frames = rendered(client, sim, model, {
        "prompt": "From one picture to the other", "image_url": data_uri(LANDSCAPE_IMAGE),
        "end_image_url": data_uri(END_IMAGE), "generate_audio": False})
    assert (facts["width"], facts["height"], facts["decoded"]) == (120, 66, 150)
    start, end = small(fitted(LANDSCAPE_IMAGE, (120, 66))), small(fitted(END_IMAGE, (120, 66)))
    assert np.abs(start - end).mean() > 50  # the two pictures differ...
    assert np.abs(small(frames[0]) - start).mean() < 10  # ...frame 0 is the start image
    assert np.abs(small(frames[-1]) - end).mean() < 10  # ...the last frame the end image
    middle = small(frames[75])
    assert np.abs(middle - start).mean() > 20 and np.abs(middle - end).mean() > 20  # in between: a blend


def test_an_uploaded_end_image_is_read_from_storage(sim, client):
    initiated = client.post(f"{sim.url}/storage/upload/initiate", params={"storage_type": "fal-cdn-v3"},
                            json={"file_name": "end.png", "content_type": "image/png"}).json()
    assert httpx.put(initiated["upload_url"], content=png(END_IMAGE), trust_env=False).status_code in (200, 201, 204)
    video, facts, frames = rendered(client, sim, V23_I2V, {
        "prompt": "x", "image_url": data_uri(PORTRAIT_IMAGE), "end_image_url": initiated["file_url"],
        "aspect_ratio": "16:9"})
    assert (facts["width"], facts["height"]) == (120, 66)
    assert np.abs(small(frames[-1]) - small(fitted(END_IMAGE, (120, 66)))).mean() < 10


def test_the_render_cache_keys_on_everything_that_changes_the_video(client):
    with FalSimulator(key=KEY, runners=2, run_seconds=0.05, scale=SCALE, cache_renders=True) as sim:
        def run(model, **inputs):
            video, facts, frames = rendered(client, sim, model, {"prompt": f"p{len(sim.requests())}", **inputs})
            return facts, frames

        base = {"image_url": data_uri(LANDSCAPE_IMAGE), "generate_audio": False}
        first = run(V23_I2V, **base)
        again = run(V23_I2V_FAST, **base)  # another prompt and endpoint, the same video: shared
        assert sim.stats()["renders"] == 1
        with_end = run(V23_I2V, **base, end_image_url=data_uri(END_IMAGE))
        portrait = run(V23_I2V, **base, aspect_ratio="9:16")
        auto_portrait = run(V23_I2V, image_url=data_uri(PORTRAIT_IMAGE), generate_audio=False)
        faster = run(V23_I2V, **base, fps=50)
        assert sim.stats()["renders"] == 5  # portrait and auto-portrait differ by their start image
        assert [(f["width"], f["height"], f["fps"]) for f, _ in (first, again, with_end, portrait, auto_portrait,
                                                               faster)] == [
            (120, 66, 25), (120, 66, 25), (120, 66, 25), (66, 120, 25), (66, 120, 25), (120, 66, 50)]
        end = small(fitted(END_IMAGE, (120, 66)))
        assert np.abs(small(with_end[1][-1]) - end).mean() < 10
        assert np.abs(small(first[1][-1]) - end).mean() > 40


# --- retirement ----------------------------------------------------------------------------------------


def not_found(model):
    return {"detail": f"Application '{model}' not found"}


def test_the_retired_flag_answers_404_for_that_endpoint_only(client):
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser, default_key=KEY, default_port=0)
    options = parser.parse_args(["--retired", V20_T2V_FAST, "--retired", ALIAS_I2V, "--run-seconds", "0.05",
                                 "--scale", str(SCALE)])
    with simulator_from_args(options).start() as sim:
        assert sim.retired == [V20_T2V_FAST, ALIAS_I2V]
        for model in (V20_T2V_FAST, ALIAS_I2V):
            response = post(client, sim, model, body(model, prompt=f"to {model}"))
            assert (response.status_code, response.json()) == (404, not_found(model))
            assert response.headers["content-type"] == "application/json"
        for model in (V20_T2V, V20_I2V, V23_T2V_FAST):  # the rest of the app, and others, still work
            assert_accepted(client, sim, model, body(model))
        stats = sim.stats()
        assert (stats["submits"], stats["retired_refusals"], len(sim.requests())) == (5, 2, 3)
        assert sim.submits_for(body(V20_T2V_FAST, prompt=f"to {V20_T2V_FAST}")) == 0  # never enqueued


def test_retiring_mid_run_over_http_and_back(client):
    with FalSimulator(key=KEY, runners=1, run_seconds=0.05, scale=SCALE) as sim, \
            httpx.Client(trust_env=False) as control:
        in_flight = assert_accepted(client, sim, V23_T2V, body(V23_T2V, prompt="[sim:slow] retire me later"))
        response = control.put(f"{sim.url}/_sim/faults", json={"retired": [V23_T2V]})
        assert response.status_code == 200 and response.json()["retired"] == [V23_T2V]
        assert control.get(f"{sim.url}/_sim/faults").json()["retired"] == [V23_T2V] == sim.retired
        refused = post(client, sim, V23_T2V, body(V23_T2V))
        assert (refused.status_code, refused.json()) == (404, not_found(V23_T2V))
        assert_accepted(client, sim, V23_I2V, body(V23_I2V))  # the same app's other endpoint still works
        # Requests already sent keep answering under their app (only the endpoint id was retired)...
        assert client.get(in_flight["status_url"]).status_code in (200, 202)
        by_id = f"{sim.url}/{V23_T2V}/requests/{in_flight['request_id']}/status"
        assert (client.get(by_id).status_code, client.get(by_id).json()) == (404, not_found(V23_T2V))
        # ...until the whole app is gone.
        sim.set_faults(retired=["fal-ai/ltx-2.3"])
        gone = client.get(in_flight["status_url"])
        assert (gone.status_code, gone.json()) == (404, not_found("fal-ai/ltx-2.3"))
        for model in V23:
            assert post(client, sim, model, body(model)).json() == not_found(model)
        assert_accepted(client, sim, V20_T2V, body(V20_T2V))
        assert control.put(f"{sim.url}/_sim/faults", json={"retired": []}).json()["retired"] == []
        assert_accepted(client, sim, V23_T2V, body(V23_T2V))
        wait_until(lambda: sim.completed_at(in_flight["request_id"]))
        assert client.get(in_flight["status_url"]).json()["status"] == "COMPLETED"
        assert sim.stats()["retired_refusals"] == 8  # 1 submit, 2 status calls by id, 1 under the app, 4 submits


@pytest.mark.parametrize("retired, message", [
    ("fal-ai/ltx-2", "retired must be a list of endpoint ids or owner/app names to answer as gone"),
    ([5], "retired must be a list of endpoint ids or owner/app names to answer as gone"),
    (["fal-ai/flux/dev"], "cannot retire 'fal-ai/flux/dev': the simulator does not serve it; allowed: fal-ai/ltx-2,"),
])
def test_retired_is_validated_like_every_setting(retired, message):
    with FalSimulator(key=KEY, scale=SCALE, retired=[V23_T2V]) as sim, httpx.Client(trust_env=False) as control:
        with pytest.raises(ValueError) as excinfo:
            sim.set_faults(retired=retired)
        assert str(excinfo.value).startswith(message)
        response = control.put(f"{sim.url}/_sim/faults", json={"retired": retired})
        assert response.status_code == 400 and response.json()["detail"].startswith(message)
        assert sim.retired == [V23_T2V]
    with pytest.raises(ValueError, match="cannot retire 'fal-ai/flux/dev'"):
        FalSimulator(retired=["fal-ai/flux/dev"])


def test_fal_client_sees_a_retired_endpoint_as_404(monkeypatch):
    with FalSimulator(key=KEY, scale=SCALE, retired=[V23_I2V_FAST]) as sim:
        monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", sim.url + "/")
        fal = fal_client.SyncClient(key=KEY)
        with pytest.raises(fal_client.client.FalClientHTTPError) as excinfo:
            fal.submit(V23_I2V_FAST, arguments=body(V23_I2V_FAST))
        assert excinfo.value.status_code == 404
        assert "Application 'fal-ai/ltx-2.3/image-to-video/fast' not found" in str(excinfo.value)
