"""Telling that the client of a long response (a status stream) has gone, without writing to it.

Otherwise a closed connection is noticed only at the next write, which on a quiet stream is the
next keep-alive, up to STUDIO_SSE_KEEPALIVE_SECONDS later; meanwhile the stream holds a server
thread and one of its user's stream slots.
"""
from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Callable

from django.http import HttpRequest


def client_gone_check(request: HttpRequest) -> Callable[[], bool]:
    """A function that answers, at once, whether the client closed `request`'s connection.

    It peeks at the connection gunicorn hands over (`gunicorn.socket`): the end of the stream (or a
    reset) waiting there means the client is gone; bytes it sent are left unread. Elsewhere (another
    server, TLS in gunicorn) it cannot tell and always answers False: the next write notices instead."""
    sock = request.META.get("gunicorn.socket")
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
        return lambda: False
    poller = select.poll()  # not select(): a busy process may hold file descriptors above 1024
    poller.register(sock, select.POLLIN)

    def gone() -> bool:
        try:
            if not poller.poll(0):
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:  # reset by the peer, or the socket already closed
            return True

    return gone
