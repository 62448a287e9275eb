"""CORS over real sockets: SAM's `Cors` on a REST API (from Globals) answers preflights with its MOCK
method and leaves function responses alone; an HTTP API's `CorsConfiguration` answers preflights itself
and puts its headers on every response to an allowed origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from http_api_harness import ServedHttpApi, serve_as_http_api
from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"
ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("cors") / "console.log"
    local_api = LocalApi(TEMPLATES / "auth.yaml", log)
    try:
        yield local_api
    finally:
        local_api.close()


class TestRestCors:
    def test_a_preflight_is_answered_by_the_gateway_with_the_configured_headers(self, api: LocalApi) -> None:
        response = api.request("OPTIONS", "/hello", headers=PREFLIGHT)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
        assert response.headers["Access-Control-Allow-Headers"] == "Authorization,Content-Type"
        assert response.headers["Access-Control-Max-Age"] == "600"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.content.strip() == b"{}"
        assert "[EchoFunction] START" not in api.output()

    def test_an_any_method_allows_every_method(self, api: LocalApi) -> None:
        response = api.request("OPTIONS", "/items/a/b", headers=PREFLIGHT)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Methods"] == "DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT"

    def test_an_explicit_options_route_reaches_its_function(self, api: LocalApi) -> None:
        response = api.request("OPTIONS", "/explicit", headers=PREFLIGHT)
        assert response.status_code == 200
        assert response.json()["event"]["httpMethod"] == "OPTIONS"
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_function_responses_get_no_cors_headers_on_a_rest_api(self, api: LocalApi) -> None:
        response = api.get("/public", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert not [name for name in response.headers if name.lower().startswith("access-control-")]

    def test_an_unknown_path_has_no_preflight(self, api: LocalApi) -> None:
        response = api.request("OPTIONS", "/nowhere", headers=PREFLIGHT)
        assert response.status_code == 404  # this API's MISSING_AUTHENTICATION_TOKEN
        assert response.json()["type"] == "MISSING_AUTHENTICATION_TOKEN"


HTTP_CORS = {
    "CorsConfiguration": {
        "AllowOrigins": [ORIGIN, "https://admin.example.com"],
        "AllowMethods": ["GET", "post"],
        "AllowHeaders": ["authorization", "content-type"],
        "ExposeHeaders": ["x-request-id"],
        "MaxAge": 300,
        "AllowCredentials": True,
    }
}


@pytest.fixture(scope="module")
def http_api() -> Iterator[ServedHttpApi]:
    with serve_as_http_api(TEMPLATES / "auth.yaml", "AuthApi", HTTP_CORS) as served:
        yield served


class TestHttpApiCors:
    def test_a_preflight_is_answered_204_even_without_an_options_route(self, http_api: ServedHttpApi) -> None:
        response = http_api.request("OPTIONS", "/public", headers=PREFLIGHT)
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["access-control-allow-methods"] == "GET,POST"
        assert response.headers["access-control-allow-headers"] == "authorization,content-type"
        assert response.headers["access-control-max-age"] == "300"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.content == b""

    def test_a_preflight_from_another_origin_gets_no_cors_headers(self, http_api: ServedHttpApi) -> None:
        response = http_api.request("OPTIONS", "/public", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert response.status_code == 204
        assert "access-control-allow-origin" not in response.headers

    def test_responses_to_an_allowed_origin_carry_the_headers(self, http_api: ServedHttpApi) -> None:
        response = http_api.get("/public", headers={"Origin": "https://admin.example.com"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://admin.example.com"
        assert response.headers["access-control-expose-headers"] == "x-request-id"
        assert "access-control-allow-methods" not in response.headers

    def test_an_explicit_options_route_still_wins(self, http_api: ServedHttpApi) -> None:
        response = http_api.request("OPTIONS", "/explicit", headers=PREFLIGHT)
        assert response.status_code == 200
        assert response.json()["event"]["requestContext"]["http"]["method"] == "OPTIONS"  # payload 2.0
        assert response.headers["access-control-allow-origin"] == ORIGIN


def test_cors_true_on_an_http_api_allows_any_origin() -> None:
    with serve_as_http_api(TEMPLATES / "auth.yaml", "AuthApi", {"CorsConfiguration": True}) as served:
        response = served.get("/public", headers={"Origin": "https://anywhere.example"})
        assert response.headers["access-control-allow-origin"] == "*"
