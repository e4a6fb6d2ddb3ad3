"""falsim: a local fal.ai-compatible simulator: queue, storage upload, CDN and signed webhooks.

It speaks fal's queue protocol (``queue.fal.run``), fal's storage upload flow
(``rest.fal.ai``) and serves files like fal's CDN, so a fal client can only tell it from
fal by its host. Everything lives in memory plus a scratch folder (``workdir``). Pure Python +
PyAV on ``fal_protocol``: nothing here imports Django (``.importlinter`` holds the contract), so
the simulator runs inside or outside Django.

Python API::

    sim = FalSimulator(host="127.0.0.1", port=0, key="k", runners=2, run_seconds=0.5,
                       scale=8, cache_renders=False, faults=None, seed=0, workdir=None)
    sim.start(); sim.url; sim.stats(); sim.requests(); sim.completed_at(rid); sim.stop()
    sim.set_faults({"reset": 0.1}, latency_seconds=1.0); sim.faults; sim.fault_settings()
    sim.set_faults(retired=["fal-ai/ltx-2/text-to-video/fast"]); sim.retired
    sim.submits_for(input_dict)
    with FalSimulator(...) as sim: ...

Command line: ``python -m falsim [flags]`` or ``python manage.py falsim [flags]`` (``cli.py``).

Routes (``{model_id}`` is any endpoint id or alias of ``fal_protocol.catalog``; ``{app}`` is its
``owner/app``, e.g. ``fal-ai/ltx-2`` or ``fal-ai/ltx-2.3``; the full model id is also accepted in its
place):

    POST /{model_id}[?fal_webhook=URL]             submit (Key auth); 404 when unknown or retired
    GET  /{app}/requests/{id}/status[?logs=1]      202 IN_QUEUE/IN_PROGRESS, 200 COMPLETED
    GET  /{app}/requests/{id}/status/stream        server-sent events until COMPLETED
    GET  /{app}/requests/{id}                      result (400 while not completed)
    PUT  /{app}/requests/{id}/cancel               202 / 400 ALREADY_COMPLETED / 404
    POST /storage/upload/initiate?storage_type=fal-cdn-v3|gcs   -> {upload_url, file_url}
    PUT  /storage/upload/put/{token}?signature=... raw bytes (no auth; signed URL)
    POST /storage/auth/token?storage_type=fal-cdn-v3            -> {token, token_type, base_url, expires_at}
    POST /files/upload                             raw bytes, Bearer token -> {access_url}
    GET|HEAD /files/{token}/{file_name}            CDN-style file serving with Range (no auth)
    GET  /.well-known/jwks.json                    the webhook signing key (Ed25519 JWKS)
    GET  /v1/models/requests/by-endpoint?endpoint_id=…   fal's request listing (Key auth)
    GET  /_sim/stats, /_sim/requests               introspection (no auth)
    GET|PUT /_sim/faults                           read / switch faults, the lock and retired ids (no auth)

Where each part lives (each module's docstring says more):
    schema.py        the endpoints served (fal_protocol.catalog's) and fal's 422s for their fields
    engine.py        requests and their queue: status, result, cancel, completion, failures,
                     timing, prompt magic words ([sim:422], [sim:lost], [sim:slow]), submit counters
    runner.py        the runner threads: a request's run, its logs and progress, its render
    render.py        the real H.264/AAC MP4s it serves; render_cache.py: bench mode's shared renders
    faults.py        fault names, settings (lock, retired ids), validation, the seeded roll; PUT /_sim/faults
    files.py         storage upload, CDN upload, file serving with Range
    webhooks.py      the signed webhook sender
    listing.py       fal's request listing over the simulator's requests
    queue_api.py     the queue routes and the listing route over HTTP
    http.py          the server, the handler's plumbing and the routing table
    simulator.py     ``FalSimulator``: the parts put together, lifecycle, introspection
    cli.py           the command-line flags (``__main__.py``: ``python -m falsim``)
"""
import importlib
from typing import Any

__all__ = ["FalSimulator", "FAULT_NAMES", "FAULT_SETTINGS", "add_cli_arguments", "simulator_from_args", "describe"]

_HOMES = {
    "FalSimulator": "falsim.simulator",
    "FAULT_NAMES": "falsim.faults",
    "FAULT_SETTINGS": "falsim.faults",
    "add_cli_arguments": "falsim.cli",
    "simulator_from_args": "falsim.cli",
    "describe": "falsim.cli",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `import falsim.render` (or any one part) does not pull in the HTTP server.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'falsim' has no attribute {name!r}")
