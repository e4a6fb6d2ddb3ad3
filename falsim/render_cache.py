"""The render cache of bench mode (``--cache-renders``): each distinct output is rendered once.

Requests whose MP4 would be the same share one (rendered without the prompt burned in): the key is
everything else that changes the picture or the file, i.e. every keyword of ``render_video`` the spec
holds: width and height (the resolution, the aspect ratio, ``auto`` resolved by the start image's
orientation, and the scale), fps, duration, audio, and the start and end images (by the sha256 of
their bytes). A request waiting for another's render still stops on cancel.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

from falsim.render import RenderCancelled, render_video


class _Entry:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.facts: dict | None = None
        self.path: str | None = None


def cache_key(spec: dict[str, Any]) -> tuple[tuple[str, Hashable], ...]:
    """The key of ``spec`` (render_video's keyword arguments): its values, images by their sha256."""
    return tuple(sorted((name, hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value)
                        for name, value in spec.items()))


class RenderCache:
    """``on_render()`` is called after each real render (the simulator's ``renders`` counter)."""

    def __init__(self, on_render: Callable[[], None]) -> None:
        self._on_render = on_render
        self._lock = threading.Lock()
        self._entries: dict[tuple, _Entry] = {}

    def render(self, spec: dict[str, Any], folder: str, should_stop: Callable[[], bool]) -> tuple[dict, str]:
        """(facts, path) of the MP4 for ``spec`` (render_video's keyword arguments), rendering it
        into ``folder`` unless it exists or is being rendered; raises RenderCancelled on stop."""
        key = cache_key(spec)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
        if owner:
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
            name = "cache-{width}x{height}-{fps}fps-{duration}s-{audio}".format(**spec) + f"-{digest}.mp4"
            path = os.path.join(folder, name)
            try:
                text = "falsim bench render (cached; prompt not shown)"
                entry.facts = render_video(path, text=text, **spec)
                entry.path = path
                self._on_render()
            except BaseException:
                with self._lock:
                    self._entries.pop(key, None)
                raise
            finally:
                entry.done.set()
        else:
            while not entry.done.wait(0.05):
                if should_stop():
                    raise RenderCancelled()
            if entry.facts is None:
                raise RuntimeError("cached render failed")
        assert entry.facts is not None and entry.path is not None  # set together by the render's owner
        return dict(entry.facts), entry.path
