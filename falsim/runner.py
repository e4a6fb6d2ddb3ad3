"""The runners: ``runners`` threads that each take the next queued request and run it.

A run logs like fal's LTX runner ("Loading model", "Generating N frames", "Generating frames
20%" ...), renders the real MP4 (``falsim/render.py``, or the bench-mode ``falsim/render_cache.py``)
as its endpoint's ``Endpoint.output`` says (``fal_protocol.catalog``: size by resolution and aspect
ratio, ``auto`` following the start image's orientation, at 1/``scale``; fps; frames; audio; for
image-to-video the start image as frame 0 and an ``end_image_url`` as the last frame) and lasts
at least its planned time (``run_seconds``, or a seeded draw up to ``run_seconds_max``; 3x for
``[sim:slow]``). A ``[sim:422]`` or ``result_422`` request fails half-way, like a safety
checker rejecting the prompt. A cancel or ``stop()`` ends a run at its next frame or progress step.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import TYPE_CHECKING, Any

import httpx

from falsim.engine import SimRequest, cancel_failure, content_policy_failure, internal_failure
from falsim.files import StoredFile
from falsim.render import RenderCancelled, image_is_portrait, output_size, render_video

if TYPE_CHECKING:
    from falsim.simulator import FalSimulator


def run_forever(sim: FalSimulator) -> None:
    """One runner thread: run queued requests one at a time until the simulator stops."""
    while True:
        req = sim.engine.next_request()
        if req is None:
            return
        try:
            _run(sim, req)
        except RenderCancelled:
            sim.engine.finish(req, cancel_failure())
        except Exception as exc:  # a bug must not kill the runner
            traceback.print_exc()
            sim.engine.finish(req, internal_failure(exc))


def _stop_requested(sim: FalSimulator, req: SimRequest) -> bool:
    return req.cancel_event.is_set() or sim.stopping.is_set()


def _run(sim: FalSimulator, req: SimRequest) -> None:
    log = sim.engine.log
    planned = _planned_seconds(sim) * (3 if req.slow else 1)
    started = time.monotonic()
    images = _load_images(sim, req)
    output = req.route.endpoint.output(req.params, portrait_source=image_is_portrait(images[0]))
    width, height = output_size(output.width, output.height, sim.scale)
    progress = ProgressLog(sim, req, planned, output.num_frames, started)

    log(req, f"Loading model {req.route.model_id}")
    log(req, f"Generating {output.num_frames} frames at {width}x{height}, {output.fps} fps"
             + (" with audio" if output.audio else ""))
    if req.forced_failure:
        # Fail part-way through, like a safety checker rejecting the prompt.
        _wait_until(sim, req, started + planned / 2, progress)
        if _stop_requested(sim, req):
            raise RenderCancelled()
        log(req, "Content checker flagged the input", "ERROR")
        sim.engine.finish(req, content_policy_failure())
        return

    spec = dict(width=width, height=height, fps=output.fps, duration=output.duration, audio=output.audio,
                image=images[0], end_image=images[1])
    facts = _render(sim, req, spec, progress)
    _wait_until(sim, req, started + planned, progress)
    if _stop_requested(sim, req):
        raise RenderCancelled()
    progress.update(1.0)
    log(req, "Encoding video")
    log(req, "Uploading video to CDN")
    sim.engine.finish(req, None, video=facts)


def _planned_seconds(sim: FalSimulator) -> float:
    if sim.run_seconds_max is None:
        return sim.run_seconds
    return sim.injector.uniform(sim.run_seconds, sim.run_seconds_max)


def _wait_until(sim: FalSimulator, req: SimRequest, deadline: float, progress: ProgressLog) -> None:
    while not _stop_requested(sim, req):
        now = time.monotonic()
        if now >= deadline:
            return
        progress.update(progress.time_fraction(now))
        # Wake at the next progress step rather than ticking, so 1000 runners stay cheap.
        req.cancel_event.wait(max(0.005, min(deadline, progress.next_step_time()) - now))


def _load_images(sim: FalSimulator, req: SimRequest) -> tuple[bytes | None, bytes | None]:
    """The start and end images' bytes (None when not given); a URL elsewhere is fetched now, once."""
    if req.image is None and req.image_source == "url":
        req.image = _download(sim, req, req.params["image_url"], "start image")
    if req.end_image is None and req.end_image_source == "url":
        req.end_image = _download(sim, req, req.params["end_image_url"], "end image")
    return req.image, req.end_image


def _download(sim: FalSimulator, req: SimRequest, url: str, what: str) -> bytes | None:
    try:
        response = httpx.get(url, timeout=3.0, follow_redirects=True)
        if response.status_code == 200 and len(response.content) <= 50 * 1024 * 1024:
            return response.content
    except Exception:  # noqa: BLE001 - any failure to fetch renders without the image, like a blank start
        pass
    sim.engine.log(req, f"Could not download the {what}; rendering without it", "WARN")
    return None


def _render(sim: FalSimulator, req: SimRequest, spec: dict[str, Any], progress: ProgressLog) -> dict:
    """Render (or, in bench mode, share) the MP4 of ``spec`` (render_video's keyword arguments)."""
    file_name = f"{req.id}.mp4"
    assert sim.workdir is not None, "the simulator has not started"
    folder = os.path.join(sim.workdir, "renders")
    if sim.cache_renders:
        facts, path = sim.render_cache.render(spec, folder, lambda: _stop_requested(sim, req))
    else:
        path = os.path.join(folder, file_name)
        facts = render_video(path, text=req.params["prompt"], **spec,
                             progress=progress.render_fraction,
                             should_stop=lambda: _stop_requested(sim, req))
        sim.engine.count("renders")
    token = req.id.replace("-", "")
    sim.files.store(token, StoredFile(path, "video/mp4", file_name))
    return {**facts, "token": token, "file_name": file_name}


class ProgressLog:
    """Logs "Generating frames N%" in 20% steps, paced by time and by real render progress."""

    STEP = 20

    def __init__(self, sim: FalSimulator, req: SimRequest, planned: float, num_frames: int, started: float) -> None:
        self.sim, self.req = sim, req
        self.planned = max(planned, 1e-6)
        self.num_frames = num_frames
        self.started = started
        self.next_pct = self.STEP

    def time_fraction(self, now: float) -> float:
        return (now - self.started) / self.planned

    def next_step_time(self) -> float:
        return self.started + self.planned * self.next_pct / 100.0

    def render_fraction(self, rendered: float) -> None:
        # While rendering, never claim more frames than really exist.
        self.update(min(rendered, self.time_fraction(time.monotonic())))

    def update(self, fraction: float) -> None:
        pct = int(min(1.0, fraction) * 100 + 1e-9)
        while self.next_pct <= pct:
            self.sim.engine.log(self.req, f"Generating frames {self.next_pct}%")
            self.next_pct += self.STEP
