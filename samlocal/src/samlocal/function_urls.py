"""Lambda Function URLs: every method and path of a host of its own goes to one function, as Lambda serves them.

- The event is payload format 2.0 as Lambda builds it for a Function URL: `routeKey` and `stage` `$default`,
  `requestContext.apiId` and `domainPrefix` the url-id, `domainName` `<url-id>.lambda-url.<region>.on.aws`,
  `accountId` `anonymous` (AuthType NONE) or the account (AWS_IAM, with `authorizer.iam`), `requestId` the
  invocation's request id; headers, cookies, query parameters and body as for HTTP APIs (samlocal.http_events):
  a body is base64-encoded unless its Content-Type is text-like.
- The result is read as an HTTP API payload 2.0 result: a value without `statusCode` is answered 200 JSON,
  `cookies` become Set-Cookie headers, `isBase64Encoded` is honoured.
- Lambda's own answers: 403 `{"Message":"Forbidden"}` for an AWS_IAM URL called without a SigV4 signature
  (an `Authorization: AWS4-HMAC-SHA256 Credential=...` header or `X-Amz-Credential` in the query; signatures
  cannot be verified offline, so any is accepted; `--disable-authorizer` accepts unsigned ones too); 413
  for an event above the 6 MB request limit; 429 `{"Message":"Rate Exceeded."}` when every environment the
  function may run is busy; 502 `Internal Server Error` for a function error, a crash, its Timeout (up to 15
  minutes: no gateway cuts it shorter), a response above 6 MB, or a result that is not a valid response.
- `Cors`: a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 200 by the service,
  and responses to an allowed Origin get its CORS headers in place of the function's (samlocal.cors).
- `InvokeMode: RESPONSE_STREAM` is served buffered (said at start-up by samlocal.template).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from samlocal.console import Console
from samlocal.cors import HttpCors, http_cors, is_preflight
from samlocal.events import (
    GatewayError,
    HttpRequest,
    HttpResponse,
    MalformedProxyResponseError,
    RequestIds,
)
from samlocal.gateway import GatewayServer, function_payload, shorten
from samlocal.http_events import DEFAULT_ROUTE, DEFAULT_STAGE, PAYLOAD_V2, build_http_event, http_proxy_response
from samlocal.intrinsics import ACCOUNT_ID
from samlocal.template import ANY_METHOD, HTTP, Api, Function, FunctionUrl, Route, Stack
from samlocal.workers import (
    REQUEST_PAYLOAD_LIMIT,
    FunctionPool,
    Invocation,
    PoolClosedError,
    ThrottledError,
)

AWS_IAM = "AWS_IAM"
FORBIDDEN = GatewayError(403, b'{"Message":"Forbidden"}')
THROTTLED = GatewayError(429, b'{"Message":"Rate Exceeded."}')
_TOO_LARGE = f"Request must be smaller than {REQUEST_PAYLOAD_LIMIT} bytes for the InvokeFunction operation"
REQUEST_TOO_LARGE = GatewayError(413, f'{{"Message":"{_TOO_LARGE}"}}'.encode())
FUNCTION_ERROR = GatewayError(502, b"Internal Server Error")
PREFLIGHT_STATUS = 200
# Beyond the function's Timeout, how long to wait for the environment to report it (it is killed by then).
_TIMEOUT_MARGIN = 5.0
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV4 = "AWS4-HMAC-SHA256"


def url_id(logical_id: str) -> str:
    """A stable url-id (32 lower-case characters, as Lambda's) for a Function URL's logical id."""
    return hashlib.sha256(f"function-url:{logical_id}".encode()).hexdigest()[:32]


def domain_name(identifier: str, region: str) -> str:
    return f"{identifier}.lambda-url.{region}.on.aws"


def signing_access_key(request: HttpRequest) -> str | None:
    """The access key of a SigV4 signature (Authorization header or presigned query), None when unsigned."""
    authorization = request.header("Authorization") or ""
    if authorization.startswith(_SIGV4 + " "):
        match = _CREDENTIAL.search(authorization)
        return match.group(1) if match else None
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    if query.get("X-Amz-Algorithm") == _SIGV4 and "/" in query.get("X-Amz-Credential", ""):
        return query["X-Amz-Credential"].split("/", 1)[0] or None
    return None


def iam_identity(access_key: str) -> dict[str, Any]:
    """`requestContext.authorizer.iam` for a signed request: the access key as sent, the local account, and
    a user id derived from the key (the caller's identity cannot be looked up offline)."""
    user_id = "AIDA" + hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()
    return {
        "accessKey": access_key,
        "accountId": ACCOUNT_ID,
        "callerId": user_id,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/{access_key}",
        "userId": user_id,
    }


class FunctionUrlFrontend:
    """One Function URL: its requests become the function's invocations, its results HTTP responses."""

    def __init__(
        self,
        function_url: FunctionUrl,
        function: Function,
        pool: FunctionPool,
        console: Console,
        *,
        port: int,
        region: str,
        disable_authorizer: bool = False,
    ) -> None:
        self.function_url = function_url
        self.disable_authorizer = disable_authorizer
        self.function = function
        self.pool = pool
        self.console = console
        self.port = port
        self.url_id = url_id(function_url.logical_id)
        self.domain_name = domain_name(self.url_id, region)
        self.cors: HttpCors | None = http_cors(function_url.cors) if function_url.cors else None
        # The event builder's view of a Function URL: one `$default` route on a `$default` stage.
        self._api = Api(function_url.logical_id, DEFAULT_STAGE, kind=HTTP)
        self._route = Route(
            ANY_METHOD, DEFAULT_ROUTE, function.logical_id, function_url.logical_id, payload_format_version=PAYLOAD_V2
        )

    def id_headers(self, ids: RequestIds) -> list[tuple[str, str]]:
        """The ids Lambda adds to every Function URL response (no API Gateway id)."""
        return [("x-amzn-RequestId", ids.request_id), ("X-Amzn-Trace-Id", f"{ids.trace_id};Sampled=0")]

    def handle(self, request: HttpRequest, received: float) -> tuple[HttpResponse, RequestIds]:
        ids = RequestIds.new()
        origin = request.header("Origin")
        if self.cors is not None and is_preflight(
            request.method, origin, request.header("Access-Control-Request-Method")
        ):
            return self.cors.preflight(origin, PREFLIGHT_STATUS), ids
        response = self._invoke(request, ids)
        if self.cors is not None:
            response = self.cors.decorate(response, origin)
        return response, ids

    def event(self, request: HttpRequest, ids: RequestIds, access_key: str | None = None) -> dict[str, Any]:
        """The Function URL event of a request (AWS_IAM: signed with `access_key`)."""
        event = build_http_event(
            request,
            route=self._route,
            api=self._api,
            path_parameters={},
            ids=ids,
            port=self.port,
            domain_name=self.domain_name,
        )
        context = event["requestContext"]
        context["apiId"] = self.url_id
        context["requestId"] = ids.request_id
        if access_key is not None:
            context["accountId"] = ACCOUNT_ID
            context["authorizer"] = {"iam": iam_identity(access_key)}
        return event

    def _invoke(self, request: HttpRequest, ids: RequestIds) -> HttpResponse:
        function_id = self.function.logical_id
        access_key = None
        if self.function_url.auth_type == AWS_IAM:
            access_key = signing_access_key(request)
            if access_key is None and not self.disable_authorizer:
                self.console.info(
                    f"{request.method} {request.path}: 403: {self.function_url.logical_id}'s URL has AuthType "
                    "AWS_IAM and the request is not signed (SigV4)"
                )
                return FORBIDDEN.response()
        payload = function_payload(self.event(request, ids, access_key), function_id, self.console)
        if payload is None:
            return REQUEST_TOO_LARGE.response()
        invocation = Invocation(ids.request_id, payload, self.function.timeout, ids.trace_id)
        try:
            self.pool.dispatch(invocation)
        except ThrottledError as error:
            self.console.info(f"{error}: the Function URL answers 429 (raise --max-concurrency to run more at once)")
            return THROTTLED.response()
        except PoolClosedError:
            return FUNCTION_ERROR.response()
        except OSError as error:
            self.console.info(f"{function_id}: cannot start an execution environment: {error}")
            return FUNCTION_ERROR.response()
        outcome = invocation.wait(self.function.timeout + _TIMEOUT_MARGIN)
        if outcome is None:
            self.console.info(f"{function_id}: no answer within its {self.function.timeout:g} s timeout")
            return FUNCTION_ERROR.response()
        if not outcome.ok:
            self.console.info(f"{function_id}: function error {outcome.error_type}: {shorten(outcome.payload)}")
            return FUNCTION_ERROR.response()
        try:
            return http_proxy_response(outcome.payload, PAYLOAD_V2)
        except MalformedProxyResponseError as error:
            self.console.info(f"{function_id}: the result is not a valid Function URL response: {error}")
            return FUNCTION_ERROR.response()


def describe(function_url: FunctionUrl, url: str) -> str:
    """The start-up line of a Function URL."""
    notes = [f"AuthType {function_url.auth_type}"]
    if function_url.cors:
        notes.append("CORS")
    if function_url.invoke_mode != "BUFFERED":
        notes.append(f"{function_url.invoke_mode} served buffered")
    if function_url.qualifier:
        notes.append(f"qualifier {function_url.qualifier} not applied")
    name = function_url.function_id
    if function_url.logical_id != function_url.function_id:
        name = f"{function_url.function_id} ({function_url.logical_id})"
    return f"  Function URL for {name}: {url}/  [{', '.join(notes)}]"


class FunctionUrlPortError(Exception):
    """A Function URL's port cannot be listened on."""


class FunctionUrlServers:
    """One HTTP server per Function URL of the stack, on `base_port`, `base_port + 1`... (0: free ports), or on
    the first free ports of `port_range`; `only`: serve the URLs of this function only (logical id or name)."""

    def __init__(
        self,
        host: str,
        base_port: int,
        console: Console,
        *,
        region: str,
        idle_timeout: float,
        max_connections: int,
        port_range: range | None = None,
        only: str | None = None,
        disable_authorizer: bool = False,
    ) -> None:
        self.host = host
        self.disable_authorizer = disable_authorizer
        self.port_range = port_range
        self.only = only
        self.base_port = base_port
        self.console = console
        self.region = region
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.servers: dict[str, GatewayServer[FunctionUrlFrontend]] = {}
        self._threads: list[threading.Thread] = []
        self._started = False

    def apply(self, stack: Stack, pools: Mapping[str, FunctionPool]) -> list[str]:
        """Serves the stack's Function URLs with these pools: new servers for new URLs, new frontends for the
        others (requests in flight finish as they began), removed URLs stopped; what changed."""
        changes: list[str] = []
        served = self.served(stack)
        for logical_id, server in list(self.servers.items()):
            if logical_id not in served:
                del self.servers[logical_id]
                threading.Thread(target=self._stop, args=(server,), daemon=True).start()
                changes.append(f"- Function URL {logical_id}")
        for logical_id, function_url in served.items():
            frontend = functools.partial(
                self._frontend, function_url, stack.functions[function_url.function_id], pools[function_url.function_id]
            )
            existing = self.servers.get(logical_id)
            if existing is not None:
                previous = existing.gateway.function_url
                existing.gateway = frontend(existing.server_address[1])
                if previous != function_url:
                    changes.append(
                        f"~ Function URL {logical_id}: {describe(function_url, self.url(logical_id)).strip()}"
                    )
                continue
            created = self._listen(logical_id, frontend)
            self.servers[logical_id] = created
            if self._started:
                self._serve(created)
                changes.append(f"+ Function URL {logical_id}: {self.url(logical_id)}/")
        return changes

    def served(self, stack: Stack) -> dict[str, FunctionUrl]:
        """The stack's Function URLs this serves."""
        if self.only is None:
            return dict(stack.function_urls)
        wanted = {
            logical_id for logical_id, function in stack.functions.items() if self.only in (logical_id, function.name)
        }
        return {key: url for key, url in stack.function_urls.items() if url.function_id in wanted}

    def _frontend(
        self, function_url: FunctionUrl, function: Function, pool: FunctionPool, port: int
    ) -> FunctionUrlFrontend:
        return FunctionUrlFrontend(
            function_url,
            function,
            pool,
            self.console,
            port=port,
            region=self.region,
            disable_authorizer=self.disable_authorizer,
        )

    def _listen(
        self, logical_id: str, frontend: Callable[[int], FunctionUrlFrontend]
    ) -> GatewayServer[FunctionUrlFrontend]:
        taken = {server.server_address[1] for server in self.servers.values()}
        if self.port_range is not None:
            for candidate in self.port_range:
                if candidate in taken:
                    continue
                try:
                    return GatewayServer(
                        self.host,
                        candidate,
                        frontend,
                        idle_timeout=self.idle_timeout,
                        max_connections=self.max_connections,
                    )
                except OSError:
                    continue  # taken by another program: the next one
            first, last = self.port_range.start, self.port_range.stop - 1
            raise FunctionUrlPortError(
                f"no free port in --port-range {first}-{last} for the Function URL of {logical_id}"
            )
        port = 0 if self.base_port == 0 else self.base_port + len(self.servers)
        while port and port in taken:
            port += 1
        try:
            return GatewayServer(
                self.host, port, frontend, idle_timeout=self.idle_timeout, max_connections=self.max_connections
            )
        except OSError as error:
            raise FunctionUrlPortError(
                f"cannot listen on {self.host}:{port} for the Function URL of {logical_id}: {error.strerror} "
                "(choose other ports with --function-url-port, or 0 for free ones)"
            ) from error

    def url(self, logical_id: str) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.servers[logical_id].server_address[1]}"

    def start(self) -> None:
        self._started = True
        for server in self.servers.values():
            self._serve(server)

    def _serve(self, server: GatewayServer[FunctionUrlFrontend]) -> None:
        thread = threading.Thread(target=server.serve_forever, name="function-url", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _stop(self, server: GatewayServer[FunctionUrlFrontend]) -> None:
        server.drain(server.gateway.function.timeout + _TIMEOUT_MARGIN)
        server.server_close()

    def warnings(self) -> list[str]:
        signed = sorted(
            logical_id
            for logical_id, server in self.servers.items()
            if server.gateway.function_url.auth_type == AWS_IAM
        )
        if not signed:
            return []
        if self.disable_authorizer:
            return [f"--disable-authorizer: the AWS_IAM Function URLs ({', '.join(signed)}) accept unsigned requests"]
        return [
            f"Function URLs with AuthType AWS_IAM ({', '.join(signed)}): a request without a SigV4 signature "
            "answers 403; signatures are not verified offline, any signed request is accepted"
        ]

    def describe(self) -> list[str]:
        return [
            describe(server.gateway.function_url, self.url(logical_id)) for logical_id, server in self.servers.items()
        ]

    @property
    def in_flight(self) -> int:
        return sum(server.in_flight for server in self.servers.values())

    def drain(self, grace: float, interrupted: threading.Event | None = None) -> int:
        """Stops accepting on every URL; requests in flight get up to `grace` seconds; how many are left."""
        deadline = time.monotonic() + grace
        return sum(server.drain(max(0.0, deadline - time.monotonic()), interrupted) for server in self.servers.values())

    def wait_answered(self, timeout: float) -> None:
        for server in self.servers.values():
            server.wait_answered(timeout)

    def close(self) -> None:
        for server in self.servers.values():
            server.server_close()
