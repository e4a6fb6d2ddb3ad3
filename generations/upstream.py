"""The process-wide fal client, built from settings once (thread-safe: httpx.Client is)."""
from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from fal_protocol.client import FalQueueClient

_lock = threading.Lock()
_client: FalQueueClient | None = None


def get_fal_client() -> FalQueueClient:
    global _client
    with _lock:
        if _client is None:
            if not settings.FAL_KEY or not settings.FAL_QUEUE_URL:
                raise ImproperlyConfigured("FAL_KEY and FAL_QUEUE_URL must be set to reach fal")
            _client = FalQueueClient(
                base_url=settings.FAL_QUEUE_URL,
                key=settings.FAL_KEY,
                connect_timeout=settings.FAL_CONNECT_TIMEOUT,
                read_timeout=settings.FAL_READ_TIMEOUT,
                rest_url=settings.FAL_REST_URL,
                api_url=settings.FAL_API_URL,
                store_io=settings.STUDIO_FAL_STORE_IO,
            )
        return _client


def reset_fal_client() -> None:
    """Forget the cached client (tests that change FAL_* settings call this)."""
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
