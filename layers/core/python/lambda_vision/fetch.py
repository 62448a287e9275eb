"""Fetching an image by URL without letting the URL reach anything but public web servers.

An image URL is a request the service makes on the caller's behalf, so it is held to strict rules:
http or https only, no credentials, and every address the host name resolves to must be a public
internet address (or inside a network the deployment explicitly allows). The connection then goes to
the checked address itself, so the name is never looked up a second time (no DNS rebinding), while the
Host header and TLS verification keep using the real host name. Redirects are followed one by one and
each new URL is checked again from scratch.

Each URL has one deadline for everything (connecting, headers, body and every redirect), the sooner of
its own time limit and the request's: when it passes, the download's sockets are shut down, so a server
that sends its headers or its body a byte at a time cannot hold the request past it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.settings import IPNetwork, Settings

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Refused whatever the running Python's `ipaddress` tables say (they changed between 3.11 and 3.13).
NON_PUBLIC_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, including the instance metadata service 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast
        "::/8",  # reserved: unspecified, loopback, IPv4-compatible (NAT64 is judged by its IPv4 address first)
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, including Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (deprecated); may tunnel to any IPv4 address
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_URL_LENGTH = 8192
_MAX_HOST_LENGTH = 253
_CHUNK_BYTES = 64 * 1024
_REQUEST_HEADERS = {
    "User-Agent": "lambda-vision",
    "Accept": "image/*, */*;q=0.5",
    # Ask for the bytes as stored; any compression still sent is decoded within the size limit.
    "Accept-Encoding": "identity",
}
_UNSAFE_URL_CHARACTER = re.compile(r"[\x00-\x20\x7f\\]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*")
# A name whose last label is a number is an IPv4 address in another notation (127.1, 0x7f.0.0.1).
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")

_log = logging.getLogger(__name__)


def is_public_address(address: IPAddress) -> bool:
    """Whether `address` is on the public internet; IPv4-mapped and NAT64 addresses are judged as their IPv4."""
    judged = _judged_address(address)
    if any(judged.version == network.version and judged in network for network in NON_PUBLIC_NETWORKS):
        return False
    return judged.is_global and not (
        judged.is_private
        or judged.is_loopback
        or judged.is_link_local
        or judged.is_multicast
        or judged.is_reserved
        or judged.is_unspecified
    )


def _judged_address(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64_WELL_KNOWN:
            return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


def _in_any(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class FetchPolicy:
    """What an image URL may point to and how long and large its download may be."""

    connect_timeout: float  # longest wait for one connection
    read_timeout: float  # longest wait for any data (a silent server)
    max_bytes: int
    max_redirects: int
    allowed_hosts: frozenset[str] = frozenset()  # empty: any host; else names or "*.example.com" (subdomains)
    allowed_networks: tuple[IPNetwork, ...] = ()  # permitted even if not public (development and tests only)
    total_timeout: float = 10.0  # everything of one URL: connections, headers, bodies and redirects together

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("URL fetch timeouts must be positive")
        if self.max_bytes < 1:
            raise ValueError("URL fetch max_bytes must be at least 1")
        if self.max_redirects < 0:
            raise ValueError("URL fetch max_redirects must not be negative")
        normalized = frozenset(host.strip().lower().removesuffix(".") for host in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", normalized)

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            connect_timeout=settings.url_connect_timeout,
            read_timeout=settings.url_read_timeout,
            max_bytes=settings.url_max_bytes,
            max_redirects=settings.url_max_redirects,
            allowed_hosts=settings.url_allowed_hosts,
            allowed_networks=settings.url_allowed_networks,
            total_timeout=settings.url_timeout,
        )

    def permits_host(self, host: str) -> bool:
        if not self.allowed_hosts or host in self.allowed_hosts:
            return True
        return any(pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.allowed_hosts)

    def permits_address(self, address: IPAddress) -> bool:
        judged = _judged_address(address)
        # Never a real destination, whatever the allowed networks say (0.0.0.0 reaches the local host).
        if judged.is_unspecified or judged.is_multicast or judged == ipaddress.IPv4Address("255.255.255.255"):
            return False
        return _in_any(judged, self.allowed_networks) or is_public_address(address)


@dataclass(frozen=True)
class FetchedUrl:
    data: bytes
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class Target:
    """One URL, checked and split into what the connection needs."""

    url: str
    scheme: str
    host: str  # lower-case ASCII; IPv6 without brackets
    port: int
    request_target: str  # path and query, sent in the request line
    literal: IPAddress | None  # the host, when it is an IP address

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


class Deadline:
    """The time by which one URL must be downloaded; when it passes, its sockets are shut down."""

    def __init__(self, seconds: float, request_left: float | None) -> None:
        self.by_request = request_left is not None and request_left < seconds  # the request's deadline comes first
        self.seconds = max(0.0, request_left if self.by_request and request_left is not None else seconds)
        self.expires = time.monotonic() + self.seconds
        self.expired = self.seconds <= 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: TLS wrapping detaches `sock` itself, and holding it open means the
        # number cannot be reused by another connection before the deadline is over.
        watched = sock.dup()
        with self._lock:
            self._sockets.append(watched)
            expired = self.expired
        if expired:
            shut_down(watched)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            shut_down(sock)

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def check(self, target: Target) -> None:
        if self.passed():
            raise self.error(target)

    def error(self, target: Target) -> InputError:
        if self.by_request:
            return InputError(
                ErrorCode.URL_TIMEOUT,
                f"{target.host} did not send the image within the {self.seconds:.3g} s this request had left for "
                "downloads; send fewer or faster image URLs per request, or the images themselves",
            )
        return InputError(
            ErrorCode.URL_TIMEOUT,
            f"{target.host} did not send the image within {self.seconds:g} s (connection, redirects and download "
            "together); try again later, use a faster server or send the image itself",
        )


def shut_down(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it; closing is left to its owner


class UrlFetcher:
    """Downloads images from URLs under a `FetchPolicy`; every failure is an `InputError` for that image."""

    def __init__(self, policy: FetchPolicy, resolver: Resolver | None = None) -> None:
        self._policy = policy
        self._resolve = resolver or _system_resolver

    def fetch(self, url: str, deadline: float | None = None) -> FetchedUrl:
        """The image at `url`, within the policy's total time and before `deadline` (time.monotonic()) if given."""
        request_left = None if deadline is None else deadline - time.monotonic()
        with Deadline(self._policy.total_timeout, request_left) as limit:
            return self._fetch(url, limit)

    def _fetch(self, url: str, limit: Deadline) -> FetchedUrl:
        for redirects in range(self._policy.max_redirects + 1):
            redirected = redirects > 0
            target = _parse_url(url, redirected)
            if not self._policy.permits_host(target.host):
                self._refuse(target, "host not allowed")
                raise InputError(
                    ErrorCode.URL_FORBIDDEN,
                    f"{_subject(target.host, redirected)} is not on this service's list of allowed image hosts; "
                    "use an image URL on an allowed host or send the image itself",
                )
            addresses = self._checked_addresses(target, redirected)
            outcome = self._download(target, addresses, limit)
            if isinstance(outcome, FetchedUrl):
                return outcome
            url = urljoin(url, outcome)
        raise InputError(
            ErrorCode.URL_TOO_MANY_REDIRECTS,
            f"the image URL redirected more than {self._policy.max_redirects} times; "
            "use the final address of the image instead",
        )

    def check(self, url: str) -> None:
        """Raise the `InputError` a fetch of `url` would meet before connecting (syntax, host list, addresses)."""
        target = _parse_url(url, redirected=False)
        if not self._policy.permits_host(target.host):
            raise InputError(ErrorCode.URL_FORBIDDEN, f"{target.host} is not on this service's list of allowed hosts")
        self._checked_addresses(target, redirected=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], deadline: float | None = None) -> int:
        """POST `body` to `url` under the same rules as a fetch (no redirect is followed), within the policy's
        total time and before `deadline` (time.monotonic()) if given; the HTTP status.

        Raises `InputError` when the URL is refused or the server cannot be reached."""
        target = _parse_url(url, redirected=False)
        if not self._policy.permits_host(target.host):
            raise InputError(ErrorCode.URL_FORBIDDEN, f"{target.host} is not on this service's list of allowed hosts")
        addresses = self._checked_addresses(target, redirected=False)
        from lambda_vision import transport  # noqa: PLC0415 - urllib3, loaded on the first URL

        request_left = None if deadline is None else deadline - time.monotonic()
        with Deadline(self._policy.total_timeout, request_left) as limit:
            for address in addresses:
                limit.check(target)
                with (
                    transport.pool(target, address, limit, self._policy) as pool,
                    transport.translated_errors(target, self._policy, limit),
                ):
                    try:
                        response = pool.urlopen(
                            "POST",
                            target.request_target,
                            body=body,
                            headers={"User-Agent": "lambda-vision", **headers, "Host": target.host_header},
                            retries=False,
                            redirect=False,
                            assert_same_host=False,
                        )
                    except transport.NewConnectionError:
                        continue
                    return int(response.status)
        raise InputError(ErrorCode.URL_UNREACHABLE, f"could not connect to {target.host} on port {target.port}")

    def _checked_addresses(self, target: Target, redirected: bool) -> list[IPAddress]:
        """The addresses to connect to, each one permitted by the policy."""
        if target.literal is not None:
            if not self._policy.permits_address(target.literal):
                self._refuse(target, "address not public")
                raise InputError(
                    ErrorCode.URL_FORBIDDEN,
                    f"{_subject(target.host, redirected)} is not a public internet address (private, loopback, "
                    "link-local and cloud metadata addresses are refused); use the URL of a publicly reachable "
                    "image or send the image itself",
                )
            return [_connect_address(target.literal)]
        try:
            addresses = list(
                dict.fromkeys(ipaddress.ip_address(text) for text in self._resolve(target.host, target.port))
            )
        except (OSError, UnicodeError, ValueError):
            addresses = []
        if not addresses:
            raise InputError(
                ErrorCode.URL_UNREACHABLE,
                f"the host name {target.host} could not be looked up; check that the image URL is spelled "
                "correctly and that the host exists",
            )
        if not all(self._policy.permits_address(address) for address in addresses):
            self._refuse(target, "name resolves to an address that is not public")
            raise InputError(
                ErrorCode.URL_FORBIDDEN,
                f"{_subject(target.host, redirected)} resolves to an address that is not on the public internet "
                "(private, loopback, link-local or cloud metadata); use the URL of a publicly reachable image "
                "or send the image itself",
            )
        return [_connect_address(address) for address in addresses]

    def _download(self, target: Target, addresses: list[IPAddress], limit: Deadline) -> FetchedUrl | str:
        """The image, or the Location of a redirect."""
        from lambda_vision import transport  # noqa: PLC0415 - urllib3, loaded on the first URL

        for address in addresses:
            limit.check(target)
            with (
                transport.pool(target, address, limit, self._policy) as pool,
                transport.translated_errors(target, self._policy, limit),
            ):
                try:
                    response = pool.urlopen(
                        "GET",
                        target.request_target,
                        headers={**_REQUEST_HEADERS, "Host": target.host_header},
                        retries=False,
                        redirect=False,
                        assert_same_host=False,
                        preload_content=False,
                    )
                except transport.NewConnectionError:
                    continue  # refused or no route: the next address may answer
                try:
                    return self._read(target, response, limit)
                finally:
                    response.close()
        raise InputError(
            ErrorCode.URL_UNREACHABLE,
            f"could not connect to {target.host} on port {target.port}; check that the server is up and "
            "reachable from the internet, or send the image itself",
        )

    def _read(self, target: Target, response: BaseHTTPResponse, limit: Deadline) -> FetchedUrl | str:
        status = response.status
        if status in REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location:
                raise InputError(
                    ErrorCode.URL_HTTP_ERROR,
                    f"{target.host} answered HTTP {status} (a redirect) without saying where to; check the image URL",
                )
            return location
        if not 200 <= status < 300:
            raise InputError(
                ErrorCode.URL_HTTP_ERROR,
                f"{target.host} answered HTTP {status}{_phrase(status)} for the image URL; check that the URL is "
                "correct and that the image is publicly readable",
            )
        declared = _content_length(response.headers.get("Content-Length"))
        if declared is not None and declared > self._policy.max_bytes:
            raise self._too_large(target)
        body = bytearray()
        # read1 returns after one network read, so a server sending a byte at a time meets the deadline.
        while chunk := response.read1(_CHUNK_BYTES):
            body += chunk
            if len(body) > self._policy.max_bytes:
                raise self._too_large(target)
            limit.check(target)
        limit.check(target)  # a body cut short by the deadline is not an image
        if not body:
            raise InputError(
                ErrorCode.IMAGE_EMPTY,
                f"{target.host} answered with an empty body instead of an image; check the image URL",
            )
        return FetchedUrl(data=bytes(body), content_type=response.headers.get("Content-Type"), final_url=target.url)

    def _too_large(self, target: Target) -> InputError:
        limit = self._policy.max_bytes
        return InputError(
            ErrorCode.URL_TOO_LARGE,
            f"the image at {target.host} is larger than the limit of {limit} bytes ({limit / 1_048_576:.1f} MiB); "
            "use a smaller image",
        )

    @staticmethod
    def _refuse(target: Target, reason: str) -> None:
        # Only scheme and host: paths and queries can carry tokens.
        _log.info("image URL refused: %s://%s: %s", target.scheme, target.host, reason)


def _parse_url(url: str, redirected: bool) -> Target:
    def invalid(problem: str) -> InputError:
        what = "the image URL redirected to a URL that" if redirected else "the image URL"
        return InputError(ErrorCode.URL_INVALID, f"{what} {problem}")

    if not url or not url.strip():
        raise invalid("is empty; give an http:// or https:// address of an image")
    if len(url) > _MAX_URL_LENGTH:
        raise invalid(f"is longer than {_MAX_URL_LENGTH} characters; use a shorter address")
    if _UNSAFE_URL_CHARACTER.search(url):
        raise invalid("contains spaces, backslashes or control characters; percent-encode them (a space is %20)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid("is malformed; check the host name and port") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        if not scheme:
            raise invalid("must start with http:// or https://, as in https://example.com/image.jpg")
        raise invalid(f"uses {scheme}:, but only http:// and https:// URLs can be fetched")
    if "@" in parts.netloc:
        raise invalid("contains a user name or password; use an address that is readable without credentials")
    if not parts.hostname:
        raise invalid("has no host name; give a full address such as https://example.com/image.jpg")
    if port == 0:
        raise invalid("has port 0; give a valid port or none")
    host, literal = _parse_host(parts.hostname, bracketed=parts.netloc.startswith("["))
    if host is None:
        raise invalid("has an invalid host name; check its spelling (IPv4 addresses are four decimal numbers)")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port or _DEFAULT_PORTS[scheme],
        request_target=_NON_ASCII.sub(lambda match: quote(match.group(0), safe=""), target),
        literal=literal,
    )


def _parse_host(hostname: str, bracketed: bool) -> tuple[str | None, IPAddress | None]:
    """The normalized host and, for an IP address, the address; (None, None) when not a valid host."""
    if bracketed:
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            return None, None
        if address.scope_id:
            return None, None
        return hostname, address  # as written, so that messages name what the sender typed
    try:
        address4 = ipaddress.IPv4Address(hostname)
    except ValueError:
        pass
    else:
        return str(address4), address4
    try:
        name = hostname.removesuffix(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None, None
    if len(name) > _MAX_HOST_LENGTH or not _HOST_NAME.fullmatch(name):
        return None, None
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        return None, None
    return name, None


def _connect_address(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _subject(host: str, redirected: bool) -> str:
    return f"the image URL redirected to {host}, which" if redirected else host


def _phrase(status: int) -> str:
    try:
        return f" {HTTPStatus(status).phrase}"
    except ValueError:
        return ""


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None
