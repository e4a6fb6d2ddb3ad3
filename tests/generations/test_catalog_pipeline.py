"""Every catalog endpoint end to end through the simulator (tasks inline), probed; end frames; and an
endpoint that retires mid-run."""
from __future__ import annotations

import io

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db.models import Sum
from PIL import Image

from fal_protocol.catalog import BY_ID, ENDPOINTS
from generations import ltx
from generations.models import EndpointOverride, Generation
from generations.services.create import generation_create
from generations.services.submit import generation_resolve_submitting, generation_submit
from storage.models import UsageEntry
from storage.quotas import usage_for
from tests.conftest import run_to_the_end
from tests.images import quadrants

pytestmark = pytest.mark.django_db(transaction=True)
Status = Generation.Status
SCALE = 16  # the test simulator renders at 1/16 size, each side rounded down to even


@pytest.fixture
def studio(fal_sim, media_root, task_queue):
    return fal_sim


def png_data_uri(image: Image.Image) -> str:
    import base64

    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def frames_of(key: str) -> tuple[list[np.ndarray], float]:
    with default_storage.open(key) as stored, av.open(stored) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def small(pixels: np.ndarray | Image.Image, size: tuple[int, int]) -> np.ndarray:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels.astype(np.uint8))
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BOX), dtype=np.float32)


def side(n: int) -> int:
    return max(2, (n // SCALE) // 2 * 2)


# One run per endpoint, with what each one asks for in its own terms: landscape and portrait,
# each fps its version offers, the fast tiers' 20 s.
RUNS = [
    ("fal-ai/ltx-2/text-to-video", {"duration": 6, "fps": 50}, (1920, 1080, 50, 300)),
    ("fal-ai/ltx-2/text-to-video/fast", {"duration": 20}, (1920, 1080, 25, 500)),
    ("fal-ai/ltx-2/image-to-video", {"resolution": "1440p"}, (2560, 1440, 25, 150)),
    ("fal-ai/ltx-2/image-to-video/fast", {"duration": 8}, (1920, 1080, 25, 200)),
    ("fal-ai/ltx-2.3/text-to-video", {"aspect_ratio": "9:16", "fps": 24}, (1080, 1920, 24, 144)),
    ("fal-ai/ltx-2.3/text-to-video/fast", {"aspect_ratio": "9:16", "fps": 48, "duration": 8}, (1080, 1920, 48, 384)),
    ("fal-ai/ltx-2.3/image-to-video", {"aspect_ratio": "auto"}, (1080, 1920, 25, 150)),  # a portrait start image
    ("fal-ai/ltx-2.3/image-to-video/fast", {"aspect_ratio": "16:9", "fps": 24}, (1920, 1080, 24, 144)),
]


def test_every_endpoint_is_run():
    assert sorted(model for model, _, _ in RUNS) == sorted(e.id for e in ENDPOINTS)


@pytest.mark.parametrize("model, extra, expected", RUNS, ids=[r[0] for r in RUNS])
def test_each_endpoint_runs_end_to_end_and_its_video_is_what_was_asked(studio, user, task_queue, model, extra,
                                                                       expected):
    endpoint = BY_ID[model]
    portrait_image = extra.get("aspect_ratio") == "auto"
    image = {"image_url": png_data_uri(quadrants((180, 320) if portrait_image else (320, 180)))} \
        if endpoint.kind == "i2v" else {}
    generation, _ = generation_create(owner=user, model=model, input={"prompt": "a heron", **image, **extra})
    generation = run_to_the_end(generation, task_queue)

    assert generation.status == Status.SUCCEEDED, generation.error_message
    assert generation.model_id == model
    width, height, fps, num_frames = expected
    video = generation.video
    assert (video.width, video.height, video.fps, video.num_frames) == (side(width), side(height), fps, num_frames)
    frames, rate = frames_of(video.file.key)
    assert (frames[0].shape[1], frames[0].shape[0], rate, len(frames)) == (side(width), side(height), fps, num_frames)
    assert generation.cost_usd == ltx.price_usd(endpoint, generation.input)
    assert studio.stats()["submits"] == 1


@pytest.mark.parametrize("threshold", [256 * 1024, 100], ids=["data-uri", "fal-upload"])
def test_an_end_image_is_the_last_frame_and_the_start_image_the_first(studio, user, task_queue, settings, threshold):
    settings.STUDIO_FAL_DATA_URI_MAX_BYTES = threshold
    start = quadrants((320, 180))
    end = start.transpose(Image.Transpose.ROTATE_180)  # the same colours, every quadrant elsewhere
    generation, _ = generation_create(owner=user, model="i2v", input={
        "prompt": "a heron takes off", "image_url": png_data_uri(start), "end_image_url": png_data_uri(end)})
    assert generation.input["image_url"] == "studio:start-image"
    assert generation.input["end_image_url"] == "studio:end-image"
    generation = run_to_the_end(generation, task_queue)
    assert generation.status == Status.SUCCEEDED, generation.error_message

    frames, _ = frames_of(generation.video.file.key)
    first, last = small(frames[0], (16, 9)), small(frames[-1], (16, 9))
    assert np.abs(first - small(start, (16, 9))).mean() < 12
    assert np.abs(last - small(end, (16, 9))).mean() < 12
    assert np.abs(first - last).mean() > 60  # the clip travels: its ends differ

    stored = generation.start_image.size + generation.end_image.size
    assert usage_for(user).bytes == generation.video.file.size + generation.video.poster.size + stored
    assert default_storage.exists(generation.end_image.key)
    uploads = generation.attempts.filter(kind="upload").order_by("id")
    assert [a.response["field"] for a in uploads] == ["image_url", "end_image_url"]
    assert {a.response["method"] for a in uploads} == {"data_uri" if threshold > 1000 else "fal_storage"}


# --- retirement ---------------------------------------------------------------------------------

def test_an_endpoint_fal_answers_as_gone_fails_its_job_uncharged_and_refuses_new_ones(studio, user, task_queue):
    model = "fal-ai/ltx-2/text-to-video"
    EndpointOverride.objects.create(endpoint_id=model, replacement="fal-ai/ltx-2.3/text-to-video")
    first, _ = generation_create(owner=user, model=model, input={"prompt": "a heron"})
    waiting, _ = generation_create(owner=user, model=model, input={"prompt": "another heron"})
    other, _ = generation_create(owner=user, model="fal-ai/ltx-2.3/text-to-video", input={"prompt": "a heron"})
    studio.set_faults(retired=[model])

    generation_submit(first.pk)
    first.refresh_from_db()
    assert (first.status, first.error_code) == (Status.FAILED, "model_unavailable")
    assert "fal-ai/ltx-2/text-to-video is no longer available at fal" in first.error_message
    assert "nothing was charged" in first.error_message
    mark = EndpointOverride.objects.get(endpoint_id=model)
    assert mark.unavailable_since is not None and "404" in mark.unavailable_detail
    assert studio.stats()["retired_refusals"] == 1

    # A job that was already waiting fails without another call; others run on.
    task_queue.run_all()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error_code) == (Status.FAILED, "model_unavailable")
    assert studio.stats()["retired_refusals"] == 1
    assert run_to_the_end(other, task_queue).status == Status.SUCCEEDED

    # Nothing charged for either failed job: what they reserved was given back.
    for job in (first, waiting):
        entries = UsageEntry.objects.filter(job=job.pk)
        assert sorted(entries.values_list("event", flat=True)) == ["release", "reserve"]
        assert entries.aggregate(usd=Sum("usd"))["usd"] == 0
    assert usage_for(user).spend_usd == other.cost_usd

    # New requests are refused before anything is written, naming the model and its replacement.
    before = Generation.objects.count()
    with pytest.raises(ltx.InputError) as info:
        generation_create(owner=user, model=model, input={"prompt": "again"})
    assert info.value.errors == {"model": "fal-ai/ltx-2/text-to-video is no longer available at fal; "
                                          "use fal-ai/ltx-2.3/text-to-video instead"}
    assert Generation.objects.count() == before


def test_moving_users_to_another_version_leaves_jobs_already_made_on_their_endpoint(studio, user, task_queue,
                                                                                    settings):
    settings.STUDIO_LTX_VERSION = "2.0"
    before, _ = generation_create(owner=user, model="t2v", input={"prompt": "made under 2.0"})
    settings.STUDIO_LTX_VERSION = "2.3"  # the operator moves everyone: one setting
    after, _ = generation_create(owner=user, model="t2v", input={"prompt": "made under 2.3"})

    assert (before.model_id, after.model_id) == ("fal-ai/ltx-2/text-to-video", "fal-ai/ltx-2.3/text-to-video")
    assert (before.input["duration"], after.input["duration"]) == ("6", 6)  # each endpoint's wire type
    for job in (before, after):
        assert run_to_the_end(job, task_queue).status == Status.SUCCEEDED
    sent = {request["input"]["prompt"]: request["model_id"] for request in studio.requests()}
    assert sent == {"made under 2.0": "fal-ai/ltx-2/text-to-video", "made under 2.3": "fal-ai/ltx-2.3/text-to-video"}


class Crash(Exception):
    pass


def test_a_crash_after_fal_answered_gone_still_ends_the_job_as_model_unavailable(studio, user, task_queue,
                                                                                  monkeypatch):
    model = "fal-ai/ltx-2.3/text-to-video/fast"
    job, _ = generation_create(owner=user, model=model, input={"prompt": "a heron"})
    studio.set_faults(retired=[model])

    def crash(*args, **kwargs):
        raise Crash()

    with monkeypatch.context() as patch, pytest.raises(Crash):
        patch.setattr("generations.services.submit.endpoint_mark_unavailable", crash)  # the worker dies here
        generation_submit(job.pk)
    assert Generation.objects.get(pk=job.pk).status == Status.SUBMITTING

    assert generation_resolve_submitting(job.pk) is False  # what the sweeper does when the lease runs out
    row = Generation.objects.get(pk=job.pk)
    assert (row.status, row.error_code) == (Status.FAILED, "model_unavailable")
    assert row.error_message.startswith(f"{model} is no longer available at fal (fal answered 404:")
    assert UsageEntry.objects.filter(job=job.pk).aggregate(usd=Sum("usd"))["usd"] == 0
    assert studio.stats()["retired_refusals"] == 1
