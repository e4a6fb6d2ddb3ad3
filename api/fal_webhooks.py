"""The endpoint fal's webhooks reach: one unguessable URL per job (see services/fal_webhooks.py)."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generations.services.fal_webhooks import WebhookRejected, fal_webhook_receive


@csrf_exempt
@require_POST
def fal_webhook(request: HttpRequest, token: str) -> JsonResponse:
    try:
        outcome = fal_webhook_receive(token, request.headers, request.body)
    except WebhookRejected as exc:
        return JsonResponse({"code": "webhook_rejected", "message": str(exc), "details": {}}, status=exc.status)
    return JsonResponse({"outcome": outcome})
