"""How the gateway words a studio generation in fal's queue protocol (fal-protocol.md §1–2).

fal has three statuses: a studio job is IN_QUEUE until fal runs it, IN_PROGRESS while fal runs it
and while the studio copies the video, and COMPLETED once it is finished either way (failures
are COMPLETED plus `error`, as on fal).
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.encoding import iri_to_uri

from generations.api.serializers import video_file_payload
from generations.models import Generation

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
