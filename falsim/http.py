"""The HTTP layer: the threaded server, the request handler's plumbing, and the routing table.

Each route is answered by the module of its concern: the queue calls and the request listing by
``falsim/queue_api.py``, storage and files by ``falsim/files.py``, ``PUT /_sim/faults`` by
``falsim/faults.py``. The handler gives them what every answer needs: the body (Content-Length
or chunked, bounded), JSON answers, the Key check, the account lock, a TCP reset. HTTP/1.1
keep-alive; an unread body is drained so it is not parsed as the next request.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from falsim import files, queue_api
from falsim.faults import answer_put

if TYPE_CHECKING:
    from falsim.simulator import FalSimulator

MAX_JSON_BODY = 32 * 1024 * 1024


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    sim: FalSimulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a killed worker, a timeout) is normal traffic, not a server error.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._connections_lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def close_all_connections(self) -> None:
        # Keep-alive connections would otherwise outlive stop() in their daemon threads.
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class BodyTooLarge(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "falsim/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # small keep-alive responses must not wait for delayed ACKs
    timeout = 300

    # -- routing --

    def route(self, method: str, parts: list[str]) -> None:
        sim = self.sim
        if parts == [".well-known", "jwks.json"] and method in ("GET", "HEAD"):
            return self.send_json(200, sim.webhooks.jwks, {"Cache-Control": "public, max-age=3600"})
        if parts[:1] == ["_sim"] and method in ("GET", "HEAD"):
            if parts == ["_sim", "stats"]:
                return self.send_json(200, sim.stats())
            if parts == ["_sim", "requests"]:
                return self.send_json(200, sim.requests())
            if parts == ["_sim", "faults"]:
                return self.send_json(200, sim.fault_settings())
        if parts == ["_sim", "faults"] and method == "PUT":
            return self.send_json(*answer_put(sim.injector, self.read_body()))
        if parts[:1] == ["files"]:
            if parts == ["files", "upload"] and method == "POST":
                return files.cdn_upload(self)
            if len(parts) >= 2 and method in ("GET", "HEAD"):
                return files.serve_file(self, parts[1], "/".join(parts[2:]))
        if parts[:2] == ["storage", "upload"] and len(parts) >= 3:
            if parts[2] == "initiate" and len(parts) == 3 and method == "POST":
                return files.storage_initiate(self)
            if parts[2] == "put" and len(parts) == 4 and method == "PUT":
                return files.storage_put(self, parts[3])
        if parts == ["storage", "auth", "token"] and method == "POST":
            return files.storage_token(self)
        if parts == ["v1", "models", "requests", "by-endpoint"] and method in ("GET", "HEAD"):
            return queue_api.request_listing(self)
        if "requests" in parts and len(parts) >= 2:
            return queue_api.queue_call(self, method, parts)
        if method == "POST" and len(parts) >= 2:
            return queue_api.submit(self, "/".join(parts))
        return self.send_json(404, {"detail": "Not Found"})

    # -- plumbing --

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    @property
    def sim(self) -> FalSimulator:
        return self.server.sim

    def log_message(self, format: str, *args: Any) -> None:
        if self.sim.verbose:
            sys.stderr.write(f"falsim {self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._responded = False
        self._body_consumed = False
        try:
            split = urlsplit(self.path)
            self.query = parse_qs(split.query, keep_blank_values=True)
            parts = [unquote(p) for p in split.path.split("/") if p]
            self.route(method, parts)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except BodyTooLarge:
            self.close_connection = True
            self.send_json(413, {"detail": "Request body too large"})
        except Exception as exc:
            if self.sim.verbose:
                traceback.print_exc()
            if not self._responded:
                self.send_json(500, {"detail": f"Internal simulator error: {type(exc).__name__}"})
            self.close_connection = True
        finally:
            if not self._body_consumed:
                # Unread bodies would be parsed as the next request on a keep-alive connection.
                self.discard_body()

    def write_response(self, status: int, headers: list, body: bytes = b"", *, head_only: bool = False,
                       content_length: int | None = None) -> None:
        self._responded = True
        self.log_request(status)
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", f"Server: {self.server_version}",
                 f"Date: {self.date_time_string()}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if content_length is None:
            content_length = len(body)
        if content_length >= 0:
            lines.append(f"Content-Length: {content_length}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if head_only else head + body)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                  request_id: str | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        out = [("Content-Type", "application/json")]
        if request_id:
            out.append(("x-fal-request-id", request_id))
        out += list((headers or {}).items())
        self.write_response(status, out, body, head_only=self.command == "HEAD")

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def base_url(self) -> str:
        host = self.headers.get("X-Forwarded-Host") or self.headers.get("Host")
        if not host:
            return self.sim.url
        scheme = self.headers.get("X-Forwarded-Proto", "http").split(",")[0].strip() or "http"
        return f"{scheme}://{host.split(',')[0].strip()}"

    def iter_body(self, limit: int | None = None) -> Iterator[bytes]:
        """Yield the request body in chunks (Content-Length or chunked)."""
        self._body_consumed = True
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                total += size
                if limit is not None and total > limit:
                    raise BodyTooLarge()
                yield self.rfile.read(size)
                self.rfile.readline(1024)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            if limit is not None and remaining > limit:
                self._body_consumed = False
                raise BodyTooLarge()
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionResetError("client closed during body")
                remaining -= len(chunk)
                yield chunk

    def read_body(self, limit: int = MAX_JSON_BODY) -> bytes:
        return b"".join(self.iter_body(limit))

    def discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_JSON_BODY or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return
        try:
            for _ in self.iter_body():
                pass
        except Exception:
            self.close_connection = True

    def read_json(self) -> Any:
        """Returns (ok, value); on failure has already answered 422."""
        raw = self.read_body()
        try:
            return True, json.loads(raw.decode("utf-8") if raw else "")
        except (ValueError, UnicodeDecodeError) as exc:
            self.send_json(422, {"detail": [{"loc": ["body", 0], "msg": f"JSON decode error: {exc}",
                                             "type": "json_invalid"}]})
            return False, None

    def key_ok(self) -> bool:
        """The ``Authorization: Key <key>`` check; False when it has answered 401."""
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "key" and hmac.compare_digest(credentials.strip().encode(), self.sim.key.encode()):
            return True
        if not header:
            self.send_json(401, {"detail": "Missing authorization header"})
        else:
            self.send_json(401, {"detail": "No user found for Key ID and Secret"})
        return False

    def account_locked(self) -> bool:
        """While the simulated account is locked, answer fal's 403 (True: answered)."""
        reason = self.sim.locked
        if not reason:
            return False
        self.sim.engine.count("locked_refusals")
        self.send_json(403, {"detail": f"User is locked. Reason: {reason}."})
        return True

    def reset_connection(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), answering nothing."""
        self._responded = True
        self._body_consumed = True
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # detach(): the file objects still reference the socket, so close() alone would not close it.
        os.close(self.connection.detach())

    def flag(self, name: str) -> bool:
        values = self.query.get(name)
        return bool(values and values[-1].lower() in ("1", "true", "yes"))
