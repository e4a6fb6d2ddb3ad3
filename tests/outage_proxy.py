"""A TCP proxy in front of a real server, whose link a test can cut and restore.

    with OutageProxy("127.0.0.1", 9000) as proxy:   # proxy.url == "http://127.0.0.1:<port>"
        proxy.mode = "down"    # every open and new connection is reset (RST): "connection reset / refused"
        proxy.mode = "stall"   # new connections are accepted and never answered: a read timeout
        proxy.mode = "up"      # bytes pass both ways again

Used to give the S3 server (moto) a real outage over HTTP without touching the code under test.
"""
from __future__ import annotations

import select
import socket
import struct
import threading

MODES = ("up", "down", "stall")


class OutageProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._mode = "up"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            self._mode = value
            doomed = list(self._open)  # a change of link cuts what was open, stalled ones included
        for sock in doomed:
            _reset(sock)

    def __enter__(self) -> OutageProxy:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            _reset(sock)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            mode = self._mode
            if mode == "down":
                _reset(client)
            elif mode == "stall":
                self._track(client)  # held open, never read or answered, until the mode changes
            else:
                threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        self._track(client, upstream)
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update(peers)
            for sock in peers:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed or firewalled server would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
