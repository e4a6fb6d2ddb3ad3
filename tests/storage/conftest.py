"""Fixtures for storage tests: both storage backends, and a local HTTP origin whose answers tests script.

- `storage_backend`, `filesystem_backend`, `s3_backend`: see tests/storage_backends.py.
- `origin` is a real `ThreadingHTTPServer` on 127.0.0.1; `origin.route(path, ...)` says what that path
  answers (status, headers, body, a lying Content-Length, a reset mid-body, a stall) and returns its URL.
"""
from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# --- a scriptable HTTP origin ---------------------------------------------------------------

AUTO = object()  # Content-Length = the real body length


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "video/mp4"
    content_length: Any = AUTO  # AUTO, an int (may lie), or None: no header, body ends at close
    chunked: bool = False
    location: str | None = None
    send: int | None = None  # send only this many body bytes, then close cleanly
    reset_after: int | None = None  # send this many body bytes, then reset the connection (RST)
    stall: bool = False  # send the headers, then nothing until the test ends


@dataclass
class Origin:
    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def route(self, path: str, body: bytes = b"", **options: Any) -> str:
        self.routes[path] = Route(body=body, **options)
        return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        origin: Origin = self.server.origin
        origin.requests.append((self.path, dict(self.headers)))
        route = origin.routes.get(self.path)
        if route is None:
            route = Route(body=b"not found", status=404, content_type="text/plain")
        self.close_connection = True
        self.send_response(route.status)
        if route.content_type is not None:
            self.send_header("Content-Type", route.content_type)
        if route.location is not None:
            self.send_header("Location", route.location)
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        length = len(route.body) if route.content_length is AUTO else route.content_length
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        if route.stall:
            origin.release.wait(timeout=30)
            return
        limit = next((n for n in (route.send, route.reset_after) if n is not None), len(route.body))
        body = route.body[:limit]
        if route.chunked:
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if limit == len(route.body):
                self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        if route.reset_after is not None:
            # SO_LINGER 0 turns close() into an RST: a crash-like drop, not a clean end of stream.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    server.origin = Origin(base_url=f"http://{host}:{port}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-origin",
                              daemon=True)
    thread.start()
    try:
        yield server.origin
    finally:
        server.origin.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
