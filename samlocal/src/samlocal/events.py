"""API Gateway REST proxy integration: the event a request becomes, and the HTTP response a result becomes.

The event has the shape of the REST API (payload 1.0) proxy event: `headers` and `queryStringParameters`
keep the last value of a repeated name, the `multiValue*` maps keep them all, empty maps are `null`, the
body is base64-encoded (`isBase64Encoded: true`) when the request Content-Type matches one of the API's
binary media types (wildcards allowed), and `path`/`pathParameters` stay percent-encoded while query
parameters are decoded. A proxy result with `isBase64Encoded: true` is answered as binary only when the
request's first Accept media type matches a binary media type; otherwise the client receives the base64
text, as API Gateway does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from samlocal.intrinsics import ACCOUNT_ID
from samlocal.template import Api, Route

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RESPONSE_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "base64Encoded"})


class MalformedProxyResponseError(Exception):
    """The function's result is not a valid proxy response: API Gateway answers 502."""


def media_type(content_type: str | None) -> str:
    """`image/jpeg; q=0.9` -> `image/jpeg` (lower case)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def matches_media_type(value: str | None, patterns: Sequence[str]) -> bool:
    """Whether a media type matches one of the patterns (`image/png`, `image/*`, `*/*`)."""
    kind = media_type(value)
    if not kind:
        return False
    main, _, sub = kind.partition("/")
    for pattern in patterns:
        pattern_main, _, pattern_sub = pattern.strip().lower().partition("/")
        if pattern_main in ("*", main) and pattern_sub in ("*", sub):
            return True
    return False


def first_accept(accept: str | None) -> str | None:
    """API Gateway decides binary responses on the first media type of the Accept header only."""
    if not accept:
        return None
    return accept.split(",", 1)[0]


def request_time(epoch: float) -> str:
    moment = time.gmtime(epoch)
    return (
        f"{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
        f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000"
    )


def random_uuid() -> str:
    """The text of a random (version 4) UUID, as `str(uuid.uuid4())` spells it, at a third of its cost: two are
    made for every request."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def trace_id(epoch: float) -> str:
    return f"Root=1-{int(epoch):08x}-{os.urandom(12).hex()}"


@functools.cache
def api_id(logical_id: str) -> str:
    """A stable, API-Gateway-looking id (10 lower-case characters) for the API's logical id."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:10]


@functools.cache
def resource_id(resource_path: str) -> str:
    return hashlib.sha256(resource_path.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # as sent, percent-encoded, without the query string
    query: str  # the raw query string, without "?"
    headers: Sequence[tuple[str, str]]  # in order, names as sent, repeated names kept
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The last value of the header `name` (any case)."""
        return self._by_name.get(name.lower())

    @functools.cached_property
    def _by_name(self) -> dict[str, str]:
        return {key.lower(): value for key, value in self.headers}


def group_values(
    pairs: Iterable[tuple[str, str]], case_insensitive: bool
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The last value of each name, and every value of each name (the first spelling of a name is kept)."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if case_insensitive else name
        canonical = spelling.setdefault(key, name)
        single[canonical] = value
        multi.setdefault(canonical, []).append(value)
    return single, multi


@dataclass(frozen=True)
class RequestIds:
    request_id: str
    extended_request_id: str
    trace_id: str
    epoch: float

    @classmethod
    def new(cls) -> RequestIds:
        epoch = time.time()
        extended = base64.b64encode(os.urandom(9)).decode().replace("/", "A").replace("+", "B")[:11] + "="
        return cls(random_uuid(), extended, trace_id(epoch), epoch)


def build_event(
    request: HttpRequest,
    *,
    route: Route,
    api: Api,
    path_parameters: Mapping[str, str],
    ids: RequestIds,
    port: int,
    scheme: str = "http",
) -> dict[str, Any]:
    """The REST API (payload 1.0) Lambda proxy event for one request, received on `port` over `scheme`."""
    forwarded_for = request.header("X-Forwarded-For")
    header_pairs = [pair for pair in request.headers if pair[0].lower() not in _GATEWAY_HEADERS]
    header_pairs += [
        ("X-Amzn-Trace-Id", ids.trace_id),
        ("X-Forwarded-For", f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip),
        ("X-Forwarded-Port", str(port)),
        ("X-Forwarded-Proto", scheme),
    ]
    headers, multi_headers = group_values(header_pairs, case_insensitive=True)
    query, multi_query = group_values(parse_qsl(request.query, keep_blank_values=True), case_insensitive=False)

    body: str | None = None
    is_base64 = False
    if request.body:
        if matches_media_type(request.header("Content-Type"), api.binary_media_types):
            body = base64.b64encode(request.body).decode("ascii")
            is_base64 = True
        else:
            body = request.body.decode("utf-8", errors="replace")

    host = request.header("Host") or "localhost"
    identifier = api_id(api.logical_id)
    context: dict[str, Any] = {
        "resourceId": resource_id(route.resource_path),
        "resourcePath": route.resource_path,
    }
    if route.operation_name is not None:
        context["operationName"] = route.operation_name
    context.update(
        {
            "httpMethod": request.method,
            "extendedRequestId": ids.extended_request_id,
            "requestTime": request_time(ids.epoch),
            "path": f"/{api.stage_name}{request.path}",
            "accountId": ACCOUNT_ID,
            "protocol": request.protocol,
            "stage": api.stage_name,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": int(ids.epoch * 1000),
            "requestId": ids.request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": request.header("User-Agent"),
                "user": None,
            },
            "domainName": host,
            "deploymentId": identifier[:6],
            "apiId": identifier,
        }
    )
    return {
        "resource": route.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": dict(api.stage_variables) or None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The event as JSON bytes. A base64 body (a large binary upload, often) is spliced in verbatim: its
    alphabet needs no JSON escaping, and scanning it for escapes was the gateway's costliest step."""
    body = event.get("body")
    if not event.get("isBase64Encoded") or not isinstance(body, str):
        return json.dumps(event, separators=(",", ":")).encode()
    rest = {key: value for key, value in event.items() if key not in ("body", "isBase64Encoded")}
    head = json.dumps(rest, separators=(",", ":")).encode()
    return b"".join((head[:-1], b',"body":"', body.encode("ascii"), b'","isBase64Encoded":true}'))


# Headers API Gateway sets itself on the way to the integration.
_GATEWAY_HEADERS = frozenset({"x-amzn-trace-id", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResponseError(f"header values must be strings, got {value!r}")


def _flag(document: Mapping[str, Any], name: str) -> bool | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise MalformedProxyResponseError(f"{name} must be a boolean, got {value!r}")


def proxy_status(document: Mapping[str, Any]) -> int:
    """A proxy result's statusCode (a number or a numeric string, 100-599); MalformedProxyResponseError if not."""
    status = document.get("statusCode")
    try:
        status_code = int(status) if not isinstance(status, bool) and status is not None else 0
    except (TypeError, ValueError):
        status_code = 0
    if not 100 <= status_code <= 599:
        raise MalformedProxyResponseError(f"statusCode must be an HTTP status, got {status!r}")
    return status_code


def proxy_response(payload: bytes, accept: str | None, binary_media_types: Sequence[str]) -> HttpResponse:
    """The HTTP response for a function's proxy result; raises MalformedProxyResponseError as API Gateway would."""
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise MalformedProxyResponseError(f"the result is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise MalformedProxyResponseError(f"the result must be a JSON object, got {type(document).__name__}")
    unknown = set(document) - _RESPONSE_KEYS
    if unknown:
        raise MalformedProxyResponseError(f"unknown keys in the result: {', '.join(sorted(unknown))}")

    status_code = proxy_status(document)

    headers: list[tuple[str, str]] = []
    multi = document.get("multiValueHeaders") or {}
    single = document.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise MalformedProxyResponseError("headers and multiValueHeaders must be objects")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponseError(f"multiValueHeaders[{name!r}] must be a list")
        headers += [(name, _header_value(value)) for value in values]
    for name, value in single.items():
        text = _header_value(value)
        if (name, text) not in headers:
            headers.append((name, text))

    body = document.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResponseError(f"body must be a string, got {type(body).__name__}")
    encoded = _flag(document, "base64Encoded")
    if encoded is None:
        encoded = _flag(document, "isBase64Encoded") or False
    data = (body or "").encode("utf-8")
    if encoded and body and matches_media_type(first_accept(accept), binary_media_types):
        try:
            data = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError) as error:
            raise MalformedProxyResponseError(f"body is not valid base64: {error}") from error
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status_code, headers, data)


@dataclass(frozen=True)
class GatewayError:
    """An answer API Gateway gives itself; bodies are byte for byte what it sends."""

    status: int
    body: bytes
    error_type: str | None = None

    def response(self) -> HttpResponse:
        headers = [("Content-Type", "application/json")]
        if self.error_type:
            headers.append(("x-amzn-ErrorType", self.error_type))
        return HttpResponse(self.status, headers, self.body)


FORBIDDEN = GatewayError(403, b'{"message":"Forbidden"}', "ForbiddenException")
MISSING_AUTHENTICATION_TOKEN = GatewayError(
    403, b'{"message":"Missing Authentication Token"}', "MissingAuthenticationTokenException"
)
INTERNAL_SERVER_ERROR = GatewayError(502, b'{"message": "Internal server error"}', "InternalServerErrorException")
ENDPOINT_TIMED_OUT = GatewayError(504, b'{"message": "Endpoint request timed out"}')
REQUEST_TOO_LONG = GatewayError(413, b'{"message":"Request Too Long"}')
NOT_FOUND = GatewayError(404, b'{"message":"Not Found"}')  # an HTTP API's answer when no route matches
