"""A route's Lambda proxy integration: the event for the API's kind and payload format, and the response back.

REST APIs send the v1 event and read the result with their binary media types (events.py); HTTP APIs send
the payload format of the route's integration, 2.0 or 1.0, and read the result by HTTP API rules
(http_events.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from samlocal.events import HttpRequest, HttpResponse, RequestIds, build_event, proxy_response
from samlocal.http_events import build_http_event, http_proxy_response
from samlocal.template import HTTP, Api, Route


def integration_event(
    request: HttpRequest,
    *,
    route: Route,
    api: Api,
    path_parameters: Mapping[str, str],
    ids: RequestIds,
    port: int,
    scheme: str = "http",
) -> dict[str, Any]:
    """The event the route's function receives for this request."""
    build = build_http_event if api.kind == HTTP else build_event
    return build(request, route=route, api=api, path_parameters=path_parameters, ids=ids, port=port, scheme=scheme)


def integration_response(payload: bytes, request: HttpRequest, *, route: Route, api: Api) -> HttpResponse:
    """The HTTP response for the function's result; raises MalformedProxyResponseError as API Gateway would."""
    if api.kind == HTTP:
        return http_proxy_response(payload, route.payload_format_version)
    return proxy_response(payload, request.header("Accept"), api.binary_media_types)
