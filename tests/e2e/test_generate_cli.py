"""The whole product through real processes: simulator over HTTP, django-q2 cluster, `generate --wait`.

Storage and database are whatever the environment configures (CI runs this on PostgreSQL + S3 and
on SQLite + the filesystem).
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import httpx
import pytest
from django.conf import settings

from generations.models import Generation
from tests.images import quadrants
from tests.processes import ROOT, running, running_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SCALE = 16


@pytest.fixture
def studio_env(tmp_path, user):
    # The simulator's log stays on the terminal: it is what explains a failed CLI run.
    with running_simulator(key="e2e-key", media_root=str(tmp_path / "media"), run_seconds=0.3, runners=2,
                           scale=SCALE, stdout=None, stderr=None) as env:
        yield env


@pytest.fixture
def cluster(studio_env):
    with running("qcluster", env=studio_env) as process:
        yield process


def generate(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "generate", *args, "--user", "alice"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def probe_stored(location: str) -> tuple:
    if location.startswith("http"):
        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as handle:
            handle.write(httpx.get(location).raise_for_status().content)
        location = handle.name
    with av.open(location) as container:
        video = container.streams.video[0]
        return (video.codec_context.width, video.codec_context.height, float(video.average_rate), video.frames,
                round(float(video.duration * video.time_base), 2), len(container.streams.audio) > 0)


def scaled(side: int) -> int:
    return max(2, side // SCALE // 2 * 2)


@pytest.mark.parametrize("args, size, fps, duration, audio", [
    ([], (1920, 1080), 25, 6, True),
    (["--no-audio", "--fps", "50", "--duration", "8"], (1920, 1080), 50, 8, False),
    (["--duration", "10", "--resolution", "1440p"], (2560, 1440), 25, 10, True),
    (["--model", "t2v-fast", "--duration", "20"], (1920, 1080), 25, 20, True),
    (["--aspect-ratio", "9:16", "--fps", "24"], (1080, 1920), 24, 6, True),
])
def test_generate_wait_produces_a_stored_video_matching_the_request(studio_env, cluster, args, size, fps, duration,
                                                                    audio):
    run = generate(studio_env, "A cowboy walking through a dusty town at high noon", "--wait", *args)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("created ")
    assert "status: queued" in " ".join(lines) or "status: running" in " ".join(lines)
    assert lines[-2].startswith("stored: ")
    width, height = scaled(size[0]), scaled(size[1])
    assert lines[-1].startswith(f"video: {width}x{height}, {fps} fps, {duration:.3f} s, {duration * fps} frames, "
                                f"audio: {'yes' if audio else 'no'}")
    assert probe_stored(lines[-2].removeprefix("stored: ")) == (width, height, float(fps), duration * fps,
                                                                float(duration), audio)
    generation = Generation.objects.get(pk=lines[0].split()[1])
    assert generation.status == Generation.Status.SUCCEEDED
    if settings.STORAGES["default"]["BACKEND"].endswith("S3Storage"):
        assert lines[-2].startswith("stored: http") and settings.AWS_STORAGE_BUCKET_NAME in lines[-2]


@pytest.mark.parametrize("args, field", [
    (["--duration", "7"], "duration"),
    (["--resolution", "720p"], "resolution"),
    (["--fps", "30"], "fps"),
    (["--aspect-ratio", "4:3"], "aspect_ratio"),
    (["--model", "t2v-fast", "--duration", "12", "--fps", "50"], "duration"),
])
def test_generate_rejects_bad_input_before_anything_is_created(studio_env, args, field):
    run = generate(studio_env, "a prompt", *args, timeout=60)
    assert run.returncode != 0
    assert f"{field}:" in run.stderr
    assert Generation.objects.count() == 0


def test_generate_reports_an_upstream_failure_with_a_nonzero_exit(studio_env, cluster):
    run = generate(studio_env, "a forbidden scene [sim:422]", "--wait")
    assert run.returncode != 0
    assert re.search(r"generation \S+ failed: \[\w+\] fal could not make this video: prompt: ", run.stderr), run.stderr


def test_generate_wait_says_so_when_no_worker_cluster_runs(studio_env):
    run = generate({**studio_env, "STUDIO_NO_WORKER_SECONDS": "2"}, "nobody is listening", "--wait", timeout=60)
    assert run.returncode != 0
    assert "no worker picked up generation" in run.stderr and "qcluster" in run.stderr
    assert Generation.objects.get().status == Generation.Status.PENDING


def _quadrants_png(path: Path, size=(640, 360)) -> bytes:
    quadrants(size).save(path, format="PNG")
    return path.read_bytes()


def test_generate_with_an_image_makes_an_image_to_video_job_that_starts_from_it(studio_env, cluster, tmp_path):
    import numpy as np
    from PIL import Image

    start = tmp_path / "start.png"
    data = _quadrants_png(start)
    run = generate(studio_env, "The picture comes alive", "--image", str(start), "--wait")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    generation = Generation.objects.get(pk=lines[0].split()[1])
    assert generation.model_id == "fal-ai/ltx-2.3/image-to-video"  # --image without --model means i2v (of 2.3)
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.input["image_url"] == "studio:start-image"
    assert generation.start_image.size == len(data) and generation.start_image.content_type == "image/png"
    assert lines[-1].startswith(f"video: {scaled(1920)}x{scaled(1080)}, 25 fps, 6.000 s, 150 frames")
    stats = httpx.get(studio_env["FAL_QUEUE_URL"] + "/_sim/stats").json()
    assert stats["image_data_uri"] == 1 and stats["image_uploaded"] == 0

    location = lines[-2].removeprefix("stored: ")
    if location.startswith("http"):
        with tempfile.NamedTemporaryFile(suffix=".mp4", delete=False) as handle:
            handle.write(httpx.get(location).raise_for_status().content)
        location = handle.name
    with av.open(location) as container:
        frame0 = next(container.decode(video=0)).to_image()

    def small(image):
        return np.asarray(image.convert("RGB").resize((16, 9), Image.Resampling.BOX), dtype=np.float32)

    with Image.open(start) as original:
        assert np.abs(small(frame0) - small(original)).mean() < 12


def test_generate_refuses_an_unsupported_image_naming_the_problem(studio_env, tmp_path):
    from PIL import Image

    gif = tmp_path / "start.png"  # the name lies; the decoder decides
    Image.new("P", (64, 36)).save(gif, format="GIF")
    run = generate(studio_env, "a prompt", "--image", str(gif), timeout=60)
    assert run.returncode != 0
    assert "image_url: GIF images are not supported" in run.stderr
    assert Generation.objects.count() == 0
