"""django-q2 entry points: take ids, call one service, return. Delivery is at least once."""
from __future__ import annotations

from webhooks.services import webhook_deliveries_enqueue_due, webhook_delivery_send


def webhook_delivery_send_task(pk: str) -> None:
    webhook_delivery_send(pk)


def webhook_deliveries_enqueue_due_task() -> int:
    """Scheduled every minute (migration 0002): enqueue the sends whose retry is due."""
    return webhook_deliveries_enqueue_due()
