"""One set of routes for every way an HTTP request reaches the function.

API Gateway REST APIs and HTTP APIs with payload format 1.0 send the v1 proxy event; HTTP APIs with payload
format 2.0 send the v2 event (`version: "2.0"`, rawPath, cookies, joined headers); Lambda Function URLs send a
v2-shaped event from a `*.lambda-url.*` domain. Powertools has a resolver for each: the routes are declared once
on a `Router` and included in all three, and each event is resolved by the resolver of its shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    CORSConfig,
    LambdaFunctionUrlResolver,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_vision.parameters import bind_query_parameters

FUNCTION_URL_DOMAIN = ".lambda-url."


class EventShape(Enum):
    REST = "rest"  # payload format 1.0: REST APIs, HTTP APIs with PayloadFormatVersion 1.0
    HTTP = "http"  # payload format 2.0 from an HTTP API
    FUNCTION_URL = "function_url"  # payload format 2.0 from a Lambda Function URL


def event_shape(event: Mapping[str, Any]) -> EventShape:
    """Which kind of HTTP event this is, from the fields each kind always carries."""
    if event.get("version") != "2.0":
        return EventShape.REST
    context = event.get("requestContext")
    domain = context.get("domainName") if isinstance(context, Mapping) else None
    if isinstance(domain, str) and FUNCTION_URL_DOMAIN in domain:
        return EventShape.FUNCTION_URL
    return EventShape.HTTP


class ProxyResolvers:
    """The REST (v1), HTTP API (v2) and Function URL resolvers, each serving the same routers' routes.

    Routers are included on first use, so routes declared after this object is created are served too;
    a router of another module is added with `include(router)` before the first event.
    """

    def __init__(self, *routers: Router, cors: CORSConfig | None) -> None:
        self.routers = list(routers)
        self.cors = cors
        self._rest = APIGatewayRestResolver(cors=cors)
        self._http = APIGatewayHttpResolver(cors=cors)
        self._function_url = LambdaFunctionUrlResolver(cors=cors)
        self._by_shape: dict[EventShape, ApiGatewayResolver] = {
            EventShape.REST: self._rest,
            EventShape.HTTP: self._http,
            EventShape.FUNCTION_URL: self._function_url,
        }
        for resolver in self._by_shape.values():
            resolver.use([bind_query_parameters])  # the handlers' declared query parameters (lambda_vision.parameters)
        self._included = False

    def include(self, router: Router) -> None:
        if self._included:
            raise RuntimeError("routers are included before the first event is resolved")
        self.routers.append(router)

    def _include_routers(self) -> None:
        if self._included:
            return
        self._included = True
        for resolver in self._by_shape.values():
            for router in self.routers:
                resolver.include_router(router)

    def openapi(self, *, title: str, version: str, summary: str) -> dict[str, Any]:
        """The OpenAPI document of the routes; see lambda_vision.openapi."""
        from lambda_vision.openapi import document  # noqa: PLC0415 - not needed to serve requests

        return document(self.routers, self.cors, title=title, version=version, summary=summary)

    def for_event(self, event: Mapping[str, Any]) -> ApiGatewayResolver:
        self._include_routers()
        return self._by_shape[event_shape(event)]

    def resolve(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        resolver = self.for_event(event)
        # A router reads the current event through the resolver that included it last: point it at this one.
        for router in self.routers:
            router.api_resolver = resolver
        return resolver.resolve(event, context)
