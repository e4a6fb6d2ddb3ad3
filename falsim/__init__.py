"""falsim: a local stand-in for fal.ai's queue, storage upload and CDN, for offline runs.

``falsim.server.FalSimulator`` is the HTTP server (see its module docstring for the
protocol, fault flags and prompt magic words); ``falsim.render.render_video`` writes the
real H.264/AAC MP4s it serves. Pure Python + PyAV: nothing here imports Django.
"""

__all__ = ["FalSimulator"]


def __getattr__(name):
    # Lazy so `import falsim.render` does not pull in the HTTP server.
    if name == "FalSimulator":
        from falsim.server import FalSimulator

        return FalSimulator
    raise AttributeError(name)
