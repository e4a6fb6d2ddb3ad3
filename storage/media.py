"""Read what a stored video really is, and cut its poster frame (PyAV, in process, no ffmpeg CLI).

Contract:
- `probe_video(path)` opens the file itself and returns a `VideoProbe` of its first video stream:
  coded width/height, average frame rate, duration (video stream, falling back to the container),
  frame count (stream metadata, falling back to decoding and counting when the metadata says 0),
  whether any audio stream exists, and codec names. An ISO BMFF file (MP4/MOV) whose top-level boxes
  run past the end of the file is truncated and rejected, because PyAV happily opens a faststart MP4
  cut in half and reports the frame count of the whole file.
- `make_poster(path, max_width=1280)` returns JPEG bytes of the frame shown at min(1.0 s, duration / 2),
  scaled down (never up) to `max_width`, keeping the aspect ratio.
- Anything that is not a readable video (missing file, garbage, no video stream, truncated, undecodable)
  raises `MediaError` with a message that says why.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

import av
import av.error
from PIL import Image

POSTER_AT_SECONDS = 1.0
POSTER_JPEG_QUALITY = 85


class MediaError(Exception):
    """The file is not a readable video; the message says why."""


@dataclass(frozen=True)
class VideoProbe:
    width: int
    height: int
    fps: float
    duration: float
    num_frames: int
    has_audio: bool
    video_codec: str
    audio_codec: str | None


def probe_video(path: str | os.PathLike) -> VideoProbe:
    _check_not_truncated(path)
    with _open(path) as container:
        video = _video_stream(container, path)
        width, height = video.codec_context.width, video.codec_context.height
        if not width or not height:
            raise MediaError(f"{os.fspath(path)}: the video stream has no frame size")
        rate = video.average_rate or video.guessed_rate or video.base_rate
        if not rate:
            raise MediaError(f"{os.fspath(path)}: the video stream has no frame rate")
        num_frames = video.frames or _count_frames_by_decoding(container, path)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoProbe(
            width=width,
            height=height,
            fps=float(rate),
            duration=_duration(container, video),
            num_frames=num_frames,
            has_audio=audio is not None,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


def make_poster(path: str | os.PathLike, *, max_width: int = 1280) -> bytes:
    with _open(path) as container:
        video = _video_stream(container, path)
        video.thread_type = "AUTO"
        time_base = video.time_base
        if time_base is None:
            raise MediaError(f"{os.fspath(path)}: the video stream has no time base")
        start = float(video.start_time * time_base) if video.start_time is not None else 0.0
        target = start + min(POSTER_AT_SECONDS, _duration(container, video) / 2)
        frame = None
        try:
            # Seeking lands on the keyframe at or before the target; decode forward from there.
            container.seek(int(target / time_base), stream=video, backward=True, any_frame=False)
            for decoded in container.decode(video):
                frame = decoded
                if decoded.time is not None and decoded.time >= target - 1e-6:
                    break
        except av.error.FFmpegError as exc:
            if frame is None:
                raise MediaError(f"{os.fspath(path)}: cannot decode a poster frame: {exc}") from exc
        if frame is None:
            raise MediaError(f"{os.fspath(path)}: the video stream has no decodable frame")
        image = frame.to_image()
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=POSTER_JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    try:
        return av.open(os.fspath(path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{os.fspath(path)}: not a readable video: {exc}") from exc


def _video_stream(container: av.container.InputContainer, path: str | os.PathLike) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{os.fspath(path)}: no video stream")
    return container.streams.video[0]


def _duration(container: av.container.InputContainer, video: av.VideoStream) -> float:
    if video.duration and video.time_base is not None:
        return float(video.duration * video.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _count_frames_by_decoding(container: av.container.InputContainer, path: str | os.PathLike) -> int:
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    count = 0
    try:
        for _ in container.decode(video):
            count += 1
    except av.error.FFmpegError as exc:
        raise MediaError(f"{os.fspath(path)}: decoding failed after {count} frames: {exc}") from exc
    if count == 0:
        raise MediaError(f"{os.fspath(path)}: the video stream has no decodable frame")
    return count


def _check_not_truncated(path: str | os.PathLike) -> None:
    """Walk the top-level ISO BMFF boxes; a box that runs past the end of the file means truncation."""
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            if f.read(8)[4:8] != b"ftyp":
                return  # not MP4/MOV: PyAV's own checks are all we have
            offset = 0
            while offset < file_size:
                f.seek(offset)
                header = f.read(16)
                if len(header) < 8:
                    raise MediaError(f"{os.fspath(path)}: truncated MP4 (partial box header at byte {offset})")
                size, kind = struct.unpack(">I4s", header[:8])
                if size == 1:
                    if len(header) < 16:
                        raise MediaError(f"{os.fspath(path)}: truncated MP4 (partial box header at byte {offset})")
                    size = struct.unpack(">Q", header[8:16])[0]
                elif size == 0:
                    return  # the last box extends to the end of the file by definition
                if size < 8:
                    raise MediaError(f"{os.fspath(path)}: corrupt MP4 (box {kind!r} of size {size} at byte {offset})")
                offset += size
            if offset > file_size:
                raise MediaError(
                    f"{os.fspath(path)}: truncated MP4 (file has {file_size} bytes, its boxes declare {offset})"
                )
    except OSError as exc:
        raise MediaError(f"{os.fspath(path)}: not a readable video: {exc}") from exc
