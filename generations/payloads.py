"""What the studio says about a generation, in each shape it speaks: one module below every way in.

- the REST API's generation (`generation_payload`, with fal's `VideoFile` for the video,
  `video_file_payload`), which integrator webhooks carry too;
- fal's queue protocol, as the gateway speaks it (fal-protocol: status, submit and result bodies,
  and the body of a `?fal_webhook=`): fal has three statuses: a studio job is IN_QUEUE until fal
  runs it, IN_PROGRESS while fal runs it and while the studio copies the video, and COMPLETED once it
  is finished either way (failures are COMPLETED plus `error`, as on fal);
- the live job page's JSON (`web_status_payload`).

Media links in them are signed and expire (media_links.py); nothing else here reads the database
beyond the generation and the relations loaded with it.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.encoding import iri_to_uri

from generations.media_links import media_link
from generations.models import Generation

# --- the REST API (and integrator webhooks) ------------------------------------------------------

def generation_payload(generation: Generation, request: HttpRequest | None = None) -> dict[str, Any]:
    """The JSON form of `generation`, with fresh signed media links (none while it is hidden)."""
    video = generation.video if not generation.is_hidden else None

    def iso(value):
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": str(generation.pk),
        "project": str(generation.project_id),
        "model": generation.model_id,
        "status": generation.status,
        "fal_status": generation.fal_status,
        "queue_position": generation.queue_position,
        "logs": generation.logs,
        "input": generation.input,
        "cost_usd": f"{generation.cost_usd:.2f}",
        "error": {"code": generation.error_code, "message": generation.error_message} if generation.error_code else None,
        "video": None if video is None else video_file_payload(generation, request),
        "is_hidden": generation.is_hidden,
        "created_at": iso(generation.created_at),
        "submitted_at": iso(generation.submitted_at),
        "started_at": iso(generation.started_at),
        "completed_at": iso(generation.completed_at),
        "finished_at": iso(generation.finished_at),
    }


def video_file_payload(generation: Generation, request: HttpRequest | None = None) -> dict[str, Any]:
    """fal's `VideoFile` for the stored video (plus download and poster links), every number from the file."""
    video = generation.video
    return {
        "url": media_link(generation.pk, "video", request=request),
        "download_url": media_link(generation.pk, "video", download=True, request=request),
        "poster_url": media_link(generation.pk, "poster", request=request) if video.poster_id else None,
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
        body["queue_position"] = generation.queue_position or 0
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
    return {**body, "gateway_request_id": str(generation.pk), "queue_position": generation.queue_position or 0}


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
        "elapsed_seconds": max(0, int((end - generation.created_at).total_seconds())),
        "logs": logs,
        "error": generation.error_message,
        "has_video": generation.video_id is not None and not generation.is_hidden,
    }
