"""`python manage.py generate "prompt" [--wait]`: submit an LTX job as a user from a terminal
(or, with --dry-run, only price it)."""
from __future__ import annotations

import base64
import json
import mimetypes
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.text import text_problem
from fal_protocol import catalog
from generations import ltx
from generations.management.command_help import ExamplesHelpFormatter
from generations.models import Generation
from generations.quotes import Quote, quote_for, usd_text
from generations.services.create import OwnerSuspended, generation_create
from generations.services.projects import project_get_or_create
from storage.backend import object_location
from storage.quotas import QuotaExceeded

# Options whose value is a path or is checked with the rest of the input (not as plain text).
UNCHECKED_OPTIONS = ("prompt", "image", "end_image")
EPILOG = """examples:
  manage.py generate "A cowboy walking through a dusty town at high noon" --wait
  manage.py generate "A lighthouse at dusk" --aspect-ratio 9:16 --fps 24 --duration 8
  manage.py generate "The fox looks up" --image start.png --end-image end.png --wait
  manage.py generate "A storm rolls in" --model t2v-fast --duration 20 --dry-run
  manage.py generate "A cowboy" --model fal-ai/ltx-2/text-to-video --resolution 1440p --no-audio

models: t2v, t2v-fast, i2v, i2v-fast (the endpoint of STUDIO_LTX_VERSION, now {version}), or
{ids}
`manage.py models` lists every endpoint with its fields and prices.
"""


class Command(BaseCommand):
    help = "Create an LTX video generation; with --wait, follow it to the stored file; with --dry-run, only price it."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", ExamplesHelpFormatter)
        ids = "".join(f"  {name}\n" for name in ltx.model_names() if name not in catalog.SHORT_NAMES)
        kwargs.setdefault("epilog", EPILOG.format(version=ltx.version(), ids=ids))
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prompt", help="what the video shows and sounds like")
        parser.add_argument("--model", default=None, choices=ltx.model_names(), metavar="MODEL",
                            help="t2v, t2v-fast, i2v, i2v-fast, or an endpoint id or alias (listed below) "
                                 "(default: t2v, or i2v with --image)")
        parser.add_argument("--duration", metavar="SECONDS",
                            help="video length in seconds: 6, 8 or 10 (fast models: up to 20; default 6)")
        parser.add_argument("--resolution", help="1080p, 1440p or 2160p (default 1080p)")
        parser.add_argument("--fps", help="frames per second: 25 or 50; LTX-2.3 also 24 and 48 (default 25)")
        parser.add_argument("--aspect-ratio", metavar="RATIO",
                            help="16:9; LTX-2.3 also 9:16 (portrait), and for image-to-video auto (the start "
                                 "image's orientation, its default)")
        parser.add_argument("--no-audio", action="store_true", help="make the video without sound")
        parser.add_argument("--image", metavar="PATH_OR_URL",
                            help="start image for image-to-video: a file path or an http(s) URL")
        parser.add_argument("--end-image", metavar="PATH_OR_URL",
                            help="end image (the clip's last frame; LTX-2.3 image-to-video): a file path or an "
                                 "http(s) URL")
        parser.add_argument("--project", default="", help="project name, created if new (default: Inbox)")
        parser.add_argument("--user", default=settings.STUDIO_DEMO_USERNAME,
                            help=f"the user the job belongs to (default: {settings.STUDIO_DEMO_USERNAME})")
        parser.add_argument("--wait", action="store_true", help="follow the job until it finishes")
        parser.add_argument("--dry-run", action="store_true",
                            help="check the input and print the exact endpoint and price; create nothing "
                                 "(images are checked for their form only: not decoded or fetched)")

    def handle(self, *args: Any, **options: Any) -> None:
        # Arguments that are not valid UTF-8 reach Python as lone surrogates (surrogateescape). The
        # prompt and the images' URL forms are checked with the rest of the input; a path is only read.
        for name, value in options.items():
            if name not in UNCHECKED_OPTIONS and isinstance(value, str) and (problem := text_problem(value)):
                raise CommandError(f"--{name.replace('_', '-')} {problem}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r} (make run creates the demo user)")
        data: dict[str, Any] = {"prompt": options["prompt"]}
        for name in ("duration", "resolution", "fps", "aspect_ratio"):
            if options[name] is not None:
                data[name] = options[name]
        if options["no_audio"]:
            data["generate_audio"] = False
        if options["image"]:
            data["image_url"] = _image_url("--image", options["image"])
        if options["end_image"]:
            data["end_image_url"] = _image_url("--end-image", options["end_image"])
        model = options["model"] or ("i2v" if options["image"] or options["end_image"] else "t2v")
        try:
            quote = quote_for(model, data)  # validates like the create, before the project is made
            if options["dry_run"]:
                self._print_quote(quote)
                return
            generation, _ = generation_create(owner=user, model=model, input=data,
                                              project=project_get_or_create(user, options["project"]))
        except ltx.InputError as exc:
            raise CommandError("invalid input: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
        except (QuotaExceeded, OwnerSuspended) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created {generation.id} ({generation.model_id}, ${generation.cost_usd:.2f})")
        if options["wait"]:
            self._follow(generation)

    def _print_quote(self, quote: Quote) -> None:
        self.stdout.write(f"dry run: {quote.endpoint.id} would cost ${usd_text(quote.cost_usd)} "
                          f"({quote.seconds} s at {quote.resolution} × ${usd_text(quote.per_second)}/s); "
                          "nothing was created")
        self.stdout.write("input: " + json.dumps(quote.input, ensure_ascii=False))

    def _follow(self, generation: Generation) -> None:
        started = time.monotonic()
        last_line, seen_logs = "", 0
        while True:
            generation.refresh_from_db()
            line = _describe(generation)
            if line != last_line:
                self.stdout.write(line)
                last_line = line
            for entry in generation.logs[seen_logs:]:
                self.stdout.write(f"  log: {entry.get('message', '')}")
            seen_logs = max(seen_logs, len(generation.logs))
            if generation.status == Generation.Status.SUCCEEDED:
                self._print_video(generation)
                return
            if generation.status in Generation.TERMINAL:
                raise CommandError(f"generation {generation.id} {generation.status}: "
                                   f"[{generation.error_code}] {generation.error_message}")
            if (generation.status == Generation.Status.PENDING and generation.submit_attempts == 0
                    and time.monotonic() - started > settings.STUDIO_NO_WORKER_SECONDS):
                raise CommandError(
                    f"no worker picked up generation {generation.id} within {settings.STUDIO_NO_WORKER_SECONDS} s: "
                    "is the worker cluster running (`python manage.py qcluster`; `make run` starts it)? "
                    "The job stays queued and will run once a cluster starts.")
            time.sleep(0.25)

    def _print_video(self, generation: Generation) -> None:
        video = generation.video
        assert video is not None, "a succeeded generation has its video"
        self.stdout.write(f"stored: {object_location(video.file.key)}")
        self.stdout.write(
            f"video: {video.width}x{video.height}, {video.fps:g} fps, {video.duration:.3f} s, "
            f"{video.num_frames} frames, audio: {'yes' if video.has_audio else 'no'}, "
            f"{video.file_size} bytes, {video.content_type}")


def _describe(generation: Generation) -> str:
    text = f"status: {generation.status}"
    if generation.status == Generation.Status.QUEUED and generation.queue_position is not None:
        text += f" (queue position {generation.queue_position})"
    return text


def _image_url(option: str, value: str) -> str:
    """An image option's value as an input URL: a URL or data URI as given, a file as a data URI."""
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        raise CommandError(f"{option}: no such file {value!r}")
    content_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode()}"
