"""`manage.py generate` and `manage.py models` in process: arguments that are not valid UTF-8
(surrogate-escaped by Python) or hold NUL are refused by name before anything is created; the catalog's
options (--dry-run, --aspect-ratio, --fps, --end-image, every model name); the catalog table. The
real-process runs are in tests/e2e/test_generate_cli.py."""
from __future__ import annotations

import io
import json

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from generations.models import EndpointOverride, Generation, Project
from storage.models import StoredObject, UsageEntry
from storage.quotas import estimate_bytes

pytestmark = pytest.mark.django_db
SURROGATE = "must be valid Unicode text: it holds a lone surrogate (U+DCFF), which cannot be encoded as UTF-8"


@pytest.mark.parametrize("args, message", [
    (["a fox \udcff in the snow"], "invalid input: prompt: " + SURROGATE),
    (["a fox", "--project", "Westerns \udcff"], "--project " + SURROGATE),
    (["a fox", "--user", "alice\x00"], "--user must not contain NUL characters (U+0000)"),
    (["a fox", "--duration", "6\x00"], "--duration must not contain NUL characters (U+0000)"),
])
def test_arguments_that_cannot_be_stored_are_refused_by_name(user, task_queue, args, message):
    with pytest.raises(CommandError) as info:
        call_command("generate", *(args if "--user" in args else [*args, "--user", "alice"]))
    assert str(info.value) == message
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []
    assert not Project.objects.filter(name__startswith="Westerns").exists()


# --- the catalog's options: --dry-run, --aspect-ratio, --fps, --end-image, --model names -------------

def png_file(path, color=(200, 80, 20), size=(64, 36)):
    from PIL import Image

    Image.new("RGB", size, color).save(path, format="PNG")
    return path.read_bytes()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("generate", *args, "--user", "alice", stdout=out)
    return out.getvalue()


def assert_nothing_created(task_queue):
    assert not Generation.objects.exists() and not UsageEntry.objects.exists() and task_queue.calls == []
    assert not Project.objects.exists() and not StoredObject.objects.exists()


@pytest.mark.parametrize("args, first_line, wire", [
    (["--aspect-ratio", "9:16"],
     "dry run: fal-ai/ltx-2.3/text-to-video would cost $0.48 (6 s at 1080p × $0.08/s); nothing was created",
     {"aspect_ratio": "9:16", "duration": 6, "fps": 25}),
    (["--model", "t2v-fast", "--duration", "20"],
     "dry run: fal-ai/ltx-2.3/text-to-video/fast would cost $0.80 (20 s at 1080p × $0.04/s); nothing was created",
     {"duration": 20}),
    (["--model", "fal-ai/ltxv-2/text-to-video", "--resolution", "1440p", "--fps", "50", "--no-audio"],
     "dry run: fal-ai/ltx-2/text-to-video would cost $0.72 (6 s at 1440p × $0.12/s); nothing was created",
     {"fps": "50", "generate_audio": False, "resolution": "1440p"}),
    (["--image", "https://example.com/start.png", "--end-image", "https://example.com/end.png", "--fps", "48"],
     "dry run: fal-ai/ltx-2.3/image-to-video would cost $0.36 (6 s at 1080p × $0.06/s); nothing was created",
     {"image_url": "https://example.com/start.png", "end_image_url": "https://example.com/end.png", "fps": 48,
      "aspect_ratio": "auto"}),
])
def test_dry_run_prints_the_exact_endpoint_and_price_and_creates_nothing(user, task_queue, args, first_line, wire):
    lines = run("a lighthouse at dusk", "--dry-run", "--project", "Westerns", *args).splitlines()
    assert lines[0] == first_line
    shown = json.loads(lines[1].removeprefix("input: "))
    assert shown["prompt"] == "a lighthouse at dusk" and wire.items() <= shown.items()
    assert_nothing_created(task_queue)


def test_dry_run_reads_an_image_file_but_stores_nothing(user, task_queue, tmp_path):
    png_file(tmp_path / "start.png")
    lines = run("the fox looks up", "--image", str(tmp_path / "start.png"), "--dry-run").splitlines()
    assert lines[0].startswith("dry run: fal-ai/ltx-2.3/image-to-video would cost $0.36")
    assert json.loads(lines[1].removeprefix("input: "))["image_url"] == "studio:start-image"
    assert_nothing_created(task_queue)


@pytest.mark.parametrize("args, message", [
    (["--fps", "30", "--aspect-ratio", "4:3"],
     ("invalid input: fps: '30' is not allowed; allowed values: 24, 25, 48, 50; "
      "aspect_ratio: '4:3' is not allowed; allowed values: 16:9, 9:16")),
    (["--model", "fal-ai/ltx-2/text-to-video", "--aspect-ratio", "9:16"],
     "invalid input: aspect_ratio: '9:16' is not allowed; allowed values: 16:9"),
    (["--model", "fal-ai/ltx-2/image-to-video", "--image", "https://example.com/a.png", "--end-image",
      "https://example.com/b.png"],
     ("invalid input: end_image_url: unknown field for fal-ai/ltx-2/image-to-video; "
      "allowed fields: prompt, duration, resolution, fps, generate_audio, aspect_ratio, image_url")),
    (["--end-image", "https://example.com/b.png"],
     ("invalid input: image_url: is required for fal-ai/ltx-2.3/image-to-video: an https URL or a data: URI of the "
      "start image")),
    (["--model", "t2v-fast", "--duration", "12", "--fps", "50"],
     ("invalid input: duration: 12 seconds is only available at 25 fps and 1080p; use 6, 8 or 10 seconds for other "
      "settings")),
    (["--end-image", "missing.png", "--image", "https://example.com/a.png"], "--end-image: no such file 'missing.png'"),
])
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "create"])
def test_invalid_input_fails_naming_each_field_with_or_without_dry_run(user, task_queue, args, message, dry_run):
    with pytest.raises(CommandError) as info:
        run("a prompt", *args, *(["--dry-run"] if dry_run else []))
    assert str(info.value) == message
    assert_nothing_created(task_queue)


def test_an_unknown_model_is_refused_listing_every_name(user, task_queue):
    with pytest.raises(CommandError) as info:
        run("a prompt", "--model", "sora", "--dry-run")
    assert str(info.value).startswith("Error: argument --model: invalid choice: 'sora' (choose from ")
    for name in ("t2v", "i2v-fast", "fal-ai/ltx-2.3/image-to-video/fast", "fal-ai/ltxv-2/text-to-video"):
        assert f"'{name}'" in str(info.value)
    assert_nothing_created(task_queue)


def test_a_retired_model_is_refused_naming_its_replacement(user, task_queue):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", retired=True,
                                    replacement="fal-ai/ltx-2.3/text-to-video")
    for dry_run in ([], ["--dry-run"]):
        with pytest.raises(CommandError) as info:
            run("a prompt", "--model", "fal-ai/ltxv-2/text-to-video", *dry_run)
        assert str(info.value) == ("invalid input: model: fal-ai/ltx-2/text-to-video has been retired; use "
                                   "fal-ai/ltx-2.3/text-to-video instead")
    assert_nothing_created(task_queue)


def test_a_portrait_video_at_24_fps(user, task_queue):
    out = run("a lighthouse at dusk", "--aspect-ratio", "9:16", "--fps", "24", "--duration", "8")
    generation = Generation.objects.get()
    assert out.strip() == f"created {generation.id} (fal-ai/ltx-2.3/text-to-video, $0.64)"
    assert generation.input == {"prompt": "a lighthouse at dusk", "duration": 8, "resolution": "1080p", "fps": 24,
                                "generate_audio": True, "aspect_ratio": "9:16"}
    assert generation.status == Generation.Status.PENDING and generation.project.name == "Inbox"


def test_start_and_end_images_from_files(user, task_queue, tmp_path, media_root):
    start = png_file(tmp_path / "start.png")
    end = png_file(tmp_path / "end.png", color=(20, 80, 200), size=(48, 27))
    out = run("from dawn to dusk", "--image", str(tmp_path / "start.png"), "--end-image", str(tmp_path / "end.png"))
    generation = Generation.objects.get()
    assert out.strip() == f"created {generation.id} (fal-ai/ltx-2.3/image-to-video, $0.36)"
    assert (generation.input["image_url"], generation.input["end_image_url"]) == ("studio:start-image",
                                                                                 "studio:end-image")
    for stored, data in ((generation.start_image, start), (generation.end_image, end)):
        with default_storage.open(stored.key, "rb") as handle:
            assert handle.read() == data
    reserve = UsageEntry.objects.get(job=generation.pk)
    assert reserve.bytes == estimate_bytes(duration=6, resolution="1080p", fps=25, audio=True) + len(start) + len(end)


def test_every_option_has_help_and_the_help_has_examples(capsys):
    from generations.management.commands.generate import Command

    parser = Command().create_parser("manage.py", "generate")
    assert all(action.help for action in parser._actions)
    text = parser.format_help()
    assert "examples:\n  manage.py generate " in text and "--dry-run" in text and "--end-image PATH_OR_URL" in text
    assert "  fal-ai/ltx-2.3/image-to-video/fast\n" in text and "now 2.3" in text


# --- manage.py models --------------------------------------------------------------------------------

def test_models_prints_the_catalog_as_a_table(task_queue):
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/text-to-video", retired=True,
                                    replacement="fal-ai/ltx-2.3/text-to-video")
    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2.3/text-to-video/fast",
                                    price_per_second={"1080p": "0.05"})
    out = io.StringIO()
    call_command("models", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["ID", "VERSION", "KIND", "TIER", "ENABLED", "AVAILABLE", "1080p", "1440p", "2160p",
                                "SHORT", "NAME"]
    rows = {line.split()[0]: line.split() for line in lines[1:9]}
    assert rows["fal-ai/ltx-2/text-to-video"] == ["fal-ai/ltx-2/text-to-video", "2.0", "t2v", "standard", "retired",
                                                  "yes", "0.06", "0.12", "0.24", "-"]
    assert rows["fal-ai/ltx-2.3/text-to-video/fast"][4:] == ["yes", "yes", "0.05*", "0.08", "0.16", "t2v-fast"]
    assert rows["fal-ai/ltx-2.3/image-to-video/fast"][4:] == ["yes", "yes", "0.04?", "0.08?", "0.16?", "i2v-fast"]
    assert rows["fal-ai/ltx-2.3/text-to-video"][-1] == "t2v" and len(rows) == 8
    text = out.getvalue()
    assert "? unconfirmed" in text and "STUDIO_LTX_VERSION (now 2.3)" in text
    assert "fal-ai/ltxv-2/text-to-video = fal-ai/ltx-2/text-to-video" in text
    assert ("  fal-ai/ltx-2/text-to-video: fal-ai/ltx-2/text-to-video has been retired; use "
            "fal-ai/ltx-2.3/text-to-video instead") in lines


def test_models_json_is_what_the_api_answers(user, task_queue):
    from rest_framework.test import APIClient

    EndpointOverride.objects.create(endpoint_id="fal-ai/ltx-2/image-to-video", enabled=False)
    out = io.StringIO()
    call_command("models", "--json", stdout=out)
    client = APIClient()
    client.force_authenticate(user)
    assert json.loads(out.getvalue()) == client.get("/api/v1/models/").json()
    assert len(json.loads(out.getvalue())) == 8
