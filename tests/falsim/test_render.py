"""falsim.render: real H.264/AAC MP4s with exact size, fps, frame count and duration."""

import av
import numpy as np
import pytest

from falsim.render import RenderCancelled, output_size, render_video


def probe(path):
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": float(video.average_rate),
            "frames": video.frames,
            "duration": float(video.duration * video.time_base),
            "container_duration": container.duration / av.time_base,
            "audio": [
                (a.codec_context.name, a.rate, a.channels, float(a.duration * a.time_base))
                for a in container.streams.audio
            ],
        }
    with av.open(str(path)) as container:
        facts["decoded_frames"] = sum(1 for _ in container.decode(video=0))
    return facts


@pytest.mark.parametrize("fps", [25, 50])
@pytest.mark.parametrize("audio", [True, False])
def test_render_writes_exact_mp4(tmp_path, fps, audio):
    width, height = output_size(1920, 1080, 8)
    path = tmp_path / "out.mp4"

    info = render_video(path, width=width, height=height, fps=fps, duration=6, audio=audio,
                        text="A red fox runs through fresh snow at dusk")

    assert info == {"width": 240, "height": 134, "fps": fps, "duration": 6, "num_frames": 6 * fps,
                    "file_size": path.stat().st_size, "has_audio": audio}
    facts = probe(path)
    assert facts["codec"] == "h264"
    assert facts["pix_fmt"] == "yuv420p"
    assert (facts["width"], facts["height"]) == (240, 134)
    assert facts["fps"] == fps
    assert facts["frames"] == 6 * fps
    assert facts["decoded_frames"] == 6 * fps
    assert facts["duration"] == pytest.approx(6.0, abs=1e-6)
    assert facts["container_duration"] == pytest.approx(6.0, abs=0.03)
    if audio:
        assert len(facts["audio"]) == 1
        name, rate, channels, seconds = facts["audio"][0]
        assert (name, rate, channels) == ("aac", 48000, 2)
        assert seconds == pytest.approx(6.0, abs=0.03)
    else:
        assert facts["audio"] == []


def test_render_longer_clip_frame_count(tmp_path):
    path = tmp_path / "long.mp4"
    info = render_video(path, width=96, height=54, fps=25, duration=12, audio=True, text="long")
    facts = probe(path)
    assert info["num_frames"] == facts["frames"] == facts["decoded_frames"] == 300
    assert facts["duration"] == pytest.approx(12.0, abs=1e-6)


def test_faststart_puts_moov_before_mdat(tmp_path):
    path = tmp_path / "fs.mp4"
    render_video(path, width=64, height=36, fps=25, duration=6, audio=False, text="x")
    head = path.read_bytes()
    assert 0 <= head.find(b"moov") < head.find(b"mdat")


def first_frame(path, index=0):
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return frame.to_ndarray(format="rgb24")


def test_prompt_text_is_drawn_and_frames_move(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    render_video(a, width=320, height=180, fps=25, duration=6, audio=False, text="A lighthouse in a storm")
    render_video(b, width=320, height=180, fps=25, duration=6, audio=False, text="Completely different words here")
    frame_a0, frame_a50, frame_b0 = first_frame(a, 0), first_frame(a, 50), first_frame(b, 0)
    assert frame_a0.shape == (180, 320, 3)
    # Different prompts give different pictures; later frames differ from the first.
    assert np.abs(frame_a0.astype(int) - frame_b0.astype(int)).mean() > 1
    assert np.abs(frame_a0.astype(int) - frame_a50.astype(int)).mean() > 0.5


def test_tiny_and_huge_scales(tmp_path):
    assert output_size(1920, 1080, 1) == (1920, 1080)
    assert output_size(2560, 1440, 3) == (852, 480)
    assert output_size(3840, 2160, 4) == (960, 540)
    assert output_size(1920, 1080, 10_000) == (2, 2)
    path = tmp_path / "tiny.mp4"
    info = render_video(path, width=2, height=2, fps=50, duration=6, audio=True, text="tiny")
    assert probe(path)["frames"] == info["num_frames"] == 300


def test_odd_size_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        render_video(tmp_path / "x.mp4", width=241, height=134, fps=25, duration=6, audio=False, text="x")


def test_should_stop_cancels_and_removes_partial_file(tmp_path):
    path = tmp_path / "cancel.mp4"
    seen = []

    def progress(fraction):
        seen.append(fraction)

    with pytest.raises(RenderCancelled):
        render_video(path, width=64, height=36, fps=25, duration=6, audio=True, text="x",
                     progress=progress, should_stop=lambda: len(seen) >= 10)
    assert not path.exists()
    assert seen[:2] == [1 / 150, 2 / 150]


def _quadrants(size=(320, 180)):
    import io

    from tests.images import quadrants

    image = quadrants(size)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image


def _small(image):
    from PIL import Image

    return np.asarray(image.convert("RGB").resize((16, 9), Image.Resampling.BOX), dtype=np.float32)


def test_image_to_video_starts_from_the_image_and_then_moves(tmp_path):
    data, original = _quadrants()
    width, height = output_size(1920, 1080, 8)
    path = tmp_path / "i2v.mp4"
    info = render_video(path, width=width, height=height, fps=25, duration=6, audio=False, text="x", image=data)
    assert (info["width"], info["height"], info["num_frames"]) == (width, height, 150)
    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    assert len(frames) == 150
    assert np.abs(_small(frames[0]) - _small(original)).mean() < 10
    # it animates (zoom, bar, box), and differs from the text-to-video pattern of the same request
    changed = np.abs(np.asarray(frames[-1], np.float32) - np.asarray(frames[0], np.float32)).max(axis=-1) > 40
    assert changed.mean() > 0.02
    text_path = tmp_path / "t2v.mp4"
    render_video(text_path, width=width, height=height, fps=25, duration=6, audio=False, text="x")
    with av.open(str(text_path)) as container:
        text_frame0 = next(container.decode(video=0)).to_image()
    assert np.abs(_small(text_frame0) - _small(original)).mean() > 40


def test_an_undecodable_image_renders_like_text_to_video(tmp_path):
    width, height = output_size(1920, 1080, 16)
    info = render_video(tmp_path / "x.mp4", width=width, height=height, fps=25, duration=6, audio=False, text="x",
                        image=b"not an image")
    assert info["num_frames"] == 150


def test_an_end_image_is_the_last_frame_and_the_frames_between_blend(tmp_path):
    import io

    from tests.images import quadrants

    start, end = quadrants((320, 180)), quadrants((320, 180)).rotate(180)
    encoded = []
    for image in (start, end):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    width, height = output_size(1920, 1080, 8)
    path = tmp_path / "flf.mp4"
    info = render_video(path, width=width, height=height, fps=24, duration=6, audio=False, text="x",
                        image=encoded[0], end_image=encoded[1])
    assert (info["width"], info["height"], info["num_frames"]) == (240, 134, 144)
    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    assert len(frames) == 144
    assert np.abs(_small(start) - _small(end)).mean() > 50
    assert np.abs(_small(frames[0]) - _small(start)).mean() < 10
    assert np.abs(_small(frames[-1]) - _small(end)).mean() < 10
    halfway = _small(frames[72])
    assert np.abs(halfway - _small(start)).mean() > 20 and np.abs(halfway - _small(end)).mean() > 20


def test_image_orientation_as_shown(tmp_path):
    import io

    from PIL import Image

    from falsim.render import image_is_portrait

    def encoded(size, orientation=None):
        buffer = io.BytesIO()
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        Image.new("RGB", size, (200, 30, 30)).save(buffer, format="JPEG", exif=exif)
        return buffer.getvalue()

    assert image_is_portrait(encoded((90, 160))) is True
    assert image_is_portrait(encoded((160, 90))) is False
    assert image_is_portrait(encoded((100, 100))) is False  # square: landscape
    assert image_is_portrait(encoded((160, 90), orientation=6)) is True  # shown turned a quarter
    assert image_is_portrait(encoded((90, 160), orientation=3)) is True  # shown upside down: still portrait
    assert image_is_portrait(None) is False and image_is_portrait(b"not an image") is False
    # The start frame is the image as shown: stored landscape (left half red, right half blue) with
    # orientation 6 (turn a quarter clockwise), it shows portrait, red above blue.
    pixels = np.zeros((90, 160, 3), dtype=np.uint8)
    pixels[:, :80], pixels[:, 80:] = (200, 30, 30), (30, 30, 200)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", exif=exif)
    path = tmp_path / "turned.mp4"
    render_video(path, width=90, height=160, fps=25, duration=6, audio=False, text="x", image=buffer.getvalue())
    frame = first_frame(path).astype(int)
    assert np.abs(frame[10:70].mean(axis=(0, 1)) - (200, 30, 30)).max() < 15
    assert np.abs(frame[90:150].mean(axis=(0, 1)) - (30, 30, 200)).max() < 15
