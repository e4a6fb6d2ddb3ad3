"""The public-address rule (studio/netguard.py): address classes, DNS answers, allowed hosts, connect-time checks."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import netguard
from core.netguard import HostNotFound, MalformedURL, UnsafeURL, check_public_url, safe_request

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def no_allowed_hosts(settings):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = []


class FakeDNS:
    """Answers for made-up names: `dns[name] = [address, …]`, or a list of such lists (one per lookup)."""

    def __init__(self) -> None:
        self.answers: dict[str, list] = {}
        self.lookups: list[str] = []

    def __setitem__(self, name: str, addresses: list) -> None:
        self.answers[name] = addresses

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.lookups.append(host)
        addresses = self.answers[host]
        if addresses and isinstance(addresses[0], list):
            addresses = addresses.pop(0) if len(addresses) > 1 else addresses[0]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


@pytest.fixture
def fake_dns(monkeypatch) -> FakeDNS:
    dns = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


@pytest.fixture
def local_server():
    """A loopback HTTP server: /ok answers 200, /to?url=… redirects there; records the paths it served."""
    hits: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append((self.path, self.headers.get("Host", "")))
            if self.path.startswith("/to/"):
                self.send_response(302)
                self.send_header("Location", self.path[len("/to/"):])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.hits = hits  # type: ignore[attr-defined]
    server.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- address classes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10",  # loopback
    "10.0.0.5", "172.16.0.1", "172.31.255.254", "192.168.1.1",  # private
    "169.254.169.254", "169.254.1.1",  # metadata, link-local
    "100.64.0.1", "100.127.255.254",  # CGNAT
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",  # unspecified, multicast, reserved
    "192.0.2.1", "198.18.0.1",  # documentation, benchmarking
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:10.0.0.5", "::ffff:127.0.0.1", "64:ff9b::a00:5", "2002:a00:5::1",  # IPv4 inside IPv6
])
def test_non_public_ip_literals_are_refused(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeURL) as info:
        check_public_url(f"http://{host}/hook")
    assert "is not a public address" in str(info.value)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_ip_literals_pass(address):
    host = f"[{address}]" if ":" in address else address
    check_public_url(f"https://{host}:8443/hook")


@pytest.mark.parametrize("url, message", [
    ("ftp://93.184.216.34/x", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://93.184.216.34/", "only http and https"),
    ("/relative/path", "only http and https"),
    ("http:///nohost", "no host"),
])
def test_other_schemes_and_hostless_urls_are_refused(url, message):
    with pytest.raises(UnsafeURL) as info:
        check_public_url(url)
    assert message in str(info.value)


@pytest.mark.parametrize("url", ["http://\uff11\uff12\uff17.0.0.1/x", "http://xn--/x", "https://xn--ls8h.la/x",
                                 "http://[::1/x", "http://a\x00b/x"])
def test_urls_httpx_cannot_request_are_malformed_without_a_lookup_or_a_connection(url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("looked the host up"))
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("connected"))
    for call in (check_public_url, lambda u: safe_request("GET", u)):
        with pytest.raises(MalformedURL, match="^not a valid URL: "):
            call(url)


def test_userinfo_does_not_hide_the_real_host():
    with pytest.raises(UnsafeURL):
        check_public_url("http://93.184.216.34@10.0.0.5/hook")


# --- DNS names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("addresses", [
    ["10.0.0.5"], ["169.254.169.254"], ["127.0.0.1"], ["fd00::5"], ["::ffff:192.168.0.1"],
    ["93.184.216.34", "10.0.0.5"],  # one private answer among public ones is enough to refuse
], ids=["private_case", "metadata_case", "loopback_case", "ula_case", "mapped_case", "mixed_case"])
def test_names_resolving_to_non_public_addresses_are_refused(fake_dns, addresses):
    fake_dns["hooks.example.test"] = addresses
    with pytest.raises(UnsafeURL) as info:
        check_public_url("https://hooks.example.test/hook")
    assert "hooks.example.test" in str(info.value) and "is not a public address" in str(info.value)


def test_names_resolving_only_to_public_addresses_pass(fake_dns):
    fake_dns["hooks.example.test"] = ["93.184.216.34", "2606:4700:4700::1111"]
    check_public_url("https://hooks.example.test/hook")
    assert fake_dns.lookups == ["hooks.example.test"]


def test_localhost_is_refused(fake_dns):
    fake_dns["localhost"] = ["127.0.0.1", "::1"]
    with pytest.raises(UnsafeURL):
        check_public_url("http://localhost:8000/hook")


def test_a_name_that_does_not_resolve_raises_host_not_found(fake_dns):
    fake_dns["nowhere.example.test"] = []
    with pytest.raises(HostNotFound) as info:
        check_public_url("https://nowhere.example.test/")
    assert "does not resolve" in str(info.value)


# --- allowed private hosts -------------------------------------------------------------------------------

def test_allowed_private_hosts_are_exempt_by_name_or_literal(settings, fake_dns):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1", "::1", "Hooks.Internal.Test"]
    fake_dns["hooks.internal.test"] = ["10.0.0.5"]
    check_public_url("http://127.0.0.1:8000/hook")
    check_public_url("http://[::1]:8000/hook")
    check_public_url("http://hooks.internal.test/hook")
    assert fake_dns.lookups == []  # exempt hosts are not even resolved


def test_the_exemption_is_for_the_listed_host_only(settings, fake_dns):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    fake_dns["localhost"] = ["127.0.0.1"]
    for url in ("http://localhost:8000/", "http://127.0.0.2/", "http://10.0.0.5/"):
        with pytest.raises(UnsafeURL):
            check_public_url(url)


# --- requests: connect-time check and redirects ----------------------------------------------------------

def test_safe_request_reaches_an_allowed_host(settings, local_server):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    response = safe_request("GET", f"{local_server.base}/ok")
    assert (response.status_code, response.text) == (200, "ok")
    assert [path for path, _ in local_server.hits] == ["/ok"]


def test_safe_request_refuses_a_private_address_without_connecting(local_server):
    with pytest.raises(UnsafeURL):
        safe_request("GET", f"{local_server.base}/ok")
    assert local_server.hits == []


def test_dns_rebinding_is_caught_at_connect_time(fake_dns, local_server):
    # given a name that is public when checked, and loopback when the transport resolves it again
    port = local_server.server_address[1]
    fake_dns["rebind.example.test"] = [["93.184.216.34"], ["127.0.0.1"]]
    # when
    with pytest.raises(UnsafeURL) as info:
        safe_request("GET", f"http://rebind.example.test:{port}/ok")
    # then the check ran twice, and nothing reached the loopback server
    assert fake_dns.lookups == ["rebind.example.test", "rebind.example.test"]
    assert "127.0.0.1" in str(info.value)
    assert local_server.hits == []


def test_the_transport_connects_to_the_address_it_checked(fake_dns, local_server, monkeypatch):
    # given a name whose (only) address counts as public for this test
    port = local_server.server_address[1]
    fake_dns["pinned.example.test"] = ["127.0.0.1"]
    monkeypatch.setattr(netguard, "is_public_address", lambda address: True)
    # when
    response = safe_request("GET", f"http://pinned.example.test:{port}/ok")
    # then the request went to that address, under the original Host header
    assert response.status_code == 200
    assert local_server.hits == [("/ok", f"pinned.example.test:{port}")]


def test_redirects_are_not_followed_unless_asked(settings, local_server):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    response = safe_request("GET", f"{local_server.base}/to/{local_server.base}/ok")
    assert response.status_code == 302
    assert len(local_server.hits) == 1


def test_followed_redirects_are_checked_again(settings, local_server):
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    response = safe_request("GET", f"{local_server.base}/to/{local_server.base}/ok", follow_redirects=True)
    assert (response.status_code, response.text) == (200, "ok")
    assert [path for path, _ in local_server.hits] == [f"/to/{local_server.base}/ok", "/ok"]


@pytest.mark.parametrize("target", ["http://10.0.0.5/ok", "http://169.254.169.254/latest/meta-data/",
                                    "http://localhost:{port}/ok", "http://[::1]:{port}/ok"],
                         ids=["private_case", "metadata_case", "localhost_case", "ipv6_loopback_case"])
def test_a_redirect_to_a_private_address_is_refused(settings, local_server, target):
    # given an allowed server that redirects to an address that is not allowed
    settings.STUDIO_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    target = target.format(port=local_server.server_address[1])
    # when / then: refused before connecting (the no-internet guard would fail the test otherwise)
    with pytest.raises(UnsafeURL):
        safe_request("GET", f"{local_server.base}/to/{target}", follow_redirects=True)
    assert len(local_server.hits) == 1
