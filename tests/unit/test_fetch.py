"""Fetching images by URL: what is downloaded, what is refused, and what the sender of the URL is told.

The servers are real HTTP(S) servers on 127.0.0.1; the `resolver` hook stands in for DNS so that names can
point at them (or at addresses that must be refused) without touching the network.
"""

from __future__ import annotations

import gzip
import ipaddress
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.fetch import NON_PUBLIC_NETWORKS, FetchedUrl, FetchPolicy, UrlFetcher, is_public_address
from lambda_vision.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG = _png_1x1()
SECRET_IN_BODY = "internal detail: db password hunter2"
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.1/32")
LOOPBACK_V6 = ipaddress.ip_network("::1/128")
ENDLESS_CAP = 256 * 1024 * 1024  # a server bug must not hang the test run


class _ImageHandler(BaseHTTPRequestHandler):
    """Routes that each play one kind of image host, well-behaved or not."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        path = parts.path
        if path in {"/image.png", "/hops/0"}:
            self._send(200, PNG, "image/png")
        elif path.startswith("/hops/"):
            self._redirect(302, f"/hops/{int(path.removeprefix('/hops/')) - 1}")
        elif path == "/redirect":
            self._redirect(int(query.get("status", "302")), query["to"])
        elif path == "/no-location":
            self._send(302, b"", None)
        elif path == "/echo-host":
            self._send(200, self.headers["Host"].encode(), "text/plain")
        elif path.startswith("/status/"):
            self._send(int(path.removeprefix("/status/")), SECRET_IN_BODY.encode(), "text/plain")
        elif path == "/empty":
            self._send(200, b"", "image/png")
        elif path.startswith("/bytes/"):
            self._send(200, b"x" * int(path.removeprefix("/bytes/")), "image/jpeg")
        elif path.startswith("/bytes-unsized/"):
            self._send_unsized(b"x" * int(path.removeprefix("/bytes-unsized/")))
        elif path == "/gzip-image":
            self._send(200, gzip.compress(PNG), "image/png", {"Content-Encoding": "gzip"})
        elif path == "/gzip-bomb":
            self._send(200, gzip.compress(b"\0" * (8 * 1024 * 1024)), "image/png", {"Content-Encoding": "gzip"})
        elif path == "/slow-headers":
            time.sleep(1.0)
            self._send(200, PNG, "image/png")
        elif path == "/drip":
            self._drip()
        elif path == "/trickle-headers":
            self._trickle_headers()
        elif path.startswith("/slow-hops/"):
            time.sleep(0.15)
            hops = int(path.removeprefix("/slow-hops/"))
            if hops:
                self._redirect(302, f"/slow-hops/{hops - 1}")
            else:
                self._send(200, PNG, "image/png")
        elif path == "/huge-declared":
            self._declared_only(ENDLESS_CAP)
        elif path == "/endless":
            self._endless({"Connection": "close"})
        elif path == "/endless-chunked":
            self._endless({"Transfer-Encoding": "chunked"}, chunked=True)
        else:
            self._send(404, b"no such route", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, status: int, location: str) -> None:
        self._send(status, b"moved", "text/plain", {"Location": location})

    def _send_unsized(self, body: bytes) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """Each byte arrives well within the read timeout, the whole image never does."""
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            self.wfile.write(b"x")
            time.sleep(0.05)

    def _trickle_headers(self) -> None:
        """The status line and headers a byte at a time: each byte within the read timeout, never all of them."""
        self.close_connection = True
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + b"X-Padding: " + b"p" * 60 + b"\r\n\r\n"
        for byte in head:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(PNG)

    def _declared_only(self, length: int) -> None:
        """Announces a huge body and sends none of it: only the Content-Length can tell it is too large."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        time.sleep(2.0)

    def _endless(self, headers: dict[str, str], chunked: bool = False) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        block = b"x" * 65536
        frame = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
        for _ in range(ENDLESS_CAP // len(block)):
            self.wfile.write(frame)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on purpose (timeouts, size limits) are expected here


@dataclass
class RunningServer:
    server: _QuietServer
    scheme: str
    sni_names: list[str]

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _start(tls: ssl.SSLContext | None = None) -> RunningServer:
    server = _QuietServer(("127.0.0.1", 0), _ImageHandler)
    sni_names: list[str] = []
    if tls is not None:

        def remember_sni(_sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
            sni_names.append(name or "")

        tls.sni_callback = remember_sni
        # Handshakes happen in the request threads, so a client that rejects the certificate blocks no one.
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return RunningServer(server, "https" if tls else "http", sni_names)


def _stop(running: RunningServer) -> None:
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = _start()
    yield running
    _stop(running)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a certificate for images.test signed by it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make test certificates")
    directory = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*arguments: str) -> None:
        subprocess.run([openssl, *arguments], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=lambda-vision test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=images.test")
    (directory / "leaf.ext").write_text(
        "subjectAltName=DNS:images.test\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")  # fmt: skip
    return Certificates(ca=directory / "ca.pem", chain=directory / "leaf.pem", key=directory / "leaf.key")


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[RunningServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.chain, certificates.key)
    running = _start(context)
    yield running
    _stop(running)


BASE_POLICY = FetchPolicy(
    connect_timeout=0.3,
    read_timeout=0.3,
    max_bytes=1_000_000,
    max_redirects=3,
    allowed_networks=(LOOPBACK_V4,),
)
PUBLIC_ONLY = replace(BASE_POLICY, allowed_networks=())


class FakeDns:
    """A resolver: names map to fixed answers, anything else does not exist. Records every lookup."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def fetcher(policy: FetchPolicy = BASE_POLICY, dns: dict[str, list[str]] | FakeDns | None = None) -> UrlFetcher:
    resolver = dns if isinstance(dns, FakeDns) else FakeDns(dns)
    return UrlFetcher(policy, resolver=resolver)


def refusal(fetch: Callable[[], FetchedUrl]) -> InputError:
    with pytest.raises(InputError) as caught:
        fetch()
    return caught.value


def assert_helpful(error: InputError, code: ErrorCode, *mentions: str) -> None:
    """The code is right, the message names what matters and leaks nothing from the server or the policy."""
    assert error.code is code, error.message
    for mention in mentions:
        assert mention in error.message
    assert error.to_body() == {"code": code.value, "message": error.message}
    for leak in (SECRET_IN_BODY, "allowed_networks", "Traceback", "urllib3", "Errno"):
        assert leak not in error.message


# --- Downloading -----------------------------------------------------------------------------------------------


def test_an_image_on_an_allowed_server_is_downloaded(server: RunningServer) -> None:
    url = server.url("/image.png")

    fetched = fetcher().fetch(url)

    assert fetched == FetchedUrl(data=PNG, content_type="image/png", final_url=url)


def test_the_connection_goes_to_the_checked_address_with_the_original_host_name(server: RunningServer) -> None:
    # .invalid never exists in real DNS: the download only works if the name is not looked up a second time.
    dns = FakeDns({"images.invalid": ["127.0.0.1"]})

    fetched = fetcher(dns=dns).fetch(server.url("/echo-host", host="images.invalid"))

    assert fetched.data == f"images.invalid:{server.port}".encode()
    assert dns.lookups == ["images.invalid"]


def test_an_ipv4_mapped_ipv6_address_is_judged_and_reached_as_ipv4(server: RunningServer) -> None:
    url = server.url("/image.png", host="[::ffff:127.0.0.1]")

    assert fetcher().fetch(url).data == PNG
    assert_helpful(refusal(lambda: fetcher(PUBLIC_ONLY).fetch(url)), ErrorCode.URL_FORBIDDEN, "::ffff:127.0.0.1")


def test_the_next_address_is_tried_when_one_refuses_the_connection(server: RunningServer) -> None:
    policy = replace(BASE_POLICY, allowed_networks=(LOOPBACK_V4, LOOPBACK_V6))
    dns = {"images.invalid": ["::1", "127.0.0.1"]}  # nothing listens on [::1] at this port

    assert fetcher(policy, dns).fetch(server.url("/image.png", host="images.invalid")).data == PNG


def test_a_compressed_response_is_decoded(server: RunningServer) -> None:
    assert fetcher().fetch(server.url("/gzip-image")).data == PNG


def test_the_system_resolver_is_used_by_default(server: RunningServer) -> None:
    url = server.url("/image.png", host="localhost")
    policy = replace(BASE_POLICY, allowed_networks=(LOOPBACK_V4, LOOPBACK_V6))

    assert UrlFetcher(policy).fetch(url).data == PNG
    assert_helpful(refusal(lambda: UrlFetcher(PUBLIC_ONLY).fetch(url)), ErrorCode.URL_FORBIDDEN, "localhost")


# --- Redirects -------------------------------------------------------------------------------------------------


def test_a_redirect_chain_within_the_limit_is_followed(server: RunningServer) -> None:
    fetched = fetcher().fetch(server.url("/hops/3"))

    assert fetched.data == PNG
    assert fetched.final_url == server.url("/hops/0")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(server: RunningServer, status: int) -> None:
    url = server.url(f"/redirect?status={status}&to={quote(server.url('/image.png'), safe='')}")

    assert fetcher().fetch(url).final_url == server.url("/image.png")


@pytest.mark.parametrize(("max_redirects", "hops"), [(3, 4), (0, 1)])
def test_too_many_redirects_are_refused(server: RunningServer, max_redirects: int, hops: int) -> None:
    policy = replace(BASE_POLICY, max_redirects=max_redirects)

    error = refusal(lambda: fetcher(policy).fetch(server.url(f"/hops/{hops}")))

    assert_helpful(error, ErrorCode.URL_TOO_MANY_REDIRECTS, f"more than {max_redirects} times", "final address")


def test_each_redirect_target_is_looked_up_and_checked_again(server: RunningServer) -> None:
    dns = FakeDns({"first.invalid": ["127.0.0.1"], "second.invalid": ["127.0.0.1"]})
    second = server.url("/image.png", host="second.invalid")

    fetched = fetcher(dns=dns).fetch(server.url(f"/redirect?to={quote(second, safe='')}", host="first.invalid"))

    assert fetched.final_url == second
    assert dns.lookups == ["first.invalid", "second.invalid"]


@pytest.mark.parametrize(
    ("target", "code", "mention"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", ErrorCode.URL_FORBIDDEN, "169.254.169.254"),
        ("http://[::1]:8080/", ErrorCode.URL_FORBIDDEN, "::1"),
        ("http://internal.invalid/admin", ErrorCode.URL_FORBIDDEN, "internal.invalid"),
        ("file:///etc/passwd", ErrorCode.URL_INVALID, "file:"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", ErrorCode.URL_INVALID, "gopher:"),
    ],
)
def test_a_redirect_to_a_forbidden_place_is_refused(
    server: RunningServer, target: str, code: ErrorCode, mention: str
) -> None:
    dns = FakeDns({"internal.invalid": ["10.1.2.3"]})

    error = refusal(lambda: fetcher(dns=dns).fetch(server.url(f"/redirect?to={quote(target, safe='')}")))

    assert_helpful(error, code, mention, "redirected")


def test_a_redirect_off_the_allowed_hosts_is_refused(server: RunningServer) -> None:
    policy = replace(BASE_POLICY, allowed_hosts=frozenset({"images.invalid"}))
    dns = {"images.invalid": ["127.0.0.1"], "elsewhere.invalid": ["127.0.0.1"]}
    elsewhere = server.url("/image.png", host="elsewhere.invalid")

    error = refusal(
        lambda: fetcher(policy, dns).fetch(server.url(f"/redirect?to={quote(elsewhere)}", host="images.invalid"))
    )

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, "redirected to elsewhere.invalid", "allowed")


def test_a_redirect_without_a_location_is_an_http_error(server: RunningServer) -> None:
    error = refusal(lambda: fetcher().fetch(server.url("/no-location")))

    assert_helpful(error, ErrorCode.URL_HTTP_ERROR, "302", "127.0.0.1")


# --- Addresses that are never fetched ----------------------------------------------------------------------------


def test_loopback_is_refused_unless_the_policy_allows_it(server: RunningServer) -> None:
    error = refusal(lambda: fetcher(PUBLIC_ONLY).fetch(server.url("/image.png")))

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, "127.0.0.1", "not a public internet address", "send the image")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # instance metadata
        ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254"),  # instance metadata over IPv6
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://[::1]/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("http://[::]/", "::"),
        ("http://100.64.0.1/", "100.64.0.1"),
        ("http://10.0.0.1/", "10.0.0.1"),
        ("http://172.16.5.4/", "172.16.5.4"),
        ("http://192.168.1.1/", "192.168.1.1"),
        ("http://[fc00::1]/", "fc00::1"),
        ("http://[fe80::1]/", "fe80::1"),
        ("http://[2002:7f00:1::1]/", "2002:7f00:1::1"),  # 6to4 around 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),  # NAT64 around 169.254.169.254
        ("http://224.0.0.1/", "224.0.0.1"),
        ("http://255.255.255.255/", "255.255.255.255"),
    ],
)
def test_non_public_ip_addresses_are_refused_without_connecting(url: str, host: str) -> None:
    dns = FakeDns()

    error = refusal(lambda: fetcher(PUBLIC_ONLY, dns).fetch(url))

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, host, "not a public internet address")
    assert dns.lookups == []


def test_the_unspecified_address_is_refused_even_inside_allowed_networks(server: RunningServer) -> None:
    policy = replace(BASE_POLICY, allowed_networks=(ipaddress.ip_network("0.0.0.0/0"),))

    error = refusal(lambda: fetcher(policy).fetch(server.url("/image.png", host="0.0.0.0")))

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, "0.0.0.0")


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.5"],  # a public-looking name pointing inside
        ["169.254.169.254"],
        ["93.184.215.14", "127.0.0.1"],  # mixed answers: the private one could be picked
        ["8.8.8.8", "::ffff:10.0.0.1"],
        ["2606:4700:4700::1111", "::1"],
        ["2606:4700:4700::1111", "fd12:3456::1"],
    ],
)
def test_a_public_name_resolving_to_a_private_address_is_refused(answers: list[str]) -> None:
    error = refusal(
        lambda: fetcher(PUBLIC_ONLY, {"images.example.com": answers}).fetch("https://images.example.com/a.png")
    )

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, "images.example.com", "resolves to an address that is not")
    for answer in answers:
        assert answer not in error.message  # internal addresses are not revealed


# --- URLs that are not accepted ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "mention"),
    [
        ("file:///etc/passwd", "file:"),
        ("ftp://example.com/image.png", "ftp:"),
        ("gopher://example.com:70/_GET", "gopher:"),
        ("javascript:alert(1)", "javascript:"),
        ("data:image/png;base64,iVBORw0KGgo=", "data:"),
        ("example.com/image.png", "http://"),
        ("", "empty"),
        ("http://user:pass@example.com/image.png", "user name or password"),
        ("https://token@example.com/image.png", "user name or password"),
        ("http://evil.example\\@127.0.0.1/", "backslash"),
        ("http:///image.png", "no host name"),
        ("http://exa mple.com/image.png", "spaces"),
        ("http://example.com/image.png\r\nX-Injected: 1", "control characters"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:0/", "port 0"),
        ("http://[not-an-address]/", "image URL"),
        ("http://127.1/", "invalid host name"),
        ("http://0x7f.0.0.1/", "invalid host name"),
        ("http://2130706433/", "invalid host name"),
        ("http://a..b/", "invalid host name"),
        ("http://" + "a" * 64 + ".example.com/", "invalid host name"),
        ("https://example.com/" + "a" * 9000, "longer than"),
    ],
)
def test_malformed_and_non_http_urls_are_invalid(url: str, mention: str) -> None:
    dns = FakeDns()

    error = refusal(lambda: fetcher(PUBLIC_ONLY, dns).fetch(url))

    assert_helpful(error, ErrorCode.URL_INVALID, "image URL", mention)
    assert dns.lookups == []


# --- Allowed hosts -----------------------------------------------------------------------------------------------

ALLOW_LIST = frozenset({"images.example.com", "*.cdn.example.net"})


@pytest.mark.parametrize(
    "host",
    ["images.example.com", "IMAGES.Example.COM", "images.example.com.", "eu.cdn.example.net", "a.b.cdn.example.net"],
)
def test_hosts_on_the_allow_list_are_fetched(server: RunningServer, host: str) -> None:
    policy = replace(BASE_POLICY, allowed_hosts=ALLOW_LIST)
    dns = {name: ["127.0.0.1"] for name in ("images.example.com", "eu.cdn.example.net", "a.b.cdn.example.net")}

    assert fetcher(policy, dns).fetch(server.url("/image.png", host=host)).data == PNG


@pytest.mark.parametrize(
    "host", ["cdn.example.net", "example.com", "images.example.com.evil.test", "evilimages.example.com", "8.8.8.8"]
)
def test_hosts_off_the_allow_list_are_refused_before_any_lookup(host: str) -> None:
    policy = replace(PUBLIC_ONLY, allowed_hosts=ALLOW_LIST)
    dns = FakeDns({host: ["8.8.8.8"]})

    error = refusal(lambda: fetcher(policy, dns).fetch(f"https://{host}/image.png"))

    assert_helpful(error, ErrorCode.URL_FORBIDDEN, host, "allowed image hosts")
    assert "cdn.example.net" not in error.message.replace(host, "")  # the list itself stays private
    assert dns.lookups == []


# --- Slow, unreachable and failing servers -----------------------------------------------------------------------


def test_a_server_slow_to_answer_times_out(server: RunningServer) -> None:
    started = time.monotonic()

    error = refusal(lambda: fetcher().fetch(server.url("/slow-headers")))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "127.0.0.1", "0.3 s", "try again")
    assert time.monotonic() - started < 0.9


def test_a_body_trickling_in_byte_by_byte_times_out(server: RunningServer) -> None:
    started = time.monotonic()

    error = refusal(lambda: fetcher(replace(BASE_POLICY, total_timeout=0.4)).fetch(server.url("/drip")))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "within 0.4 s (connection, redirects and download together)")
    assert time.monotonic() - started < 0.9


def test_headers_trickling_in_byte_by_byte_time_out_at_the_urls_deadline(server: RunningServer) -> None:
    """Every byte comes within the read timeout (0.3 s): only the one deadline for the whole URL can stop it."""
    started = time.monotonic()

    error = refusal(lambda: fetcher(replace(BASE_POLICY, total_timeout=0.5)).fetch(server.url("/trickle-headers")))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "127.0.0.1", "within 0.5 s", "try again later")
    assert 0.45 < time.monotonic() - started < 1.0


def test_redirects_share_the_urls_deadline_instead_of_each_restarting_it(server: RunningServer) -> None:
    """Three hops of 0.15 s each: every hop is quick, all of them together are over the 0.35 s deadline."""
    assert fetcher(replace(BASE_POLICY, total_timeout=2.0)).fetch(server.url("/slow-hops/2")).data == PNG

    error = refusal(lambda: fetcher(replace(BASE_POLICY, total_timeout=0.35)).fetch(server.url("/slow-hops/2")))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "within 0.35 s")


def test_the_requests_deadline_cuts_a_download_short_and_says_so(server: RunningServer) -> None:
    started = time.monotonic()

    error = refusal(lambda: fetcher().fetch(server.url("/trickle-headers"), deadline=time.monotonic() + 0.4))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "this request had left for downloads", "send fewer")
    assert time.monotonic() - started < 0.9


def test_a_url_whose_request_has_no_time_left_is_not_fetched(server: RunningServer) -> None:
    dns = FakeDns()
    error = refusal(lambda: fetcher(dns=dns).fetch(server.url("/image.png"), deadline=time.monotonic() - 1.0))

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "this request had left")


def test_an_https_download_has_the_same_deadline(
    tls_server: RunningServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    url = tls_server.url("/trickle-headers", host="images.test")
    started = time.monotonic()

    error = refusal(
        lambda: fetcher(replace(BASE_POLICY, total_timeout=0.5), dns={"images.test": ["127.0.0.1"]}).fetch(url)
    )

    assert_helpful(error, ErrorCode.URL_TIMEOUT, "images.test", "within 0.5 s")
    assert time.monotonic() - started < 1.0


def test_a_server_not_accepting_connections_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    waiting: list[socket.socket] = []
    try:
        # Fill the accept queue: further connection attempts get no answer at all.
        for _ in range(8):
            client = socket.socket()
            client.settimeout(0.2)
            waiting.append(client)
            try:
                client.connect(listener.getsockname())
            except TimeoutError:
                break
        else:
            pytest.skip("this system answers connections beyond the accept queue")
        started = time.monotonic()

        error = refusal(lambda: fetcher().fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/image.png"))

        assert_helpful(error, ErrorCode.URL_TIMEOUT, "did not accept a connection", "0.3 s")
        assert time.monotonic() - started < 0.9
    finally:
        for client in waiting:
            client.close()
        listener.close()


def test_a_closed_port_is_unreachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]

    error = refusal(lambda: fetcher().fetch(f"http://127.0.0.1:{port}/image.png"))

    assert_helpful(error, ErrorCode.URL_UNREACHABLE, "could not connect", f"port {port}")


@pytest.mark.parametrize("answers", [None, []])
def test_a_name_that_does_not_resolve_is_unreachable(answers: list[str] | None) -> None:
    dns = {} if answers is None else {"nowhere.example.com": answers}

    error = refusal(lambda: fetcher(PUBLIC_ONLY, dns).fetch("https://nowhere.example.com/image.png"))

    assert_helpful(error, ErrorCode.URL_UNREACHABLE, "nowhere.example.com", "could not be looked up", "spelled")


@pytest.mark.parametrize("status", [403, 404, 410, 500, 503])
def test_an_error_status_is_reported_without_the_body(server: RunningServer, status: int) -> None:
    error = refusal(lambda: fetcher().fetch(server.url(f"/status/{status}")))

    assert_helpful(error, ErrorCode.URL_HTTP_ERROR, f"HTTP {status}", "127.0.0.1", "publicly readable")


def test_an_empty_body_is_an_empty_image(server: RunningServer) -> None:
    error = refusal(lambda: fetcher().fetch(server.url("/empty")))

    assert_helpful(error, ErrorCode.IMAGE_EMPTY, "empty", "127.0.0.1")


# --- Size limit ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/bytes", "/bytes-unsized"])
def test_a_body_of_exactly_the_limit_is_accepted(server: RunningServer, route: str) -> None:
    policy = replace(BASE_POLICY, max_bytes=200_000)

    assert len(fetcher(policy).fetch(server.url(f"{route}/200000")).data) == 200_000


@pytest.mark.parametrize("route", ["/bytes", "/bytes-unsized"])
def test_one_byte_over_the_limit_is_too_large(server: RunningServer, route: str) -> None:
    policy = replace(BASE_POLICY, max_bytes=200_000)

    error = refusal(lambda: fetcher(policy).fetch(server.url(f"{route}/200001")))

    assert_helpful(error, ErrorCode.URL_TOO_LARGE, "200000 bytes", "smaller image")


@pytest.mark.parametrize("route", ["/huge-declared", "/endless", "/endless-chunked", "/gzip-bomb"])
def test_huge_bodies_are_refused_without_reading_them(server: RunningServer, route: str) -> None:
    policy = replace(BASE_POLICY, max_bytes=65_536, read_timeout=5.0)
    started = time.monotonic()

    error = refusal(lambda: fetcher(policy).fetch(server.url(route)))

    assert_helpful(error, ErrorCode.URL_TOO_LARGE, "65536 bytes")
    assert time.monotonic() - started < 1.0  # the 256 MiB the server offers are never read


# --- HTTPS ---------------------------------------------------------------------------------------------------------


def test_https_verifies_the_certificate_against_the_host_name(
    tls_server: RunningServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    url = tls_server.url("/image.png", host="images.test")

    fetched = fetcher(dns={"images.test": ["127.0.0.1"]}).fetch(url)

    assert fetched.data == PNG
    assert tls_server.sni_names[-1] == "images.test"  # the name, not the address connected to


def test_https_with_a_certificate_for_another_name_is_refused(
    tls_server: RunningServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    url = tls_server.url("/image.png", host="other.test")

    error = refusal(lambda: fetcher(dns={"other.test": ["127.0.0.1"]}).fetch(url))

    assert_helpful(error, ErrorCode.URL_UNREACHABLE, "other.test", "certificate")


def test_https_with_an_untrusted_certificate_is_refused(
    tls_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    error = refusal(
        lambda: fetcher(dns={"images.test": ["127.0.0.1"]}).fetch(tls_server.url("/image.png", host="images.test"))
    )

    assert_helpful(error, ErrorCode.URL_UNREACHABLE, "images.test", "certificate")


# --- Logging -------------------------------------------------------------------------------------------------------


def test_refusals_log_only_scheme_and_host(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lambda_vision.fetch")

    refusal(lambda: fetcher(PUBLIC_ONLY).fetch("http://10.0.0.1/image.png?token=s3cr3t-signature"))

    assert "http://10.0.0.1" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert "image.png" not in caplog.text


# --- Policy --------------------------------------------------------------------------------------------------------


def test_the_policy_comes_from_the_settings() -> None:
    settings = Settings.from_env(
        {
            "URL_CONNECT_TIMEOUT": "1.5",
            "URL_READ_TIMEOUT": "4",
            "URL_MAX_BYTES": "2048",
            "URL_MAX_REDIRECTS": "2",
            "URL_TIMEOUT": "7.5",
            "URL_ALLOWED_HOSTS": "Images.Example.com, *.cdn.example.net",
            "URL_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
    )

    assert FetchPolicy.from_settings(settings) == FetchPolicy(
        connect_timeout=1.5,
        read_timeout=4.0,
        max_bytes=2048,
        max_redirects=2,
        allowed_hosts=frozenset({"images.example.com", "*.cdn.example.net"}),
        allowed_networks=(LOOPBACK_V4,),
        total_timeout=7.5,
    )


def test_the_default_settings_allow_only_public_addresses_of_any_host() -> None:
    policy = FetchPolicy.from_settings(Settings())

    assert policy.allowed_hosts == frozenset()
    assert policy.allowed_networks == ()
    assert policy.permits_host("anything.example.org")
    assert not policy.permits_address(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize(
    "changes",
    [{"connect_timeout": 0}, {"read_timeout": -1}, {"total_timeout": 0}, {"max_bytes": 0}, {"max_redirects": -1}],
)
def test_a_nonsensical_policy_is_rejected_at_start_up(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="URL fetch"):
        replace(BASE_POLICY, **changes)


# --- Properties of the address rule ----------------------------------------------------------------------------

# The ranges named by the threat model; none of them may ever be fetched, in any notation.
PRIVATE_RANGES = [
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]
NAT64 = ipaddress.ip_network("64:ff9b::/96")
private_addresses = st.sampled_from(PRIVATE_RANGES).flatmap(lambda network: st.ip_addresses(network=network))


def as_judged(address: IPAddress) -> IPAddress:
    """The address whose rules apply: IPv4-mapped and NAT64 addresses stand for an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def other_notations(address: IPAddress) -> list[IPAddress]:
    if isinstance(address, ipaddress.IPv4Address):
        return [
            address,
            ipaddress.IPv6Address(f"::ffff:{address}"),
            ipaddress.IPv6Address(int(NAT64.network_address) | int(address)),
            ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80)),  # 6to4
        ]
    return [address]


def ipaddress_calls_public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@given(st.ip_addresses())
def test_an_address_is_public_exactly_when_ipaddress_says_so_outside_the_listed_ranges(address: IPAddress) -> None:
    judged = as_judged(address)
    listed = any(judged.version == network.version and judged in network for network in NON_PUBLIC_NETWORKS)

    assert is_public_address(address) == (ipaddress_calls_public(judged) and not listed)


@given(private_addresses)
def test_private_addresses_are_never_public_in_any_notation(address: IPAddress) -> None:
    for notation in other_notations(address):
        assert not is_public_address(notation)
        assert not PUBLIC_ONLY.permits_address(notation)


@given(private_addresses, st.sampled_from(["8.8.8.8", "2606:4700:4700::1111"]))
def test_a_name_with_any_private_answer_is_refused(address: IPAddress, public: str) -> None:
    fetch = fetcher(PUBLIC_ONLY, {"images.example.com": [public, str(address)]})

    error = refusal(lambda: fetch.fetch("https://images.example.com/image.png"))

    assert error.code is ErrorCode.URL_FORBIDDEN


@given(st.ip_addresses(network="127.0.0.0/8"))
def test_allowed_networks_exempt_exactly_their_addresses(address: IPAddress) -> None:
    loopback = replace(BASE_POLICY, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))

    assert loopback.permits_address(address)
    assert loopback.permits_address(ipaddress.IPv6Address(f"::ffff:{address}"))
    assert not PUBLIC_ONLY.permits_address(address)
    assert not BASE_POLICY.permits_address(address) or address == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "text", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_well_known_public_addresses_are_public(text: str) -> None:
    assert is_public_address(ipaddress.ip_address(text))
    assert PUBLIC_ONLY.permits_address(ipaddress.ip_address(text))
