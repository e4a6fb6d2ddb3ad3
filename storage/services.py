"""Keeping videos: stream in from a URL, probe, poster, record — and delete them again."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction

from storage.media import make_poster, probe_video
from storage.models import StoredObject, StoredVideo
from storage.transfer import delete_key, download_to_tempfile, store_bytes, store_file

VIDEO_CONTENT_TYPES = ("video/mp4",)


@dataclass(frozen=True)
class VideoKeys:
    video: str
    poster: str


def video_store_from_url(*, owner: User, url: str, keys: VideoKeys, file_name: str,
                         max_bytes: int) -> StoredVideo:
    """Copy the MP4 at `url` into storage under `keys`, probe it, cut a poster, and record both.

    Memory stays bounded (the download spools to a temporary file). Idempotent: the keys are fixed,
    so a rerun overwrites the same objects and updates the same rows. Raises
    `storage.transfer.TransferError` for a bad download and `storage.media.MediaError` for a file
    that is not a readable video. Call outside `atomic` (network I/O); it opens its own transaction.
    """
    downloaded = download_to_tempfile(url, max_bytes=max_bytes, allowed_content_types=VIDEO_CONTENT_TYPES)
    try:
        probe = probe_video(downloaded.path)
        poster = make_poster(downloaded.path)
        video_size = store_file(keys.video, downloaded.path, content_type="video/mp4")
        poster_size = store_bytes(keys.poster, poster, content_type="image/jpeg")
    finally:
        os.unlink(downloaded.path)
    with transaction.atomic():
        video_object, _ = StoredObject.objects.update_or_create(
            key=keys.video,
            defaults=dict(owner=owner, size=video_size, content_type="video/mp4", sha256=downloaded.sha256),
        )
        poster_object, _ = StoredObject.objects.update_or_create(
            key=keys.poster,
            defaults=dict(owner=owner, size=poster_size, content_type="image/jpeg",
                          sha256=hashlib.sha256(poster).hexdigest()),
        )
        video, _ = StoredVideo.objects.update_or_create(
            file=video_object,
            defaults=dict(
                poster=poster_object, file_name=file_name, width=probe.width, height=probe.height, fps=probe.fps,
                duration=probe.duration, num_frames=probe.num_frames, has_audio=probe.has_audio,
                video_codec=probe.video_codec, audio_codec=probe.audio_codec or "",
            ),
        )
    return video


def video_delete(video: StoredVideo) -> None:
    """Delete a stored video, its poster and their objects. Idempotent; the rows go after the bytes,
    so an interrupted delete is finished by running it again."""
    objects = [video.file] + ([video.poster] if video.poster is not None else [])
    for stored in objects:
        delete_key(stored.key)
    with transaction.atomic():
        video.delete()
        StoredObject.objects.filter(pk__in=[o.pk for o in objects]).delete()
