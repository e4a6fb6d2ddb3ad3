"""Real MP4 rendering for the fal simulator.

Contract:

    render_video(path, *, width, height, fps, duration, audio, text,
                 progress=None, should_stop=None, image=None, end_image=None) -> dict

writes an H.264 (libx264, preset ultrafast, yuv420p, ``movflags=+faststart``) MP4 to
``path`` with exactly ``duration * fps`` frames, plus an AAC 48 kHz stereo track (a quiet
440 Hz sine) only when ``audio`` is true. ``width`` and ``height`` must be even and >= 2.
It returns the facts of what it wrote (no probing needed)::

    {"width", "height", "fps", "duration", "num_frames", "file_size", "has_audio"}

The frames show ``text`` (the prompt, word-wrapped), the output format, a running
timecode/frame counter, a progress bar and a bouncing box, so a player shows something
that visibly moves and seeks. Image-to-video (``image``, encoded bytes): frame 0 is the start
image itself (scaled and centre-cropped to the frame), then it slowly zooms in. With ``end_image``
the clip travels to it: the frames in between cross-fade towards it and the last frame is the end
image itself. ``image_is_portrait`` tells a start image's orientation (for the ``auto`` aspect
ratio). Speed comes from drawing the static parts once with Pillow
and only patching small regions of a YUV buffer with numpy per frame.

``progress(fraction)`` is called after each encoded frame; ``should_stop()`` is checked
per frame and, when it returns true, the partial file is removed and ``RenderCancelled``
is raised.

No Django imports here: the simulator runs inside or outside Django.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeAlias

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

SAMPLE_RATE = 48000
AUDIO_CHUNK = 1024  # AAC frame size
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.08  # quiet

__all__ = ["render_video", "RenderCancelled", "output_size", "image_is_portrait"]


class RenderCancelled(Exception):
    """Raised when ``should_stop()`` asks a render to stop."""


def output_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Size rendered for a requested size at 1/scale: each side rounded down to even, >= 2."""
    scale = max(1, int(scale))

    def side(n: int) -> int:
        return max(2, (n // scale) // 2 * 2)

    return side(width), side(height)


def render_video(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: int,
    duration: int,
    audio: bool,
    text: str,
    progress: Callable[[float], object] | None = None,
    should_stop: Callable[[], bool] | None = None,
    image: bytes | None = None,
    end_image: bytes | None = None,
) -> dict[str, Any]:
    """Render a test-pattern MP4; with `image` (encoded bytes), image-to-video: the image scaled to the
    frame is frame 0, then it slowly zooms in under a moving progress bar and box; with `end_image`
    too, the frames cross-fade towards it and the last frame is the end image scaled to the frame.
    An image that does not decode is left out (the clip renders as if it had not been given)."""
    width, height, fps, duration = int(width), int(height), int(fps), int(duration)
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 2, got {width}x{height}")
    if fps <= 0 or duration <= 0:
        raise ValueError("fps and duration must be positive")
    num_frames = duration * fps
    path = os.fspath(path)
    try:
        _encode(path, width, height, fps, num_frames, audio, text, progress, should_stop, image, end_image)
    except BaseException:
        _remove_quietly(path)
        raise
    return {
        "width": width,
        "height": height,
        "fps": fps,
        "duration": duration,
        "num_frames": num_frames,
        "file_size": os.path.getsize(path),
        "has_audio": bool(audio),
    }


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _encode(path: str, width: int, height: int, fps: int, num_frames: int, audio: bool, text: str,
            progress: Callable[[float], object] | None, should_stop: Callable[[], bool] | None,
            image: bytes | None = None, end_image: bytes | None = None) -> None:
    painter = _FramePainter(width, height, fps, num_frames, audio, text, image=_fitted(image, width, height),
                            end=_fitted(end_image, width, height))
    container = av.open(path, "w", options={"movflags": "+faststart"})
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width = width
        video.height = height
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "23"}
        time_base = Fraction(1, fps)
        sound = _ToneWriter(container, num_frames / fps) if audio else None

        for index in range(num_frames):
            if should_stop is not None and should_stop():
                raise RenderCancelled()
            frame = av.VideoFrame.from_ndarray(painter.frame(index), format="yuv420p")
            frame.pts = index
            frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
            if sound is not None:
                # Interleave audio with video so the faststart file is well-mixed.
                sound.write_until((index + 1) / fps)
            if progress is not None:
                progress((index + 1) / num_frames)

        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            sound.finish()
    finally:
        container.close()


class _ToneWriter:
    """Writes a sine tone in AAC-sized chunks, exactly ``seconds`` long."""

    def __init__(self, container: av.container.OutputContainer, seconds: float) -> None:
        self.stream = container.add_stream("aac", rate=SAMPLE_RATE)
        self.stream.layout = "stereo"
        self.container = container
        self.total = int(round(seconds * SAMPLE_RATE))
        self.written = 0
        self.time_base = Fraction(1, SAMPLE_RATE)

    def write_until(self, seconds: float) -> None:
        target = min(self.total, int(seconds * SAMPLE_RATE))
        while self.written + AUDIO_CHUNK <= target or (
            target == self.total and self.written < self.total
        ):
            count = min(AUDIO_CHUNK, self.total - self.written)
            t = (np.arange(self.written, self.written + count, dtype=np.float64)) / SAMPLE_RATE
            tone = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                np.vstack([tone, tone]), format="fltp", layout="stereo"
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self.written
            frame.time_base = self.time_base
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.written += count

    def finish(self) -> None:
        self.write_until(self.total / SAMPLE_RATE)
        for packet in self.stream.encode():
            self.container.mux(packet)


# --- frame painting ------------------------------------------------------------------------


def _rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, the same conversion swscale applies by default."""
    r, g, b = rgb
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return int(round(y)), int(round(u)), int(round(v))


def _even(n: float) -> int:
    return int(n) // 2 * 2


def _register_heif() -> None:
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - HEIF inputs then render without their image
        pass


def image_is_portrait(image: bytes | None) -> bool:
    """Whether an input image is taller than wide as shown (EXIF orientation applied); False when there is
    no image or it does not decode. Reads the header only."""
    if not image:
        return False
    _register_heif()
    try:
        with Image.open(io.BytesIO(image)) as opened:
            width, height = opened.size
            if opened.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
            return height > width
    except Exception:  # noqa: BLE001 - an unreadable image has no orientation
        return False


_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that show the picture turned by 90 degrees


def _fitted(image: bytes | None, width: int, height: int) -> Image.Image | None:
    """An input image as shown (EXIF orientation applied), scaled and centre-cropped to the frame, or None
    (no image, or not decodable)."""
    if not image:
        return None
    _register_heif()
    try:
        with Image.open(io.BytesIO(image)) as opened:
            upright = ImageOps.exif_transpose(opened)
            return ImageOps.fit(upright.convert("RGB"), (width, height), Image.Resampling.LANCZOS)
    except Exception:  # noqa: BLE001 - an unreadable image is left out (text-to-video's pattern instead)
        return None


class _FramePainter:
    """Holds the pre-rendered background as YUV planes and patches moving parts per frame."""

    BAR_RGB = (80, 200, 255)
    BOX_RGB = (255, 170, 40)
    TRACK_RGB = (45, 50, 60)

    ZOOM = 0.3  # image-to-video: how far the start image zooms in over the clip...
    PAN = 0.1  # ...while the view drifts right by this fraction of the width

    def __init__(self, width: int, height: int, fps: int, num_frames: int, audio: bool, text: str,
                 image: Image.Image | None = None, end: Image.Image | None = None) -> None:
        self.start = image
        self.w, self.h = width, height
        self.fps, self.num_frames = fps, num_frames
        w, h = width, height
        self.buf = np.empty(w * h * 3 // 2, dtype=np.uint8)
        cw, ch = w // 2, h // 2
        self.y = self.buf[: w * h].reshape(h, w)
        self.u = self.buf[w * h : w * h + cw * ch].reshape(ch, cw)
        self.v = self.buf[w * h + cw * ch :].reshape(ch, cw)
        self.shape = (h * 3 // 2, w)

        unit = h / 100.0
        self.bar = (_even(w * 0.05), _even(h * 0.90), _even(w * 0.95), _even(h * 0.90) + max(2, _even(unit * 2.2)))
        self.box_size = max(2, _even(unit * 7))
        self.box_y = max(0, min(h - self.box_size, _even(h * 0.78)))
        self.clock_font_px = max(6, int(unit * 4.5))
        self.clock_origin = (_even(w * 0.05), _even(h * 0.05))

        background = self.start if self.start is not None else self._draw_background(text, audio)
        self.bg_y, self.bg_u, self.bg_v = self._to_planes(background)
        self.digits = _DigitSprites(self.clock_font_px, self.bg_y_at(self.clock_origin))
        # The end image's planes, as float32 for the cross-fade towards it.
        self.end = None if end is None else tuple(plane.astype(np.float32) for plane in self._to_planes(end))

    def bg_y_at(self, xy: tuple[int, int]) -> int:
        x, y = xy
        return int(self.bg_y[min(y, self.h - 1), min(x, self.w - 1)])

    def _draw_background(self, text: str, audio: bool) -> Image.Image:
        w, h = self.w, self.h
        top, bottom = _palette(text)
        gradient = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        rgb = (np.array(top, np.float32) * (1 - gradient) + np.array(bottom, np.float32) * gradient)
        image = Image.fromarray(np.repeat(rgb, w, axis=1).astype(np.uint8), "RGB")
        if w < 32 or h < 32:
            return image
        draw = ImageDraw.Draw(image)
        unit = h / 100.0
        small = _font(max(6, int(unit * 3.2)))
        body = _font(max(7, int(unit * 4.2)))
        x0 = int(w * 0.05)
        # The clock sits top-left on a solid plate so digit sprites can be opaque.
        cx, cy = self.clock_origin
        draw.rectangle(
            [cx - 4, cy - 4, cx + self.clock_font_px * 9, cy + int(self.clock_font_px * 1.3)],
            fill=(12, 14, 18),
        )
        header = f"falsim  LTX-2  {self.w}x{self.h}  {self.fps} fps  {self.num_frames / self.fps:g} s  " + (
            "audio" if audio else "no audio"
        )
        draw.text((x0, int(h * 0.14)), header, font=small, fill=(200, 205, 215))
        y = int(h * 0.22)
        # Pillow's bitmap fallback font (no FreeType) has no size: it is about 11 px high.
        line_h = int((body.size if isinstance(body, ImageFont.FreeTypeFont) else 11) * 1.3)
        max_lines = max(1, int((h * 0.74 - y) / line_h))
        for line in _wrap(text or "(no prompt)", body, int(w * 0.9), max_lines):
            draw.text((x0, y), line, font=body, fill=(245, 245, 245))
            y += line_h
        bx0, by0, bx1, by1 = self.bar
        draw.rectangle([bx0, by0, bx1 - 1, by1 - 1], fill=self.TRACK_RGB)
        return image

    def _to_planes(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
        flat = frame.reformat(format="yuv420p").to_ndarray().reshape(-1)
        w, h = self.w, self.h
        cw, ch = w // 2, h // 2
        y = flat[: w * h].reshape(h, w).copy()
        u = flat[w * h : w * h + cw * ch].reshape(ch, cw).copy()
        v = flat[w * h + cw * ch :].reshape(ch, cw).copy()
        return y, u, v

    def _fill(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        x0, x1 = max(0, x0), min(self.w, x1)
        y0, y1 = max(0, y0), min(self.h, y1)
        if x1 <= x0 or y1 <= y0:
            return
        yy, uu, vv = _rgb_to_yuv(rgb)
        self.y[y0:y1, x0:x1] = yy
        self.u[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = uu
        self.v[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = vv

    def frame(self, index: int) -> np.ndarray:
        last = index == self.num_frames - 1 and index > 0
        if self.end is not None and last:
            # The last frame is the end image itself, as frame 0 is the start image.
            for plane, end in zip((self.y, self.u, self.v), self.end, strict=True):
                np.copyto(plane, end, casting="unsafe")
            return self.buf.reshape(self.shape)
        if self.start is not None:
            if index == 0:
                np.copyto(self.y, self.bg_y)
                np.copyto(self.u, self.bg_u)
                np.copyto(self.v, self.bg_v)
                return self.buf.reshape(self.shape)
            self._zoomed_start(index)
        else:
            np.copyto(self.y, self.bg_y)
            np.copyto(self.u, self.bg_u)
            np.copyto(self.v, self.bg_v)
        if self.end is not None:
            self._fade_towards_end(index / max(1, self.num_frames - 1))
        self._draw_motion(index)
        if self.start is None and self.w >= 32 and self.h >= 32:
            seconds = index / self.fps
            clock = f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}.{index % self.fps:02d} {index + 1:05d}"
            self.digits.blit(self.y, clock, *self.clock_origin)
        return self.buf.reshape(self.shape)

    def _fade_towards_end(self, t: float) -> None:
        """Cross-fade the frame in the buffer towards the end image by ``t`` (0: unchanged, 1: the end image)."""
        assert self.end is not None  # frame() comes here only with an end image
        for plane, end in zip((self.y, self.u, self.v), self.end, strict=True):
            mixed = plane.astype(np.float32) * (1.0 - t) + end * t
            np.copyto(plane, np.rint(mixed), casting="unsafe")

    def _zoomed_start(self, index: int) -> None:
        """The start image zoomed in and panned for frame ``index`` (> 0), into the buffer."""
        t = index / max(1, self.num_frames - 1)
        zoom = 1.0 + self.ZOOM * t
        cw, ch = self.w / zoom, self.h / zoom
        left = min(self.w - cw, (self.w - cw) / 2 + self.PAN * self.w * t)
        top = (self.h - ch) / 2
        assert self.start is not None  # frame() comes here only with a start image
        zoomed = self.start.resize((self.w, self.h), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
        y, u, v = self._to_planes(zoomed)
        np.copyto(self.y, y)
        np.copyto(self.u, u)
        np.copyto(self.v, v)

    def _draw_motion(self, index: int) -> None:
        """The progress bar, and a box bouncing across the width once every two seconds (smooth motion)."""
        done = (index + 1) / self.num_frames
        bx0, by0, bx1, by1 = self.bar
        self._fill(bx0, by0, bx0 + _even((bx1 - bx0) * done), by1, self.BAR_RGB)
        phase = (index / self.fps) % 2.0
        travel = max(0, self.w - self.box_size)
        x = _even(travel * (phase if phase <= 1.0 else 2.0 - phase))
        self._fill(x, self.box_y, x + self.box_size, self.box_y + self.box_size, self.BOX_RGB)


class _DigitSprites:
    """Pre-rendered opaque luma glyphs for the clock (digits, ':', '.', ' ')."""

    CHARS = "0123456789:. "

    def __init__(self, size: int, background_y: int) -> None:
        font = _font(size)
        digit_w = max(int(font.getlength(c)) for c in "0123456789") + 1
        cell_h = int(size * 1.25)
        self.sprites = {}
        for char in self.CHARS:
            # Tabular digits keep the clock from jittering; punctuation keeps its own width.
            cell_w = digit_w if char.isdigit() else int(font.getlength(char)) + 1
            image = Image.new("L", (cell_w, cell_h), 0)
            ImageDraw.Draw(image).text((0, 0), char, font=font, fill=255)
            alpha = np.asarray(image, dtype=np.float32) / 255.0
            luma = background_y * (1 - alpha) + 235 * alpha
            self.sprites[char] = luma.astype(np.uint8)

    def blit(self, plane: np.ndarray, text: str, x: int, y: int) -> None:
        h, w = plane.shape
        for char in text:
            sprite = self.sprites.get(char)
            if sprite is None:
                continue
            sh, sw = sprite.shape
            x1, y1 = min(w, x + sw), min(h, y + sh)
            if x1 > x and y1 > y:
                plane[y:y1, x:x1] = sprite[: y1 - y, : x1 - x]
            x += sw


Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont
_FONTS: dict[int, Font] = {}


def _font(size: int) -> Font:
    font = _FONTS.get(size)
    if font is None:
        # Pillow >= 10.1 ships a scalable default font (Aileron) when FreeType is present.
        try:
            font = ImageFont.load_default(size=size)
        except (TypeError, OSError):
            font = ImageFont.load_default()
        _FONTS[size] = font
    return font


def _palette(text: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two background colours derived from the prompt, so different prompts look different."""
    digest = hashlib.sha256((text or "").encode("utf-8")).digest()
    top = (20 + digest[0] % 40, 24 + digest[1] % 40, 40 + digest[2] % 60)
    bottom = (8 + digest[3] % 20, 10 + digest[4] % 20, 16 + digest[5] % 30)
    return top, bottom


def _wrap(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap by pixel width; stops once max_lines are full (prompts may be 2500 chars)."""
    lines: list[str] = []
    truncated = False
    for paragraph in text.splitlines() or [""]:
        current = ""
        words = paragraph.split()
        while words:
            word = words.pop(0)
            candidate = f"{current} {word}" if current else word
            if font.getlength(candidate) <= max_width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
                words.insert(0, word)
            else:
                # A single word wider than a line: break it where it stops fitting.
                cut = _fitting_prefix(word, font, max_width)
                lines.append(word[:cut])
                words.insert(0, word[cut:])
            if len(lines) > max_lines:
                truncated = True
                break
        if truncated:
            break
        lines.append(current)
        if len(lines) > max_lines:
            truncated = True
            break
    if truncated or len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip() + " …"
    return lines


def _fitting_prefix(word: str, font: Font, max_width: int) -> int:
    """Length of the longest prefix of ``word`` that fits (at least 1), by binary search."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(word[:middle]) <= max_width:
            low = middle
        else:
            high = middle - 1
    return low
