"""A real HTTP receiver for webhook tests (a pytest plugin: the `receiver` fixture)."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

STALL_SECONDS = 0.8  # how long a "timeout" answer stalls; tests set the sender's timeout below it


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # what the receiver answered; None: it dropped or stalled the connection

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["X-Studio-Webhook-Id"]


class Receiver:
    """Records every POST; answers 200 unless scripted: "500", "close", "timeout", "redirect <url>" or a callable."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self._script: list[str | Callable[[], None]] = []
        self._lock = threading.Lock()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *actions: str | Callable[[], None]) -> None:
        self._script.extend(actions)

    def next_action(self) -> str | Callable[[], None]:
        with self._lock:
            return self._script.pop(0) if self._script else "200"

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def types(self, path: str = "/hook") -> list[str]:
        return [request.payload["type"] for request in self.at(path) if request.status == 200]


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            recorded = Received(self.path, dict(self.headers.items()), body)
            state["receiver"].received.append(recorded)
            action = state["receiver"].next_action()
            if callable(action):
                try:
                    action()
                finally:
                    connection.close()  # this thread's own database connection
                action = "200"
            if action == "close":
                return  # HTTP/1.0: the connection closes with no answer
            if action == "timeout":
                time.sleep(STALL_SECONDS)
                return
            status, location = (302, action.split(" ", 1)[1]) if action.startswith("redirect ") else (int(action), None)
            answer = b"thanks" if status == 200 else b"receiver says no"
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            recorded.status = status

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
