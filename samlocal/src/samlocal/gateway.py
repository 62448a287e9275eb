"""The local API Gateway: HTTP in, Lambda proxy events out, and API Gateway's own answers.

- 403 `{"message":"Missing Authentication Token"}`: no route for the method and path.
- 403 `{"message":"Forbidden"}`: a route that requires an API key, called without `x-api-key` (any value
  is accepted locally: the keys live in API Gateway).
- 401, 403, 500 from authorizers (samlocal.authorizers); CORS preflights (samlocal.cors); MOCK, HTTP_PROXY
  and other integrations without a local function (samlocal.integrations).
- 413 `{"message":"Request Too Long"}`: a body above API Gateway's 10 MB, or an event above Lambda's
  6 MB request limit (binary bodies grow by a third once base64-encoded).
- 500 `{"message": "Internal server error"}`: Lambda throttled the invocation (429
  TooManyRequestsException: every environment the function may run is busy), as API Gateway answers
  when Lambda rejects an invocation.
- 502 `{"message": "Internal server error"}`: a function error (including its timeout, a crash, running
  out of memory, a response above 6 MB) or a malformed proxy response.
- 504 `{"message": "Endpoint request timed out"}`: no answer within the integration timeout (29 s by
  default, or the route's `timeoutInMillis`, or `--integration-timeout`); the function keeps running
  until its own Timeout, as behind a real API Gateway.

The HTTP server answers what it cannot parse with 400 and closes the connection (a bad request line, a
Content-Length that is not a non-negative number, a malformed chunk), drops a request whose client closed
the connection before sending its whole body, closes keep-alive connections idle for `idle_timeout`,
answers 503 beyond `max_connections` at once, and on shutdown drains: new requests are refused (503) while
those in flight finish within a grace period.

A REST API's `GatewayResponses` customize the gateway's own answers (samlocal.gateway_responses).
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl

from samlocal import gateway_responses as responses
from samlocal.authorizers import (
    Authorization,
    Guard,
    RequestData,
    guard_for,
    method_arn,
    read_authorizers,
    startup_warnings,
)
from samlocal.console import Console
from samlocal.cors import HttpCors, RestCors, is_preflight, read_http_cors, read_rest_cors
from samlocal.events import (
    REQUEST_TOO_LONG,
    GatewayError,
    HttpRequest,
    HttpResponse,
    MalformedProxyResponseError,
    RequestIds,
    api_id,
    encode_event,
    random_uuid,
)
from samlocal.gateway_responses import ErrorContext, GatewayResponses, ResponseType, read_customizations
from samlocal.integration import integration_event, integration_response
from samlocal.integrations import (
    BackendTimeoutError,
    BackendUnreachableError,
    Integration,
    forward,
    mock_response,
)
from samlocal.routing import Match, RouteTable
from samlocal.template import Api, Route, Stack
from samlocal.workers import (
    REQUEST_PAYLOAD_LIMIT,
    FunctionPool,
    Invocation,
    Outcome,
    PoolClosedError,
    ThrottledError,
)

API_GATEWAY_PAYLOAD_LIMIT = 10 * 1024 * 1024
DEFAULT_INTEGRATION_TIMEOUT = 29.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 256
SERVICE_UNAVAILABLE = GatewayError(503, b'{"message":"Service Unavailable"}')
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Framing headers are the gateway's own; a function cannot set them.
_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "date"})


class Frontend(Protocol):
    """What a server hands each request to: an API's gateway, or a Function URL (samlocal.function_urls)."""

    console: Console

    def handle(self, request: HttpRequest, received: float) -> tuple[HttpResponse, RequestIds]: ...

    def id_headers(self, ids: RequestIds) -> list[tuple[str, str]]: ...


FrontendT = TypeVar("FrontendT", bound=Frontend)


class Gateway:
    """Routes one request to its function and maps the result back, as API Gateway does: authorizers,
    CORS, integrations without a function and the API's gateway responses included."""

    def __init__(
        self,
        stack: Stack,
        pools: Mapping[str, FunctionPool],
        console: Console,
        *,
        port: int,
        integration_timeout: float | None = None,
        disable_authorizer: bool = False,
    ) -> None:
        self.stack = stack
        self.apis = stack.apis
        self.functions = stack.functions
        self.pools = pools
        self.console = console
        self.port = port
        self.integration_timeout = integration_timeout
        self.disable_authorizer = disable_authorizer
        self.warnings: list[str] = []
        self.responses: dict[str, GatewayResponses] = {}
        self.http_cors: dict[str, HttpCors] = {}
        self.guards: dict[tuple[str, str, str], Guard] = {}  # (api, method, resource path)
        for api in self.apis.values():
            self._configure(api)
        if disable_authorizer and self.guards:
            self.warnings.append("--disable-authorizer: no authorizer runs, every route is open")
        elif self.guards:
            self.warnings += startup_warnings(self.guards.values())
        self.authorization = Authorization()
        self.routes = RouteTable.for_stack(stack)

    def _configure(self, api: Api) -> None:
        if api.kind == "REST":
            customizations, warnings = read_customizations(api.properties, api.definition)
            self.warnings += [f"{api.logical_id}: {warning}" for warning in warnings]
            self.responses[api.logical_id] = GatewayResponses(customizations)
            rest_cors, warnings = read_rest_cors(api)
            self.warnings += warnings
            if rest_cors is not None:
                api.routes += _preflight_routes(api, rest_cors)
        else:
            http_cors = read_http_cors(api)
            if http_cors is not None:
                self.http_cors[api.logical_id] = http_cors
        authorizers, warnings = read_authorizers(api, self.functions)
        self.warnings += warnings
        for route in api.routes:
            guard = guard_for(route, api, authorizers)
            if guard is not None:
                self.guards[_route_key(route)] = guard

    def describe_route(self, route: Route) -> str:
        """What guards a route, for the start-up listing."""
        guard = self.guards.get(_route_key(route))
        if guard is None or self.disable_authorizer:
            return ""
        authorizer = guard.authorizer
        kind = "" if authorizer.name == authorizer.kind else f" ({authorizer.kind})"
        scopes = f", scopes {' '.join(guard.scopes)}" if guard.scopes else ""
        return f"  [authorizer {authorizer.name}{kind}{scopes}]"

    def id_headers(self, ids: RequestIds) -> list[tuple[str, str]]:
        """The ids API Gateway adds to every response."""
        return [
            ("x-amzn-RequestId", ids.request_id),
            ("x-amz-apigw-id", ids.extended_request_id[:-1]),
            ("X-Amzn-Trace-Id", f"{ids.trace_id};Sampled=0"),
        ]

    def handle(self, request: HttpRequest, received: float) -> tuple[HttpResponse, RequestIds]:
        ids = RequestIds.new()
        match = self.routes.match(request.method, request.path)
        api = self.apis[match.route.api_id] if match is not None else None
        http_cors = self._http_cors(api)
        origin = request.header("Origin")
        explicit_options = match is not None and match.route.method == "OPTIONS"
        preflight = is_preflight(request.method, origin, request.header("Access-Control-Request-Method"))
        if http_cors is not None and preflight and not explicit_options:
            return http_cors.preflight(origin), ids
        response = self._route(request, received, ids, match)
        if http_cors is not None:
            response = http_cors.decorate(response, origin)
        return response, ids

    def _http_cors(self, api: Api | None) -> HttpCors | None:
        if api is not None:
            return self.http_cors.get(api.logical_id)
        # An unknown path still gets its preflight answered by the (first) HTTP API with CORS.
        return next(iter(self.http_cors.values()), None)

    def _route(self, request: HttpRequest, received: float, ids: RequestIds, match: Match | None) -> HttpResponse:
        if match is None:
            if self.routes.no_route.status == 404:  # an HTTP API: 404 Not Found
                return self.routes.no_route.response()
            return self._refuse(None, responses.MISSING_AUTHENTICATION_TOKEN, request, ids)
        route = match.route
        api = self.apis[route.api_id]
        event = self._event(request, api, match, ids)
        guard = None if self.disable_authorizer else self.guards.get(_route_key(route))
        if guard is not None:
            data = RequestData(
                headers=request.headers,
                query_string=request.query,
                stage_variables=api.stage_variables,
                context=event["requestContext"],
                method=request.method,
                path=request.path,
                event=event,
            )
            arn = method_arn(api, api_id(api.logical_id), request.method, request.path)
            invoke = functools.partial(self._invoke_authorizer, wait_until=received + DEFAULT_INTEGRATION_TIMEOUT)
            verdict = self.authorization.decide(guard, data, arn, invoke, _payload_version(route, api))
            if not verdict.allowed:
                assert verdict.refusal is not None
                self.console.info(f"{request.method} {request.path}: {verdict.refusal.status}: {verdict.reason}")
                return self._refuse(api, verdict.refusal, request, ids, match)
            if verdict.context is not None:
                event["requestContext"]["authorizer"] = dict(verdict.context)
            if verdict.identity is not None:
                event["requestContext"]["identity"].update(verdict.identity)
        if route.api_key_required and not request.header("x-api-key"):
            return self._refuse(api, responses.INVALID_API_KEY, request, ids, match)
        timeout = self._timeout(route)
        if route.integration is not None:
            integration = Integration.read(route.integration)
            return self._integration(api, integration, request, ids, match, wait_until=received + timeout)

        payload = function_payload(event, route.function_id, self.console)
        if payload is None:
            return self._refuse(api, responses.REQUEST_TOO_LARGE, request, ids, match)

        wait_until = received + timeout
        function = self.functions[route.function_id]
        invocation = Invocation(random_uuid(), payload, function.timeout, ids.trace_id)
        try:
            self.pools[route.function_id].dispatch(invocation)
        except ThrottledError as error:
            self.console.info(
                f"{error}: Lambda answers 429 TooManyRequestsException, API Gateway 500 "
                "(raise --max-concurrency to run more at once)"
            )
            return self._refuse(api, responses.INVOCATION_REJECTED, request, ids, match)
        except PoolClosedError:
            return self._refuse(api, responses.LAMBDA_ERROR, request, ids, match)
        except OSError as error:
            self.console.info(f"{route.function_id}: cannot start an execution environment: {error}")
            return self._refuse(api, responses.LAMBDA_ERROR, request, ids, match)
        outcome = invocation.wait(wait_until - time.monotonic())
        if outcome is None:
            self.console.info(f"{route.function_id}: no answer within the {timeout:g} s integration timeout")
            return self._refuse(api, responses.INTEGRATION_TIMEOUT, request, ids, match)
        if not outcome.ok:
            self.console.info(f"{route.function_id}: function error {outcome.error_type}: {shorten(outcome.payload)}")
            return self._refuse(api, responses.LAMBDA_ERROR, request, ids, match)
        try:
            return integration_response(outcome.payload, request, route=route, api=api)
        except MalformedProxyResponseError as error:
            self.console.info(f"{route.function_id}: Malformed Lambda proxy response: {error}")
            return self._refuse(api, responses.LAMBDA_ERROR, request, ids, match)

    def _event(self, request: HttpRequest, api: Api, match: Match, ids: RequestIds) -> dict[str, Any]:
        """The function's event; a REQUEST authorizer's event is derived from it."""
        return integration_event(
            request, route=match.route, api=api, path_parameters=match.path_parameters, ids=ids, port=self.port
        )

    def _timeout(self, route: Route) -> float:
        if self.integration_timeout is not None:
            return self.integration_timeout
        if route.timeout_ms is not None:
            return route.timeout_ms / 1000
        return DEFAULT_INTEGRATION_TIMEOUT

    def _invoke_authorizer(self, function_id: str, payload: bytes, *, wait_until: float) -> Outcome | None:
        """An authorizer's invocation, through the same execution environments as any function."""
        function = self.functions.get(function_id)
        if function is None:
            return None
        invocation = Invocation(random_uuid(), payload, function.timeout, RequestIds.new().trace_id)
        try:
            self.pools[function_id].dispatch(invocation)
        except (ThrottledError, PoolClosedError, OSError):
            return None
        return invocation.wait(wait_until - time.monotonic())

    def _integration(
        self,
        api: Api,
        integration: Integration,
        request: HttpRequest,
        ids: RequestIds,
        match: Match,
        *,
        wait_until: float,
    ) -> HttpResponse:
        if integration.kind == "HTTP_PROXY":
            try:
                return forward(integration, request, match.path_parameters, wait_until - time.monotonic())
            except BackendTimeoutError:
                self.console.info(f"{request.method} {request.path}: {integration.uri} did not answer in time")
                return self._refuse(api, responses.INTEGRATION_TIMEOUT, request, ids, match)
            except BackendUnreachableError as error:
                self.console.info(f"{request.method} {request.path}: {integration.uri} cannot be reached: {error}")
                return self._refuse(api, responses.API_CONFIGURATION_ERROR, request, ids, match)
        if integration.answered_locally:
            answer = mock_response(
                integration, request.header("Content-Type"), self._error_context(api, request, ids, match)
            )
            if answer is not None:
                return answer
            self.console.info(f"{request.method} {request.path}: no integration response matches the MOCK status")
        else:
            self.console.info(f"{request.method} {request.path}: {integration.describe()}")
        return self._refuse(api, responses.API_CONFIGURATION_ERROR, request, ids, match)

    def _refuse(
        self, api: Api | None, kind: ResponseType, request: HttpRequest, ids: RequestIds, match: Match | None = None
    ) -> HttpResponse:
        """A gateway response of the API (its GatewayResponses applied), or of the only REST API served."""
        if api is None and len(self.responses) == 1:
            api = self.apis[next(iter(self.responses))]
        customized = self.responses.get(api.logical_id) if api is not None else None
        if customized is None:
            return GatewayResponses().response(kind)
        return customized.response(kind, self._error_context(api, request, ids, match))

    @staticmethod
    def _error_context(api: Api | None, request: HttpRequest, ids: RequestIds, match: Match | None) -> ErrorContext:
        return ErrorContext(
            request_id=ids.request_id,
            headers={name.lower(): value for name, value in request.headers},
            query=dict(parse_qsl(request.query, keep_blank_values=True)),
            path_parameters=match.path_parameters if match is not None else {},
            stage_variables=api.stage_variables if api is not None else {},
            context={
                "stage": api.stage_name if api is not None else "",
                "apiId": api_id(api.logical_id) if api is not None else "",
                "httpMethod": request.method,
                "resourcePath": match.route.resource_path if match is not None else "",
                "path": request.path,
                "identity": {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent")},
            },
        )


def _route_key(route: Route) -> tuple[str, str, str]:
    return (route.api_id, route.method, route.resource_path)


def _payload_version(route: Route, api: Api) -> str:
    """The route's payload format version: REST APIs send 1.0; HTTP APIs 2.0 unless the route says 1.0."""
    if api.kind != "HTTP":
        return "1.0"
    return str(getattr(route, "payload_format_version", None) or "2.0")


def _preflight_routes(api: Api, cors: RestCors) -> list[Route]:
    """The OPTIONS method SAM adds to every path of a REST API with Cors (a path's own OPTIONS is kept)."""
    methods: dict[str, set[str]] = {}
    for route in api.routes:
        methods.setdefault(route.resource_path, set()).add(route.method)
    return [
        Route(
            method="OPTIONS",
            resource_path=path,
            function_id="",
            api_id=api.logical_id,
            integration=cors.preflight_integration(listed).spec,
        )
        for path, listed in methods.items()
        if "OPTIONS" not in listed
    ]


def shorten(payload: bytes, limit: int = 2000) -> str:
    """A payload for the console: its text, cut after `limit` characters."""
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(payload)} bytes)"


def function_payload(event: Mapping[str, Any], function_id: str, console: Console) -> bytes | None:
    """The event as the function receives it (shown with --debug); None, said on the console, when it is above
    Lambda's request limit, which API Gateway and Function URLs each answer in their own way."""
    payload = encode_event(event)
    if console.debug_enabled:
        console.debug(f"event for {function_id}: {shorten(payload)}")
    if len(payload) > REQUEST_PAYLOAD_LIMIT:
        console.info(
            f"{function_id}: the event is {len(payload)} bytes, above Lambda's {REQUEST_PAYLOAD_LIMIT} "
            "byte request limit (binary bodies are base64-encoded)"
        )
        return None
    return payload


class BadRequestError(Exception):
    """The request cannot be parsed: 400, and the connection is closed (its framing is lost)."""


class ClientGoneError(Exception):
    """The client closed the connection before sending the whole body: nothing to answer, nothing to invoke."""


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_LINE = 65537
_MAX_HEADERS = 100  # as http.client


class RequestHeaders:
    """A request's header fields, in the order received, looked up without regard to case.

    Read by `_Handler.parse_request` instead of http.client's email parser, which costs about a tenth of a
    millisecond per request."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for field, value in self._fields if field.lower() == wanted]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for field, value in self._fields:
            if field.lower() == wanted:
                return value
        return default


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer[Any]
    headers: RequestHeaders  # type: ignore[assignment]  # parse_request reads its own
    protocol_version = "HTTP/1.1"
    server_version = "samlocal"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)  # also bounds a client that stalls mid-request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        server = self.server
        self.command = self.requestline = ""
        server.connection_idle(self.connection)
        try:
            self.raw_requestline = self.rfile.readline(_LINE)
        except (TimeoutError, OSError):  # idle past the timeout, or closed by a drain
            self.raw_requestline = b""
        if not self.raw_requestline:
            self.close_connection = True
            return
        admitted = server.request_started(self.connection)
        try:
            if admitted:
                self._handle_request()
            else:
                self.close_connection = True
                self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
                self._answer(SERVICE_UNAVAILABLE.response())
        except TimeoutError:
            self.close_connection = True
        finally:
            server.request_finished()

    def _handle_request(self) -> None:
        if len(self.raw_requestline) >= _LINE:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if len(self.raw_requestline.split()) != 3:  # HTTP/0.9 and garbage alike
            self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request line")
            return
        if not self.parse_request():
            return  # answered
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method {self.command}")
            return
        method()
        self.wfile.flush()

    def parse_request(self) -> bool:
        """The request line and header fields (BaseHTTPRequestHandler's rules); False once answered."""
        self.command = ""
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        command, path, version = self.requestline.split()  # three words: checked by the caller
        major, _, minor = version.removeprefix("HTTP/").partition(".")
        if not version.startswith("HTTP/") or not (major.isdigit() and minor.isdigit()) or len(major + minor) > 20:
            self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
            return False
        if int(major) >= 2:
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"Invalid HTTP version ({major}.{minor})")
            return False
        self.request_version = version
        self.close_connection = (int(major), int(minor)) < (1, 1)
        self.command = command
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        fields: list[tuple[str, str]] = []
        while True:
            line = self.rfile.readline(_LINE)
            if len(line) >= _LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(fields) >= _MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            text = line.decode("latin-1")
            if text[0] in " \t" and fields:  # an obsolete line folding: part of the previous field's value
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line {text.strip()[:40]!r}")
                return False
            fields.append((name, value.strip()))
        self.headers = RequestHeaders(fields)
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error the server answers itself: a full status line and a JSON body, then close."""
        self.close_connection = True
        phrase = _reason(code)
        detail = f"{phrase}: {message}" if message and message != phrase else phrase
        body = f'{{"message":"{_json_text(detail)}"}}'.encode()
        self._answer(HttpResponse(code, [("Content-Type", "application/json")], body))

    def _answer(self, response: HttpResponse) -> None:
        with contextlib.suppress(OSError):
            self._send(response, RequestIds.new(), time.monotonic())

    def handle_expect_100(self) -> bool:
        try:
            length = self._content_length()
        except BadRequestError as error:
            self.send_error(HTTPStatus.BAD_REQUEST, str(error))
            return False
        if length is not None and length > API_GATEWAY_PAYLOAD_LIMIT:
            self._too_long()
            return False
        return super().handle_expect_100()

    def _content_length(self) -> int | None:
        """The declared length; None for a chunked body. BadRequestError for any ambiguous framing."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if [value.strip().lower() for value in encodings] != ["chunked"]:
                raise BadRequestError(f"unsupported Transfer-Encoding {', '.join(encodings)!r}")
            if lengths:
                raise BadRequestError("both Transfer-Encoding and Content-Length")
            return None
        if not lengths:
            return 0
        values = {value.strip() for value in lengths}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise BadRequestError(f"Content-Length must be one non-negative integer, got {', '.join(lengths)!r}")
        return int(next(iter(values)))

    def _too_long(self) -> None:
        self.close_connection = True
        self._send(REQUEST_TOO_LONG.response(), RequestIds.new(), time.monotonic())

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise ClientGoneError
        return data

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_LINE)
            if not line:
                raise ClientGoneError
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BadRequestError(f"malformed chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self.rfile.readline(_LINE)
                    if not trailer:
                        raise ClientGoneError
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(chunks)
            total += size
            if total > API_GATEWAY_PAYLOAD_LIMIT:
                self._too_long()
                return None
            chunks.append(self._read_exactly(size))
            if self.rfile.readline(_LINE) not in (b"\r\n", b"\n"):
                raise BadRequestError("a chunk is not followed by CRLF")

    def _read_body(self) -> bytes | None:
        """The request body; None if it was answered already (above API Gateway's limit)."""
        length = self._content_length()
        if length is None:
            return self._read_chunked()
        if length > API_GATEWAY_PAYLOAD_LIMIT:
            self._too_long()
            return None
        return self._read_exactly(length) if length else b""

    def _serve(self) -> None:
        received = time.monotonic()
        try:
            body = self._read_body()
        except BadRequestError as error:
            self.send_error(HTTPStatus.BAD_REQUEST, str(error))
            return
        except ClientGoneError:
            self.close_connection = True
            self.server.gateway.console.info(
                f'{self.client_address[0]} "{self.requestline}": the client closed the connection before '
                "sending its whole body; dropped (not invoked)"
            )
            return
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
        if self.server.draining:
            self.close_connection = True
        self._send(response, ids, received)

    def _send(self, response: HttpResponse, ids: RequestIds, received: float) -> None:
        lines = [f"{self.protocol_version} {response.status} {_reason(response.status)}"]
        lines += [f"{name}: {value}" for name, value in response.headers if name.lower() not in _HOP_HEADERS]
        lines += [f"Date: {_http_date(int(time.time()))}", f"Content-Length: {len(response.body)}"]
        lines += [f"{name}: {value}" for name, value in self.server.gateway.id_headers(ids)]
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)
        elapsed = (time.monotonic() - received) * 1000
        self.server.gateway.console.access(
            f'{self.client_address[0]} "{self.requestline}" {response.status} {len(response.body)} {elapsed:.1f} ms'
        )

    def log_message(self, format: str, *args: Any) -> None:
        self.server.gateway.console.debug(format % args)


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._serve)


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    """The Date header's value, formatted once per second."""
    return formatdate(second, usegmt=True)


@functools.cache
def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _json_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class GatewayServer(ThreadingHTTPServer, Generic[FrontendT]):
    """One thread per connection, at most `max_connections` at once; keep-alive connections idle for
    `idle_timeout` seconds are closed; `drain` stops it without cutting requests short."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        gateway_factory: Callable[[int], FrontendT],
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        listen: bool = True,
    ) -> None:
        """`listen=False`: a server that never binds its address (nothing of it is served)."""
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.draining = False
        self._connections: set[socket.socket] = set()
        self._idle: set[socket.socket] = set()
        self._in_flight = 0
        self._serving = False
        self._cond = threading.Condition()
        super().__init__((host, port), _Handler, bind_and_activate=listen)
        self.gateway: FrontendT = gateway_factory(self.server_address[1])

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    # Connections ------------------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._cond:
            admitted = len(self._connections) < self.max_connections and not self.draining
            if admitted:
                self._connections.add(request)
        if not admitted:
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def _refuse(self, connection: socket.socket) -> None:
        response = SERVICE_UNAVAILABLE.response()
        head = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        head += [f"Content-Length: {len(response.body)}", "Connection: close"]
        with contextlib.suppress(OSError):
            connection.settimeout(1.0)
            connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        self.shutdown_request(connection)

    def close_request(self, request: Any) -> None:
        with self._cond:
            self._connections.discard(request)
            self._idle.discard(request)
        super().close_request(request)

    def connection_idle(self, connection: socket.socket) -> None:
        with self._cond:
            self._idle.add(connection)

    def request_started(self, connection: socket.socket) -> bool:
        """A request line arrived; False while draining: refuse it."""
        with self._cond:
            self._idle.discard(connection)
            self._in_flight += 1
            return not self.draining

    def request_finished(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    # Stopping ---------------------------------------------------------------------------------------

    def drain(self, grace: float, interrupted: threading.Event | None = None) -> int:
        """Stops accepting, closes idle connections, refuses new requests, and waits up to `grace` seconds
        for those in flight; the number still in flight then."""
        with self._cond:
            self.draining = True
            idle = list(self._idle)
        if self._serving:
            self.shutdown()  # no more accepts
        self.socket.close()
        for connection in idle:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return self.wait_answered(grace, interrupted)

    def wait_answered(self, timeout: float, interrupted: threading.Event | None = None) -> int:
        """Waits up to `timeout` seconds for the requests in flight to be answered; how many are left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight > 0 and not (interrupted is not None and interrupted.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
            return self._in_flight

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return  # the client went away; nothing to answer
        super().handle_error(request, client_address)
