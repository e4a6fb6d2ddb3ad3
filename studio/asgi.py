"""The studio's ASGI application (uvicorn under `make run`, gunicorn's uvicorn workers under
`make run-prod`).

Under ASGI Django gives each request a thread of its own for its sync code (middleware, views), and
keeps that thread until the response is done. For a status or event stream that is as long as the
stream is open, so a thousand open streams would be a thousand idle threads. Stream requests are
therefore given one shared thread instead (asgiref's ThreadSensitiveContext with an executor): their
sync part — authentication, the slot, the first read — runs there one request at a time, a few
milliseconds each, and the stream itself waits on the event loop (core/streaming.py,
generations/watch.py). Every other request keeps its own thread.
"""
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django_application = get_asgi_application()

# The gateway's `…/requests/{id}/status/stream`, the REST API's `/api/v1/generations/{id}/events/`
# and the web pages' `/generations/{id}/events` and `/generations/events` (web/live.py).
STREAM_PATH = re.compile(r"^/fal/.+/requests/[^/]+/status/stream$|^/api/v1/generations/[^/]+/events/$"
                         r"|^/generations/([^/]+/)?events$")
_stream_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-streams")


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and STREAM_PATH.match(scope.get("path", "")):
        async with ThreadSensitiveContext(executor=_stream_thread):
            await django_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
