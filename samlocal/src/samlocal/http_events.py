"""API Gateway HTTP APIs (and Lambda Function URLs): the v2 event a request becomes, and the response a result becomes.

Payload format 2.0 (HTTP APIs' default, and Function URLs'): `version`, `routeKey`, `rawPath`, `rawQueryString`,
`cookies` (taken out of the Cookie headers), header names in lower case with repeated values joined by commas,
query parameters joined by commas, `requestContext.http` and no `multiValue*` maps; absent parts (no cookies, no
query, no body, no path parameters) are left out, as API Gateway does. Payload format 1.0 is the REST event with
`version: "1.0"`.

HTTP APIs have no binary media types: a request body reaches the function base64-encoded unless its Content-Type
is text-like (text/*, JSON, XML, JavaScript, form-urlencoded) and it has no Content-Encoding; a result's
`isBase64Encoded` is always honoured. A 2.0 result without `statusCode` (a plain object, list, string or
number) is answered 200 as JSON; `cookies` become Set-Cookie headers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from samlocal.events import (
    HttpRequest,
    HttpResponse,
    MalformedProxyResponseError,
    RequestIds,
    api_id,
    build_event,
    media_type,
    proxy_response,
    proxy_status,
    request_time,
)
from samlocal.template import Api, Route

PAYLOAD_V1 = "1.0"
PAYLOAD_V2 = "2.0"
DEFAULT_ROUTE = "$default"
DEFAULT_STAGE = "$default"
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/yaml",
    }
)
# Headers API Gateway sets itself on the way to the integration.
_GATEWAY_HEADERS = frozenset({"x-amzn-trace-id", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"})


def is_text_like(content_type: str | None) -> bool:
    """Whether an HTTP API passes a body of this Content-Type as text (else it is base64-encoded)."""
    kind = media_type(content_type)
    if not kind:
        return False
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))


def route_key(route: Route) -> str:
    if route.resource_path == DEFAULT_ROUTE:
        return DEFAULT_ROUTE
    return f"{route.method} {route.resource_path}"


def _body(request: HttpRequest) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    if is_text_like(request.header("Content-Type")) and not request.header("Content-Encoding"):
        return request.body.decode("utf-8", errors="replace"), False
    return base64.b64encode(request.body).decode("ascii"), True


def build_http_event(
    request: HttpRequest,
    *,
    route: Route,
    api: Api,
    path_parameters: Mapping[str, str],
    ids: RequestIds,
    port: int,
    scheme: str = "http",
    domain_name: str | None = None,
) -> dict[str, Any]:
    """The event of an HTTP API route, in the route's payload format (2.0 unless it says 1.0)."""
    if route.payload_format_version == PAYLOAD_V1:
        v1 = build_event(request, route=route, api=api, path_parameters=path_parameters, ids=ids, port=port)
        body, is_base64 = _body(request)
        v1["body"], v1["isBase64Encoded"] = body, is_base64
        v1["requestContext"]["path"] = request.path
        v1["requestContext"]["resourceId"] = route_key(route)
        v1["requestContext"]["routeKey"] = route_key(route)
        return {"version": PAYLOAD_V1, **v1}

    cookies: list[str] = []
    headers: dict[str, str] = {}
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
        elif lower not in _GATEWAY_HEADERS:
            headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    forwarded_for = request.header("X-Forwarded-For")
    headers["x-amzn-trace-id"] = ids.trace_id
    headers["x-forwarded-for"] = f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip
    headers["x-forwarded-port"] = str(port)
    headers["x-forwarded-proto"] = scheme

    query: dict[str, str] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value

    identifier = api_id(api.logical_id)
    host = domain_name or request.header("Host") or "localhost"
    key = route_key(route)
    event: dict[str, Any] = {"version": PAYLOAD_V2, "routeKey": key, "rawPath": request.path}
    event["rawQueryString"] = request.query
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "anonymous" if domain_name else "123456789012",
        "apiId": identifier,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": request.path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": request.header("User-Agent") or "",
        },
        "requestId": ids.extended_request_id,
        "routeKey": key,
        "stage": api.stage_name,
        "time": request_time(ids.epoch),
        "timeEpoch": int(ids.epoch * 1000),
    }
    body, is_base64 = _body(request)
    if body is not None:
        event["body"] = body
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = is_base64
    if api.stage_variables:
        event["stageVariables"] = dict(api.stage_variables)
    return event


def http_proxy_response(payload: bytes, payload_format_version: str) -> HttpResponse:
    """The HTTP response for a function's result behind an HTTP API; raises MalformedProxyResponseError."""
    if payload_format_version == PAYLOAD_V1:
        # Format 1.0 is read as a REST proxy result, except that isBase64Encoded is always honoured.
        return proxy_response(payload, "*/*", ["*/*"])
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise MalformedProxyResponseError(f"the result is not JSON: {error}") from error
    if not isinstance(document, dict) or "statusCode" not in document:
        # API Gateway infers the response: 200, JSON, the result as the body (a string result as it is).
        text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
        return HttpResponse(200, [("Content-Type", "application/json")], text.encode("utf-8"))
    status_code = proxy_status(document)
    headers: list[tuple[str, str]] = []
    single = document.get("headers") or {}
    multi = document.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponseError("headers must be an object")
    for name, values in multi.items():
        if isinstance(values, list):
            headers += [(str(name), _text(value)) for value in values]
    for name, value in single.items():
        if (str(name), _text(value)) not in headers:
            headers.append((str(name), _text(value)))
    cookies = document.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedProxyResponseError(f"cookies must be a list, got {cookies!r}")
    headers += [("Set-Cookie", _text(cookie)) for cookie in cookies]
    body = document.get("body")
    if body is not None and not isinstance(body, str):
        body = json.dumps(body, separators=(",", ":"))
    data = (body or "").encode("utf-8")
    encoded = document.get("isBase64Encoded")
    if (encoded is True or str(encoded).lower() == "true") and body:
        try:
            data = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError) as error:
            raise MalformedProxyResponseError(f"body is not valid base64: {error}") from error
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status_code, headers, data)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResponseError(f"header values and cookies must be strings, got {value!r}")
