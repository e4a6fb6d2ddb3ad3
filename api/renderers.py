"""The event stream's media type, so that DRF's content negotiation accepts
`Accept: text/event-stream`, as EventSource sends it. The views answer such requests with a stream,
and their errors as JSON; this renderer is only there to be chosen."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BaseRenderer


class EventStreamRenderer(BaseRenderer):
    media_type = "text/event-stream"
    format = "event-stream"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        return json.dumps(data).encode()
