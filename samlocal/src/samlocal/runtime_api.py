"""The Lambda Runtime API, served to one execution environment on its own local port.

One port per environment tells the emulator which environment is asking for work. The protocol is the
one `awslambdaric` speaks (GET .../invocation/next, POST .../invocation/{id}/response|error, POST
.../init/error). A small HTTP/1.1 parser with keep-alive and TCP_NODELAY keeps a round trip well under a
millisecond: with Nagle's algorithm on, each exchange waited ~40 ms for a delayed ACK.

A `next` with no work waiting is parked: the environment keeps its connection and whoever submits the next
invocation (the gateway's thread) writes the answer itself, with no thread to wake on the way.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from pathlib import Path
from typing import BinaryIO, Protocol

PREFIX = "/2018-06-01/runtime/"
_MAX_LINE = 65536
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Too Large"}


class InvocationView(Protocol):
    request_id: str
    payload: bytes
    trace_id: str
    deadline_epoch_ms: int


class EnvironmentSide(Protocol):
    """What the Runtime API asks of the environment it serves."""

    function_arn: str

    def next_invocation(self, connection: socket.socket) -> InvocationView | None:
        """The invocation to answer `next` with now, or None: parked (answered later on `connection`)."""
        ...

    def connection_closed(self, connection: socket.socket, unread: bool) -> bool:
        """The runtime's connection ended; `unread`: reset with data it never read (its process died).

        True: the environment keeps the socket open and closes it itself (it still has to find out whether
        the invocation written on it was read)."""
        ...

    def invocation_response(self, request_id: str, payload: bytes) -> bool: ...

    def invocation_error(self, request_id: str, error_type: str, payload: bytes) -> bool: ...

    def init_error(self, error_type: str, payload: bytes) -> None: ...


class _Request:
    __slots__ = ("body", "headers", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body


def _read_request(rfile: BinaryIO, connection: socket.socket) -> _Request | None:
    line = rfile.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(_MAX_LINE)
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) < 2:
        return None
    headers: dict[str, str] = {}
    while True:
        header = rfile.readline(_MAX_LINE)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(rfile.readline(_MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(rfile.read(size))
            rfile.readline(_MAX_LINE)
        body = b"".join(chunks)
    else:
        length = int(headers.get("content-length") or 0)
        body = rfile.read(length) if length else b""
    return _Request(parts[0], parts[1], headers, body)


def closed_unread(connection: socket.socket) -> bool:
    """True if the runtime's side closed with data it never read (the kernel then resets the connection)."""
    try:
        connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except ConnectionResetError:
        return True
    except OSError:
        return False
    # An end of stream first, then the reset: data written after the runtime closed. The kernel keeps that
    # reset as the socket's pending error (EPIPE once the end of stream was seen), not as recv's.
    return connection.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in (errno.ECONNRESET, errno.EPIPE)


def unread_by_peer(connection: socket.socket) -> int:
    """Bytes sent on this loopback connection that the other side has not read yet (its receive queue in
    /proc/net/tcp); 0 if unknown."""
    try:
        ours = connection.getsockname()[1]
        theirs = connection.getpeername()[1]
        table = Path("/proc/net/tcp6" if connection.family == socket.AF_INET6 else "/proc/net/tcp").read_text()
    except OSError:
        return 0
    for line in table.splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.rpartition(":")[2], 16) == theirs and int(remote.rpartition(":")[2], 16) == ours:
            return int(queues.partition(":")[2], 16)
    return 0


def peer_open(connection: socket.socket) -> bool:
    """False once the runtime has closed its side (its process died while waiting for work)."""
    try:
        return bool(connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return True  # nothing to read: still connected
    except OSError:
        return False


def _response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    head += [f"{name}: {value}" for name, value in headers or [("Content-Type", "application/json")]]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def next_response(invocation: InvocationView, function_arn: str) -> bytes:
    """The answer to `next`: the event, and the invocation's id, deadline, function ARN and trace id."""
    return _response(
        200,
        invocation.payload,
        [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_epoch_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", function_arn),
            ("Lambda-Runtime-Trace-Id", invocation.trace_id),
        ],
    )


_ACCEPTED = _response(202, b'{"status":"OK"}')
_NOT_FOUND = _response(404, b'{"errorMessage":"Not found","errorType":"NotFound"}')
_UNKNOWN_ID = _response(400, b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}')


class RuntimeApiServer:
    """Listens on 127.0.0.1:<ephemeral port> for the runtime of one environment."""

    def __init__(self, environment: EnvironmentSide, host: str = "127.0.0.1") -> None:
        self.environment = environment
        self._socket = socket.create_server((host, 0))
        self.address = f"{host}:{self._socket.getsockname()[1]}"
        self._closed = False
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"runtime-api-{self.address}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        rfile = connection.makefile("rb")
        unread = False
        try:
            while True:
                request = _read_request(rfile, connection)
                if request is None:
                    return
                answer = self._dispatch(request, connection)
                if answer is not None:
                    connection.sendall(answer)
        except ConnectionResetError:
            unread = True  # closed with our data unread: a reset, not an end of stream
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)
            kept = self.environment.connection_closed(connection, unread)
            rfile.close()
            if not kept:
                connection.close()

    def _dispatch(self, request: _Request, connection: socket.socket) -> bytes | None:
        target = request.target
        if not target.startswith(PREFIX):
            return _NOT_FOUND
        action = target[len(PREFIX) :]
        environment = self.environment
        if request.method == "GET" and action == "invocation/next":
            invocation = environment.next_invocation(connection)
            return None if invocation is None else next_response(invocation, environment.function_arn)
        if request.method == "POST" and action.startswith("invocation/"):
            request_id, _, outcome = action[len("invocation/") :].rpartition("/")
            if outcome == "response":
                known = environment.invocation_response(request_id, request.body)
            elif outcome == "error":
                error_type = request.headers.get("lambda-runtime-function-error-type", "Unhandled")
                known = environment.invocation_error(request_id, error_type, request.body)
            else:
                return _NOT_FOUND
            return _ACCEPTED if known else _UNKNOWN_ID
        if request.method == "POST" and action == "init/error":
            environment.init_error(request.headers.get("lambda-runtime-function-error-type", "Unknown"), request.body)
            return _ACCEPTED
        return _NOT_FOUND
