"""The HTTP connections of a URL fetch: urllib3 pools that connect only to an address already checked, whose
sockets the URL's deadline can shut down, and urllib3's errors in words the sender of the URL can act on.

Imported on the first URL (fetch.py), so that a function answering only uploaded images never loads urllib3.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.fetch import Deadline, FetchPolicy, IPAddress, Target

__all__ = ["NewConnectionError", "pool", "translated_errors"]


class _WatchedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._deadline.watch(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._deadline.watch(sock)  # before the TLS handshake, which the deadline covers too
        return sock


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def pool(target: Target, address: IPAddress, limit: Deadline, policy: FetchPolicy) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the checked `address` of `target`, its sockets watched by `limit`."""
    left = max(0.001, limit.remaining())
    timeout = urllib3.Timeout(connect=min(policy.connect_timeout, left), read=min(policy.read_timeout, left))
    if target.scheme == "https":
        # Connect to the checked address; SNI and certificate verification use the host name.
        return _WatchedHTTPSPool(
            str(address),
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            deadline=limit,
        )
    return _WatchedHTTPPool(str(address), target.port, timeout=timeout, retries=False, maxsize=1, deadline=limit)


def _read_timeout(target: Target, policy: FetchPolicy) -> InputError:
    return InputError(
        ErrorCode.URL_TIMEOUT,
        f"{target.host} sent nothing for {policy.read_timeout:g} s while the image was awaited; try again later, "
        "use a faster server or send the image itself",
    )


@contextmanager
def translated_errors(target: Target, policy: FetchPolicy, limit: Deadline) -> Iterator[None]:
    """Turns urllib3's transport errors into errors the sender of the URL can act on."""
    try:
        yield
    except (HTTPError, OSError) as error:
        if limit.passed():  # the deadline shut the connection down or cut a timeout short: the cause is time
            raise limit.error(target) from None
        raise transport_error(error, target, policy) from None


def transport_error(error: HTTPError | OSError, target: Target, policy: FetchPolicy) -> InputError:
    if isinstance(error, ConnectTimeoutError):
        return InputError(
            ErrorCode.URL_TIMEOUT,
            f"{target.host} did not accept a connection within {policy.connect_timeout:g} s; "
            "try again later or send the image itself",
        )
    if isinstance(error, ReadTimeoutError):
        return _read_timeout(target, policy)
    if isinstance(error, SSLError):
        return InputError(
            ErrorCode.URL_UNREACHABLE,
            f"could not make a trusted HTTPS connection to {target.host} (its certificate is invalid, expired "
            "or issued for another name); fix the certificate or use another URL",
        )
    return InputError(
        ErrorCode.URL_UNREACHABLE,
        f"the connection to {target.host} failed while downloading the image; try again later or send the image itself",
    )
