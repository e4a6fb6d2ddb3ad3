"""Test helper: write small, real H.264 (+ AAC) MP4 files with PyAV.

`make_mp4` produces exactly round(duration × fps) video frames (libx264 ultrafast, yuv420p), optional
48 kHz stereo AAC covering the same duration, with the moov atom up front (faststart) like fal's files.
Frame i is flat green `frame_green(i)` over red/blue ramps, so a test can tell which frame an image shows.
"""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_green(index: int) -> int:
    return index * 7 % 256


def make_mp4(path: str | Path, *, width: int = 320, height: int = 180, fps: int = 25, duration: float = 2,
             audio: bool = True) -> Path:
    path = Path(path)
    with av.open(str(path), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "23"}
        sound = out.add_stream("aac", rate=48000, layout="stereo") if audio else None
        num_frames = round(duration * fps)
        ramp = np.linspace(0, 255, width, dtype=np.uint8)
        for i in range(num_frames):
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[..., 0], rgb[..., 1], rgb[..., 2] = ramp, frame_green(i), ramp[::-1]
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            total, chunk = round(duration * 48000), 1024
            for start in range(0, total, chunk):
                t = np.arange(start, min(start + chunk, total)) / 48000
                samples = np.tile(0.2 * np.sin(2 * np.pi * 440 * t, dtype=np.float32), (2, 1)).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path
