"""What the studio says about a generation, in each shape it speaks: one module below every way in.

- the REST API's generation (`generation_payload`, with fal's `VideoFile` for the video,
  `video_file_payload`), which integrator webhooks carry too;
- fal's queue protocol, as the gateway speaks it (fal-protocol: status, submit and result bodies,
  and the body of a `?fal_webhook=`): fal has three statuses: a studio job is IN_QUEUE until fal
  runs it, IN_PROGRESS while fal runs it and while the studio copies the video, and COMPLETED once it
  is finished either way (failures are COMPLETED plus `error`, as on fal);
- the live job page's JSON (`web_status_payload`).

Media links in them are signed and expire (media_links.py); nothing else here reads the database
beyond the generation and the relations loaded with it — except, for a job waiting for a slot under
STUDIO_FAL_MAX_IN_FLIGHT, the jobs ahead of it (fair_share.slots_ahead).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.encoding import iri_to_uri

from generations.fair_share import slots_ahead
from generations.media_links import media_link
from generations.models import Generation

# --- the REST API (and integrator webhooks) ------------------------------------------------------

@dataclass(frozen=True)
class Out:
    """One key of an answer: the model fields its value is made from (what the polled status reads
    select, generations/status_reads.py), and how it is made."""

    key: str
    reads: tuple[str, ...]
    make: Callable[[Generation, HttpRequest | None], Any]


def _field(name: str) -> Callable[[Generation, HttpRequest | None], Any]:
    return lambda generation, request: getattr(generation, name)


def _iso(name: str) -> Callable[[Generation, HttpRequest | None], Any]:
    def make(generation: Generation, request: HttpRequest | None) -> str | None:
        value = getattr(generation, name)
        return value.isoformat().replace("+00:00", "Z") if value else None

    return make


def _error(generation: Generation, request: HttpRequest | None) -> dict[str, str] | None:
    return {"code": generation.error_code, "message": generation.error_message} if generation.error_code else None


def _video(generation: Generation, request: HttpRequest | None) -> dict[str, Any] | None:
    # No media links while it is hidden: its owner sees that it was hidden, not the video.
    if generation.is_hidden or generation.video_id is None:
        return None
    return video_file_payload(generation, request)


# The generation's JSON, key by key: the one declaration the REST answer, integrator webhooks and
# the polled status reads follow (api/serializers.py's GenerationSerializer documents the same keys).
GENERATION_JSON: tuple[Out, ...] = (
    Out("id", ("id",), lambda generation, request: str(generation.pk)),
    Out("project", ("project_id",), lambda generation, request: str(generation.project_id)),
    Out("model", ("model_id",), _field("model_id")),
    Out("status", ("status",), _field("status")),
    Out("fal_status", ("fal_status",), _field("fal_status")),
    Out("queue_position", ("queue_position",), _field("queue_position")),
    Out("slots_ahead", ("status", "created_at", "owner_id"), lambda generation, request: slots_ahead(generation)),
    Out("logs", ("logs",), _field("logs")),
    Out("input", ("input",), _field("input")),
    Out("cost_usd", ("cost_usd",), lambda generation, request: f"{generation.cost_usd:.2f}"),
    Out("error", ("error_code", "error_message"), _error),
    Out("video", ("video_id", "is_hidden"), _video),
    Out("is_hidden", ("is_hidden",), _field("is_hidden")),
    Out("created_at", ("created_at",), _iso("created_at")),
    Out("submitted_at", ("submitted_at",), _iso("submitted_at")),
    Out("started_at", ("started_at",), _iso("started_at")),
    Out("completed_at", ("completed_at",), _iso("completed_at")),
    Out("finished_at", ("finished_at",), _iso("finished_at")),
)
# What `video_file_payload` reads of the stored video and of its file.
VIDEO_READS = ("id", "file_id", "poster_id", "file_name", "width", "height", "fps", "duration", "num_frames",
               "has_audio")
VIDEO_FILE_READS = ("id", "size", "content_type")


def generation_payload(generation: Generation, request: HttpRequest | None = None) -> dict[str, Any]:
    """The JSON form of `generation` (GENERATION_JSON), with fresh signed media links (none while it
    is hidden)."""
    return {out.key: out.make(generation, request) for out in GENERATION_JSON}


def video_file_payload(generation: Generation, request: HttpRequest | None = None) -> dict[str, Any]:
    """fal's `VideoFile` for the stored video (plus download and poster links), every number from the file."""
    video = generation.video
    assert video is not None, "only a generation with a stored video has a video file"
    return {
        "url": media_link(generation.pk, "video", request=request),
        "download_url": media_link(generation.pk, "video", download=True, request=request),
        "poster_url": media_link(generation.pk, "poster", request=request) if video.poster_id is not None else None,
        "content_type": video.content_type,
        "file_name": video.file_name,
        "file_size": video.file_size,
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "duration": video.duration,
        "num_frames": video.num_frames,
        "has_audio": video.has_audio,
    }


# --- fal's queue protocol (the gateway, and `?fal_webhook=` bodies) -----------------------------

Status = Generation.Status
IN_QUEUE = frozenset({Status.PENDING, Status.HELD, Status.SUBMITTING, Status.QUEUED})
IN_PROGRESS = frozenset({Status.RUNNING, Status.STORING})
# What fal's status, result and webhook bodies read of a generation (beyond GENERATION_JSON's fields).
FAL_READS = ("id", "status", "queue_position", "logs", "inference_seconds", "started_at", "completed_at",
             "error_code", "error_message", "video_id", "is_hidden")
# Failures that are not about the request itself: answered like fal's infrastructure errors.
INFRASTRUCTURE_ERRORS = frozenset({"lost_upstream", "submit_unknown", "upstream_unavailable", "download_failed"})


def fal_status(generation: Generation) -> str:
    if generation.status in IN_QUEUE:
        return "IN_QUEUE"
    if generation.status in IN_PROGRESS:
        return "IN_PROGRESS"
    return "COMPLETED"


def app_of(model_id: str) -> str:
    """`owner/app` of a model id: the part fal's status, result and cancel URLs are built on."""
    return "/".join(model_id.strip("/").split("/")[:2])


def request_urls(generation: Generation, app: str, base: str) -> dict[str, str]:
    """The request's URLs under `base` (media_links.url_base)."""
    url = base + iri_to_uri(f"/fal/{app}/requests/{generation.pk}")
    return {"response_url": url, "status_url": f"{url}/status", "cancel_url": f"{url}/cancel"}


def status_body(generation: Generation, *, app: str, base: str, logs: bool) -> dict[str, Any]:
    """fal's status object: `queue_position` while queued, the `logs` key otherwise (None unless asked
    for), `metrics` and any `error` once completed; its URLs under `base` (media_links.url_base)."""
    status = fal_status(generation)
    body: dict[str, Any] = {"status": status, "request_id": str(generation.pk),
                            **request_urls(generation, app, base)}
    if status == "IN_QUEUE":
        body["queue_position"] = _queue_position(generation)
        return body
    body["logs"] = list(generation.logs or []) if logs else None
    if status == "COMPLETED":
        body["metrics"] = {"inference_time": _inference_seconds(generation)}
        if generation.status != Status.SUCCEEDED:
            body["error"] = generation.error_message or generation.status
            body["error_type"] = generation.error_code or generation.status
    return body


def submit_body(generation: Generation, *, app: str, base: str) -> dict[str, Any]:
    body = status_body(generation, app=app, base=base, logs=False)
    body.pop("logs", None)
    return {**body, "gateway_request_id": str(generation.pk), "queue_position": _queue_position(generation)}


def _queue_position(generation: Generation) -> int:
    """fal's queue position, or — while the job waits for a slot under STUDIO_FAL_MAX_IN_FLIGHT — the
    jobs to be sent before it."""
    return generation.queue_position or slots_ahead(generation) or 0


def result_response(generation: Generation, request: HttpRequest | None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body of `GET …/requests/{id}`, as fal answers it."""
    if generation.status not in Generation.TERMINAL:
        return 400, {"detail": "Request is still in progress", "status": fal_status(generation)}
    if generation.status == Status.SUCCEEDED:
        if generation.is_hidden or generation.video is None:
            return 410, {"detail": "This video was hidden by the studio's moderators and cannot be fetched."}
        return 200, {"video": video_file_payload(generation, request)}
    if generation.status == Status.CANCELED:
        return 400, {"detail": "Request was canceled", "error_type": "canceled"}
    if generation.error_code in INFRASTRUCTURE_ERRORS:
        return 500, {"detail": generation.error_message, "error_type": generation.error_code}
    return 422, {"detail": [{"loc": ["body"], "msg": generation.error_message, "type": generation.error_code}]}


def webhook_body(generation: Generation) -> dict[str, Any]:
    """What `?fal_webhook=` receives when the job ends (fal's webhook payload)."""
    body: dict[str, Any] = {"request_id": str(generation.pk), "gateway_request_id": str(generation.pk)}
    status_code, payload = result_response(generation, None)
    if status_code == 200:
        return {**body, "status": "OK", "payload": payload}
    return {**body, "status": "ERROR", "error": f"Invalid status code: {status_code}", "payload": payload}


def _inference_seconds(generation: Generation) -> float | None:
    """fal's own figure when it gave one, else what the studio saw of the run."""
    if generation.inference_seconds is not None:
        return generation.inference_seconds
    if generation.started_at and generation.completed_at:
        return round((generation.completed_at - generation.started_at).total_seconds(), 3)
    return None


# --- the live job page ---------------------------------------------------------------------------

LOG_LINES = 50


def web_status_payload(generation: Generation) -> dict[str, Any]:
    """What the live job view shows, as JSON (also rendered server-side so a reload shows it)."""
    end = generation.finished_at or timezone.now()
    logs = [str(entry.get("message", "")) for entry in (generation.logs or [])[-LOG_LINES:] if isinstance(entry, dict)]
    return {
        "id": str(generation.pk),
        "status": generation.status,
        "status_display": generation.get_status_display(),
        "terminal": generation.status in Generation.TERMINAL,
        "queue_position": generation.queue_position if generation.status == Generation.Status.QUEUED else None,
        "slots_ahead": slots_ahead(generation),
        "elapsed_seconds": max(0, int((end - generation.created_at).total_seconds())),
        "logs": logs,
        "error": generation.error_message,
        "has_video": generation.video_id is not None and not generation.is_hidden,
    }
