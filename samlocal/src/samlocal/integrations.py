"""Integrations that name no local function, answered as API Gateway answers them.

- MOCK: the request template's `statusCode` selects an integration response (its `selectionPattern` matched
  against the status, else `default`), whose `responseParameters` (`'literal'` or `method.request.*`
  values) become headers and whose `application/json` template becomes the body. This is how SAM's `Cors`
  and the usual hand-written CORS preflight answer OPTIONS.
- AWS_PROXY naming a function that is not in the template: 500 `{"message": "Internal server error"}`, as API
  Gateway answers when it cannot invoke the function.
- HTTP_PROXY: the request is forwarded to the integration's URI (`{name}` filled from the path parameters
  its `requestParameters` map, else the same-named ones; the query string and headers passed through) and
  the backend's answer returned as is; an unreachable backend answers 500, a slow one 504, as API Gateway.
- HTTP (with mapping templates) and AWS service integrations are not run locally: 500, listed at start-up.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from samlocal.events import HttpRequest, HttpResponse
from samlocal.gateway_responses import ErrorContext, header_value, render

_STATUS = re.compile(r'"?statusCode"?\s*:\s*"?(\d{3})')


@dataclass(frozen=True)
class Integration:
    kind: str  # MOCK, HTTP, HTTP_PROXY, AWS, AWS_PROXY
    uri: str | None
    spec: Mapping[str, Any]  # the x-amazon-apigateway-integration

    @classmethod
    def read(cls, spec: Mapping[str, Any]) -> Integration:
        uri = spec.get("uri")
        return cls(str(spec.get("type", "")).upper(), str(uri) if uri is not None else None, spec)

    @property
    def answered_locally(self) -> bool:
        return self.kind in ("MOCK", "HTTP_PROXY")

    def describe(self) -> str:
        if self.kind == "MOCK":
            return "MOCK integration (CORS preflight)" if self._is_preflight() else "MOCK integration"
        if self.kind == "AWS_PROXY":
            return f"{self.uri} (not in the template: answers 500)"
        if self.kind == "HTTP_PROXY":
            return f"HTTP_PROXY integration to {self.uri}"
        return f"{self.kind} integration {self.uri or ''} (not run locally: answers 500)".replace("  ", " ")

    def _is_preflight(self) -> bool:
        configured = self.spec.get("responses") or {}
        return isinstance(configured, Mapping) and any(
            "method.response.header.Access-Control-Allow-Origin" in (response.get("responseParameters") or {})
            for response in configured.values()
            if isinstance(response, Mapping)
        )


def mock_status(integration: Integration, content_type: str | None) -> int:
    """The status code a MOCK integration's request template selects (200 without one)."""
    templates = integration.spec.get("requestTemplates") or {}
    if not isinstance(templates, Mapping) or not templates:
        return 200
    wanted = (content_type or "application/json").split(";", 1)[0].strip().lower()
    template = templates.get(wanted, templates.get("application/json", next(iter(templates.values()))))
    found = _STATUS.search(str(template))
    return int(found.group(1)) if found else 200


def mock_response(integration: Integration, content_type: str | None, error: ErrorContext) -> HttpResponse | None:
    """The MOCK integration's answer; None when no integration response matches (API Gateway answers 500)."""
    status = mock_status(integration, content_type)
    configured = integration.spec.get("responses") or {}
    chosen: Mapping[str, Any] | None = None
    default: Mapping[str, Any] | None = None
    for pattern, response in configured.items() if isinstance(configured, Mapping) else ():
        if not isinstance(response, Mapping):
            continue
        if pattern == "default":
            default = response
        elif re.fullmatch(str(pattern), str(status)):
            chosen = response
            break
    chosen = chosen or default
    if chosen is None:
        return HttpResponse(status, [("Content-Type", "application/json")], b"") if not configured else None
    headers: list[tuple[str, str]] = []
    for name, expression in (chosen.get("responseParameters") or {}).items():
        if not str(name).startswith("method.response.header."):
            continue
        value = header_value(str(expression), error)
        if value is not None:
            headers.append((str(name).removeprefix("method.response.header."), value))
    templates = chosen.get("responseTemplates") or {}
    template = templates.get("application/json", next(iter(templates.values()), "")) if templates else ""
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    try:
        answer_status = int(chosen.get("statusCode", status))
    except (TypeError, ValueError):
        answer_status = status
    return HttpResponse(answer_status, headers, render(str(template), error).encode())


class BackendTimeoutError(Exception):
    """The HTTP backend did not answer within the integration timeout."""


class BackendUnreachableError(Exception):
    """The HTTP backend could not be reached or answered with something that is not HTTP."""


# Headers that belong to one connection, never forwarded.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}
)
_PARAMETER = re.compile(r"\{([^}]+)\}")


def backend_url(integration: Integration, path_parameters: Mapping[str, str], query: str) -> str:
    """The integration URI with its `{name}` parts filled in, and the request's query string."""
    mapped = {
        key.removeprefix("integration.request.path."): str(value).removeprefix("method.request.path.")
        for key, value in (integration.spec.get("requestParameters") or {}).items()
        if key.startswith("integration.request.path.") and str(value).startswith("method.request.path.")
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).removesuffix("+")
        value = path_parameters.get(mapped.get(name, name), "")
        return quote(value, safe="/%") if value else ""

    url = _PARAMETER.sub(fill, integration.uri or "")
    if query:
        url += ("&" if "?" in url else "?") + query
    return url


def forward(
    integration: Integration, request: HttpRequest, path_parameters: Mapping[str, str], timeout: float
) -> HttpResponse:
    """The backend's answer to the forwarded request; raises BackendTimeoutError or BackendUnreachableError."""
    url = urlsplit(backend_url(integration, path_parameters, request.query))
    if url.scheme not in ("http", "https") or not url.hostname:
        raise BackendUnreachableError(f"{integration.uri!r} is not an http(s) URL")
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(url.hostname, url.port, timeout=max(timeout, 0.001))
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        connection.putrequest(request.method, target, skip_accept_encoding=True)
        for name, value in request.headers:
            if name.lower() not in _HOP_HEADERS and name.lower() != "content-length":
                connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(request.body)))
        connection.endheaders(request.body)
        answer = connection.getresponse()
        data = answer.read()
        kept = [(name, value) for name, value in answer.getheaders() if name.lower() not in _HOP_HEADERS]
        return HttpResponse(answer.status, kept, data)
    except TimeoutError as error:
        raise BackendTimeoutError(str(error)) from error
    except (OSError, http.client.HTTPException) as error:
        raise BackendUnreachableError(str(error)) from error
    finally:
        connection.close()
