"""The public-address rule for every URL the studio fetches or posts to on a user's behalf.

Contract:

- `check_public_url(url)` raises `UnsafeURL` unless the scheme is http or https and *every* address
  the host resolves to is a public (global unicast) address: no loopback, private, link-local,
  multicast, reserved, unspecified, CGNAT (100.64.0.0/10), IPv6 unique-local or cloud-metadata
  address, including IPv4 addresses embedded in IPv6 ones. A host that does not resolve raises
  `HostNotFound` (a subclass: callers may treat it as temporary); a URL that cannot be requested at
  all (e.g. a host IDNA cannot encode, such as `１２７.0.0.1` or `xn--`) raises `MalformedURL`.
- Hosts (names or IP literals) listed in `settings.STUDIO_ALLOWED_PRIVATE_HOSTS` are exempt. Tests
  and local set-ups list `127.0.0.1`; production never sets it.
- Checking a name and then connecting to it would let DNS answer differently the second time
  (DNS rebinding), so `guarded_client()` / `safe_request()` check again at connect time, against
  the very address the socket connects to, and re-check every redirect target when redirects are
  followed.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
from django.conf import settings

from core.text import text_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
CGNAT = ipaddress.ip_network("100.64.0.0/10")
METADATA = ipaddress.ip_address("169.254.169.254")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(Exception):
    """The URL may not be fetched: bad scheme, no host, or a host with a non-public address."""


class HostNotFound(UnsafeURL):
    """The URL's host does not resolve (possibly a temporary DNS failure)."""


class MalformedURL(UnsafeURL):
    """Not a URL that can be requested at all, e.g. a host that IDNA cannot encode or decode."""


def is_public_address(address: IPAddress) -> bool:
    """True for a global unicast address; IPv4 addresses embedded in IPv6 ones are judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
    if address == METADATA or (isinstance(address, ipaddress.IPv4Address) and address in CGNAT):
        return False
    return address.is_global and not (
        address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified
    )


def is_allowed_private_host(host: str) -> bool:
    """Whether `host` (a name or an IP literal, brackets optional) is listed in STUDIO_ALLOWED_PRIVATE_HOSTS."""
    wanted = _normalise_host(host)
    return any(_normalise_host(listed) == wanted for listed in settings.STUDIO_ALLOWED_PRIVATE_HOSTS)


def _normalise_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(f"the host {host!r} does not resolve") from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostNotFound(f"the host {host!r} has no IP address")
    return addresses


def public_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host`, all of them public; raises UnsafeURL naming the first that is not."""
    addresses = resolve(host, port)
    for address in addresses:
        if not is_public_address(address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise UnsafeURL(f"{shown} is not a public address")
    return addresses


def check_public_url(url: str) -> None:
    """Raise UnsafeURL unless `url` is an http(s) URL whose host resolves only to public addresses."""
    parsed = _parse(url)
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"only http and https URLs are allowed, not {parsed.scheme or 'a relative URL'!r}")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as the transport will resolve it
    if not host:
        raise UnsafeURL("the URL has no host")
    if is_allowed_private_host(host):
        return
    public_addresses(host, parsed.port or (443 if parsed.scheme == "https" else 80))


WEBHOOK_URL_MAX_CHARS = 1000


def check_webhook_url(url: str) -> str:
    """The one rule for every URL the studio sends webhooks to (integrators' endpoints, a job's own
    `webhook_url`, the gateway's `?fal_webhook=`): at most WEBHOOK_URL_MAX_CHARS characters of storable
    text, http(s), every address of its host public. Returns the URL; raises UnsafeURL saying why."""
    if len(url) > WEBHOOK_URL_MAX_CHARS:
        problem = f"the URL is longer than {WEBHOOK_URL_MAX_CHARS} characters"
    elif text_problem(url):
        problem = f"the URL {text_problem(url)}"
    else:
        try:
            check_public_url(url)
            return url
        except UnsafeURL as exc:
            problem = str(exc)
    raise UnsafeURL(f"{problem}; webhooks are sent only to public http(s) addresses")


def _parse(url: str) -> httpx.URL:
    """`url` as httpx will request it; raises MalformedURL where httpx would fail later (its `host`
    decodes the IDNA form, which fails for labels such as `xn--`)."""
    try:
        parsed = httpx.URL(url)
        _ = parsed.host  # decoded on access, as building a request does
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise MalformedURL(f"not a valid URL: {exc}") from exc
    return parsed


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself, refuses non-public addresses, and connects to the address it checked."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        if is_allowed_private_host(host):
            return self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        last_error: Exception | None = None
        for address in public_addresses(host, port):
            try:
                return self._backend.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise UnsafeURL("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every new connection goes through the public-address check.

    TLS still verifies the certificate against the URL's host name: only the TCP connect is pinned.
    """

    def __init__(self) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx has no public hook for the network backend, so the pool it built is replaced by an
        # equivalent one with the guarded backend; tests/test_netguard.py proves the check runs.
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=_GuardedBackend())


def guarded_client(**kwargs: Any) -> httpx.Client:
    """An httpx.Client that connects only to public addresses, never follows redirects and ignores proxy settings."""
    return httpx.Client(transport=GuardedTransport(), follow_redirects=False, trust_env=False, **kwargs)


@contextmanager
def safe_stream(method: str, url: str, *, follow_redirects: bool = False, max_redirects: int = 5,
                **kwargs: Any) -> Iterator[httpx.Response]:
    """Send a request under the public-address rule and yield the streaming response.

    With `follow_redirects`, each redirect target is checked like the first URL before it is
    requested. Raises UnsafeURL (nothing is sent to a refused address) or httpx errors.
    """
    _parse(url)  # a MalformedURL, not httpx's own errors, for a URL that cannot be requested
    with guarded_client(timeout=kwargs.pop("timeout", 10.0)) as client:
        request = client.build_request(method, url, **kwargs)
        for _ in range(max_redirects + 1):
            check_public_url(str(request.url))
            response = client.send(request, stream=True)
            if not (follow_redirects and response.next_request is not None):
                break
            response.close()
            request = response.next_request
        else:
            raise httpx.TooManyRedirects(f"more than {max_redirects} redirects", request=request)
        try:
            yield response
        finally:
            response.close()


def safe_request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Like `safe_stream`, with the body read; for small answers only (nothing bounds the size)."""
    with safe_stream(method, url, **kwargs) as response:
        response.read()
        return response


def read_at_most(response: httpx.Response, limit: int, *, deadline_seconds: float) -> bytes:
    """Up to `limit` bytes of a streaming response's body, giving up once `deadline_seconds` have passed."""
    deadline = time.monotonic() + deadline_seconds
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or time.monotonic() > deadline:
            break
    return b"".join(chunks)[:limit]
