"""`python manage.py generate "prompt" [--wait]`: submit an LTX-2 job as a user from a terminal."""
from __future__ import annotations

import base64
import mimetypes
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.text import text_problem
from generations import ltx
from generations.models import Generation
from generations.services.create import OwnerSuspended, generation_create
from generations.services.projects import project_get_or_create
from storage.backend import object_location
from storage.quotas import QuotaExceeded


class Command(BaseCommand):
    help = "Create an LTX-2 video generation; with --wait, follow it to the stored file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prompt")
        parser.add_argument("--model", default=None,
                            help="t2v, t2v-fast, i2v, i2v-fast or a fal model id (default: t2v, or i2v with --image)")
        parser.add_argument("--duration")
        parser.add_argument("--resolution")
        parser.add_argument("--fps")
        parser.add_argument("--aspect-ratio")
        parser.add_argument("--no-audio", action="store_true")
        parser.add_argument("--image", help="start image for image-to-video: a path or an http(s) URL")
        parser.add_argument("--project", default="", help="project name (default: Inbox)")
        parser.add_argument("--user", default=settings.STUDIO_DEMO_USERNAME)
        parser.add_argument("--wait", action="store_true", help="follow the job until it finishes")

    def handle(self, *args: Any, **options: Any) -> None:
        # Arguments that are not valid UTF-8 reach Python as lone surrogates (surrogateescape). The
        # prompt and the image's URL form are checked with the rest of the input; a path is only read.
        for name, value in options.items():
            if name not in ("prompt", "image") and isinstance(value, str) and (problem := text_problem(value)):
                raise CommandError(f"--{name.replace('_', '-')} {problem}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r} (make run creates the demo user)")
        data = {"prompt": options["prompt"]}
        for name in ("duration", "resolution", "fps"):
            if options[name] is not None:
                data[name] = options[name]
        if options["aspect_ratio"] is not None:
            data["aspect_ratio"] = options["aspect_ratio"]
        if options["no_audio"]:
            data["generate_audio"] = False
        if options["image"]:
            data["image_url"] = _image_url(options["image"])
        try:
            model = options["model"] or ("i2v" if options["image"] else "t2v")
            generation, _ = generation_create(owner=user, model=model, input=data,
                                              project=project_get_or_create(user, options["project"]))
        except ltx.InputError as exc:
            raise CommandError("invalid input: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
        except (QuotaExceeded, OwnerSuspended) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created {generation.id} ({generation.model_id}, ${generation.cost_usd:.2f})")
        if options["wait"]:
            self._follow(generation)

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


def _image_url(value: str) -> str:
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        raise CommandError(f"--image: no such file {value!r}")
    content_type = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{content_type};base64,{base64.b64encode(path.read_bytes()).decode()}"
