"""The local API Gateway: HTTP in, Lambda proxy events out, and API Gateway's own answers.

- 403 `{"message":"Missing Authentication Token"}`: no route for the method and path.
- 403 `{"message":"Forbidden"}`: a route that requires an API key, called without `x-api-key` (any value
  is accepted locally: the keys live in API Gateway).
- 413 `{"message":"Request Too Long"}`: a body above API Gateway's 10 MB, or an event above Lambda's
  6 MB request limit (binary bodies grow by a third once base64-encoded).
- 502 `{"message": "Internal server error"}`: a function error (including its timeout, a crash, a
  response above 6 MB) or a malformed proxy response.
- 504 `{"message": "Endpoint request timed out"}`: no answer within the integration timeout (29 s by
  default, or the route's `timeoutInMillis`, or `--integration-timeout`); the function keeps running
  until its own Timeout, as behind a real API Gateway.
"""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from samlocal.console import Console
from samlocal.events import (
    ENDPOINT_TIMED_OUT,
    FORBIDDEN,
    INTERNAL_SERVER_ERROR,
    MISSING_AUTHENTICATION_TOKEN,
    REQUEST_TOO_LONG,
    HttpRequest,
    HttpResponse,
    MalformedProxyResponseError,
    RequestIds,
    build_event,
    encode_event,
    proxy_response,
)
from samlocal.routing import RouteTable
from samlocal.template import Stack
from samlocal.workers import REQUEST_PAYLOAD_LIMIT, FunctionPool, Invocation, PoolClosedError

API_GATEWAY_PAYLOAD_LIMIT = 10 * 1024 * 1024
DEFAULT_INTEGRATION_TIMEOUT = 29.0
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Framing headers are the gateway's own; a function cannot set them.
_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date"})


class Gateway:
    """Routes one request to its function and maps the result back, as API Gateway REST does."""

    def __init__(
        self,
        stack: Stack,
        pools: Mapping[str, FunctionPool],
        console: Console,
        *,
        port: int,
        integration_timeout: float | None = None,
    ) -> None:
        self.stack = stack
        self.apis = stack.apis
        self.functions = stack.functions
        self.pools = pools
        self.console = console
        self.port = port
        self.integration_timeout = integration_timeout
        self.routes = RouteTable(stack.routes)

    def handle(self, request: HttpRequest, received: float) -> tuple[HttpResponse, RequestIds]:
        ids = RequestIds.new()
        match = self.routes.match(request.method, request.path)
        if match is None:
            return MISSING_AUTHENTICATION_TOKEN.response(), ids
        route = match.route
        if route.api_key_required and not request.header("x-api-key"):
            return FORBIDDEN.response(), ids
        api = self.apis[route.api_id]
        event = build_event(
            request, route=route, api=api, path_parameters=match.path_parameters, ids=ids, port=self.port
        )
        payload = encode_event(event)
        if self.console.debug_enabled:
            self.console.debug(f"event for {route.function_id}: {_shorten(payload)}")
        if len(payload) > REQUEST_PAYLOAD_LIMIT:
            self.console.info(
                f"{route.function_id}: the event is {len(payload)} bytes, above Lambda's {REQUEST_PAYLOAD_LIMIT} "
                "byte request limit (binary bodies are base64-encoded)"
            )
            return REQUEST_TOO_LONG.response(), ids

        if self.integration_timeout is not None:
            timeout = self.integration_timeout
        elif route.timeout_ms is not None:
            timeout = route.timeout_ms / 1000
        else:
            timeout = DEFAULT_INTEGRATION_TIMEOUT
        wait_until = received + timeout
        function = self.functions[route.function_id]
        invocation = Invocation(str(uuid.uuid4()), payload, function.timeout, ids.trace_id)
        try:
            handed_over = self.pools[route.function_id].invoke(invocation, wait_until)
        except PoolClosedError:
            return INTERNAL_SERVER_ERROR.response(), ids
        except OSError as error:
            self.console.info(f"{route.function_id}: cannot start an execution environment: {error}")
            return INTERNAL_SERVER_ERROR.response(), ids
        outcome = invocation.wait(wait_until - time.monotonic()) if handed_over else None
        if outcome is None:
            self.console.info(f"{route.function_id}: no answer within the {timeout:g} s integration timeout")
            return ENDPOINT_TIMED_OUT.response(), ids
        if not outcome.ok:
            self.console.info(f"{route.function_id}: function error {outcome.error_type}: {_shorten(outcome.payload)}")
            return INTERNAL_SERVER_ERROR.response(), ids
        try:
            response = proxy_response(outcome.payload, request.header("Accept"), api.binary_media_types)
        except MalformedProxyResponseError as error:
            self.console.info(f"{route.function_id}: Malformed Lambda proxy response: {error}")
            return INTERNAL_SERVER_ERROR.response(), ids
        return response, ids


def _shorten(payload: bytes, limit: int = 2000) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(payload)} bytes)"


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"
    server_version = "samlocal"
    timeout = 300

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_expect_100(self) -> bool:
        if self._declared_length() > API_GATEWAY_PAYLOAD_LIMIT:
            self._too_long()
            return False
        return super().handle_expect_100()

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _too_long(self) -> None:
        self.close_connection = True
        self._send(REQUEST_TOO_LONG.response(), RequestIds.new(), time.monotonic())

    def _read_body(self) -> bytes | None:
        """The request body; None if it is above API Gateway's limit (answered, connection closed)."""
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > API_GATEWAY_PAYLOAD_LIMIT:
                    self._too_long()
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self._declared_length()
        if length > API_GATEWAY_PAYLOAD_LIMIT:
            self._too_long()
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        received = time.monotonic()
        body = self._read_body()
        if body is None:
            return
        path, _, query = self.path.partition("?")
        request = HttpRequest(
            method=self.command,
            path=path,
            query=query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        response, ids = self.server.gateway.handle(request, received)
        self._send(response, ids, received)

    def _send(self, response: HttpResponse, ids: RequestIds, received: float) -> None:
        lines = [f"{self.protocol_version} {response.status} {_reason(response.status)}"]
        lines += [f"{name}: {value}" for name, value in response.headers if name.lower() not in _HOP_HEADERS]
        lines += [
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Length: {len(response.body)}",
            f"x-amzn-RequestId: {ids.request_id}",
            f"x-amz-apigw-id: {ids.extended_request_id[:-1]}",
            f"X-Amzn-Trace-Id: {ids.trace_id};Sampled=0",
            "Connection: close" if self.close_connection else "Connection: keep-alive",
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)
        elapsed = (time.monotonic() - received) * 1000
        self.server.gateway.console.access(
            f'{self.client_address[0]} "{self.command} {self.path} {self.request_version}" '
            f"{response.status} {len(response.body)} {elapsed:.1f} ms"
        )

    def log_message(self, format: str, *args: Any) -> None:
        self.server.gateway.console.debug(format % args)


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._serve)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, host: str, port: int, gateway_factory: Callable[[int], Gateway]) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.gateway: Gateway = gateway_factory(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # the client went away; nothing to answer
        super().handle_error(request, client_address)
