"""storage.media: probing reads the real file; posters are JPEGs of the right frame; bad files raise MediaError."""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from storage.media import MediaError, VideoProbe, make_poster, probe_video
from tests.videos import frame_green, make_mp4


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.mark.parametrize(
    ("fps", "audio", "width", "height", "duration"),
    [(25, True, 320, 180, 2), (25, False, 320, 180, 2), (50, True, 256, 144, 2), (50, False, 320, 180, 1)],
)
def test_probe_reports_every_field_of_an_mp4(videos: Path, fps: int, audio: bool, width: int, height: int,
                                             duration: int) -> None:
    # given an H.264 MP4 with a known shape
    path = make_mp4(videos / f"probe-{fps}-{audio}-{width}.mp4", width=width, height=height, fps=fps,
                    duration=duration, audio=audio)

    # when it is probed
    probe = probe_video(path)

    # then every field is what was encoded
    assert probe == VideoProbe(
        width=width,
        height=height,
        fps=float(fps),
        duration=float(duration),
        num_frames=duration * fps,
        has_audio=audio,
        video_codec="h264",
        audio_codec="aac" if audio else None,
    )


def test_probe_counts_frames_by_decoding_when_the_container_has_no_frame_count(videos: Path) -> None:
    # given a WebM file, whose stream metadata carries neither a frame count nor a stream duration
    path = videos / "no-count.webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    with av.open(str(path)) as check:
        assert check.streams.video[0].frames == 0

    # when it is probed
    probe = probe_video(path)

    # then the frames were counted and the duration came from the container
    assert (probe.num_frames, probe.duration, probe.fps) == (30, 1.2, 25.0)
    assert (probe.width, probe.height, probe.video_codec, probe.has_audio) == (64, 48, "vp9", False)


def test_probe_rejects_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    # given a text file named like a video
    path = tmp_path / "notes.mp4"
    path.write_text("definitely not a video\n" * 100)

    # when / then
    with pytest.raises(MediaError, match="not a readable video"):
        probe_video(path)


def test_probe_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="No such file"):
        probe_video(tmp_path / "missing.mp4")


def test_probe_rejects_an_audio_only_file(tmp_path: Path) -> None:
    # given an AAC-only M4A file
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())

    # when / then
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_probe_rejects_a_truncated_mp4(videos: Path, tmp_path: Path, keep: float) -> None:
    # given a faststart MP4 cut short (its moov, up front, still describes every frame)
    data = make_mp4(videos / "whole.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * keep)])

    # when / then
    size = path.stat().st_size
    with pytest.raises(MediaError, match=rf"truncated MP4 \(file has {size} bytes, its boxes declare {len(data)}\)"):
        probe_video(path)


@pytest.mark.parametrize(("fps", "duration", "shown_frame"), [(25, 2, 25), (50, 2, 50), (25, 1, 13)])
def test_poster_is_a_jpeg_of_the_frame_at_one_second_or_mid_video(videos: Path, fps: int, duration: int,
                                                                   shown_frame: int) -> None:
    # given a video whose frame i is flat green frame_green(i)
    path = make_mp4(videos / f"poster-{fps}-{duration}.mp4", fps=fps, duration=duration)

    # when its poster is cut
    data = make_poster(path)

    # then it is a full-size JPEG of the first frame at or after min(1.0 s, duration / 2)
    # (neighbouring frames differ by 7 in green, JPEG noise is about 2)
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("JPEG", (320, 180))
    green = np.asarray(image.convert("RGB"))[:, :, 1].mean()
    assert abs(green - frame_green(shown_frame)) < 3.5, green


def test_poster_is_scaled_down_to_max_width_keeping_the_aspect_ratio(videos: Path) -> None:
    # given a 640x360 video
    path = make_mp4(videos / "wide.mp4", width=640, height=360, fps=25, duration=1, audio=False)

    # when a poster at most 200 px wide is asked for
    image = Image.open(io.BytesIO(make_poster(path, max_width=200)))

    # then it is 200 px wide and 112 high (360 * 200 / 640 = 112.5, rounded half to even)
    assert (image.format, image.size) == ("JPEG", (200, 112))


def test_poster_of_a_non_video_raises(tmp_path: Path) -> None:
    path = tmp_path / "image.mp4"
    path.write_bytes(b"\x00" * 4096)

    with pytest.raises(MediaError):
        make_poster(path)
