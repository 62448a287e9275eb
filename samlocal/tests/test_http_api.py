"""HTTP APIs over real sockets: the v2 (and 1.0) event a request becomes, HTTP API route selection, the v2
response format, and functions whose code is a zip or inline."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from samlocal.testing import LocalApi

HERE = Path(__file__).resolve().parent
ZIPPED_CODE = 'def handler(event, context):\n    return {"statusCode": 200, "body": "from the zip"}\n'


def workspace(tmp_path: Path) -> Path:
    """A copy of the test templates and functions, with the zip the templates name built in it."""
    for folder in ("templates", "functions", "layers"):
        shutil.copytree(HERE / folder, tmp_path / folder)
    with zipfile.ZipFile(tmp_path / "templates" / "zipped.zip", "w") as bundle:
        bundle.writestr("zipped.py", ZIPPED_CODE)
    return tmp_path / "templates"


@pytest.fixture(scope="module")
def http_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    folder = workspace(tmp_path_factory.mktemp("http_api"))
    local_api = LocalApi(folder / "http_api.yaml", folder.parent / "console.log")
    try:
        yield local_api
    finally:
        local_api.close()


def raw_request(
    api: LocalApi, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    host, port = api.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, target)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def event_of(api: LocalApi, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> Any:
    status, _, data = raw_request(api, method, target, headers, body)
    assert status == 200, data
    return json.loads(data)["event"]


class TestPayloadV2Event:
    def test_a_get_becomes_the_v2_event(self, http_api: LocalApi) -> None:
        event = event_of(
            http_api,
            "GET",
            "/items/42?a=1&a=2&b=x%20y",
            [("X-Test", "1"), ("User-Agent", "ua/1"), ("x-test", "2"), ("Cookie", "s=1; t=2"), ("Cookie", "u=3")],
        )

        assert event["version"] == "2.0"
        assert event["routeKey"] == "GET /items/{id}"
        assert event["rawPath"] == "/items/42"
        assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
        assert event["cookies"] == ["s=1", "t=2", "u=3"]
        assert event["headers"]["x-test"] == "1,2"
        assert "cookie" not in event["headers"]
        assert event["headers"]["user-agent"] == "ua/1"
        assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-")
        assert all(name == name.lower() for name in event["headers"])
        assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
        assert event["pathParameters"] == {"id": "42"}
        assert event["stageVariables"] == {"color": "green"}
        assert event["isBase64Encoded"] is False
        assert "body" not in event
        assert "multiValueHeaders" not in event
        assert "multiValueQueryStringParameters" not in event
        context = event["requestContext"]
        assert context["http"] == {
            "method": "GET",
            "path": "/items/42",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "ua/1",
        }
        assert context["routeKey"] == "GET /items/{id}"
        assert context["stage"] == "$default"
        assert isinstance(context["timeEpoch"], int)
        assert context["accountId"] == "123456789012"
        assert len(context["apiId"]) == 10

    def test_no_query_no_cookies_no_body_leave_their_fields_out(self, http_api: LocalApi) -> None:
        event = event_of(http_api, "GET", "/items/7", [])

        assert event["rawQueryString"] == ""
        assert "queryStringParameters" not in event
        assert "cookies" not in event

    @pytest.mark.parametrize(
        ("content_type", "encoding", "is_base64"),
        [
            ("application/json", None, False),
            ("text/plain; charset=utf-8", None, False),
            ("application/vnd.api+json", None, False),
            ("image/png", None, True),
            ("multipart/form-data; boundary=x", None, True),
            ("application/octet-stream", None, True),
            ("text/plain", "gzip", True),
        ],
    )
    def test_bodies_are_base64_unless_text_like(
        self, http_api: LocalApi, content_type: str, encoding: str | None, is_base64: bool
    ) -> None:
        data = gzip.compress(b"payload") if encoding else b'{"a": "\xc3\xa9"}'
        headers = [("Content-Type", content_type)] + ([("Content-Encoding", encoding)] if encoding else [])

        event = event_of(http_api, "POST", "/upload", headers, data)

        assert event["isBase64Encoded"] is is_base64
        received = base64.b64decode(event["body"]) if is_base64 else event["body"].encode()
        assert received == data


class TestRouteSelection:
    def test_a_literal_path_beats_a_parameter(self, http_api: LocalApi) -> None:
        assert event_of(http_api, "GET", "/items/special", [])["routeKey"] == "GET /items/special"

    def test_a_greedy_path_takes_the_rest(self, http_api: LocalApi) -> None:
        event = event_of(http_api, "PUT", "/files/a/b/c.txt", [("Content-Type", "text/plain")], b"t")

        assert event["routeKey"] == "ANY /files/{proxy+}"
        assert event["pathParameters"] == {"proxy": "a/b/c.txt"}
        assert event["body"] == "t"

    def test_an_unknown_path_or_method_goes_to_the_default_route(self, http_api: LocalApi) -> None:
        for method, target in (("GET", "/nowhere/at/all"), ("DELETE", "/items/42"), ("GET", "/")):
            status, _, data = raw_request(http_api, method, target, [])
            assert status == 200, (method, target, data)
            assert json.loads(data) == {"fallback": "$default", "path": target}


class TestV2Response:
    def test_a_result_without_status_code_is_200_json(self, http_api: LocalApi) -> None:
        response = http_api.get("/results/plain")

        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"hello": "world", "items": [1, 2]}

    def test_a_string_result_is_the_body(self, http_api: LocalApi) -> None:
        response = http_api.get("/results/text")

        assert response.status_code == 200
        assert response.text == "just text"

    def test_cookies_become_set_cookie_headers(self, http_api: LocalApi) -> None:
        status, headers, body = raw_request(http_api, "GET", "/results/cookies", [])

        assert status == 201
        assert headers.get_all("Set-Cookie") == ["session=abc; Path=/", "theme=dark"]
        assert headers["X-Joined"] == "a,b"
        assert headers["Content-Type"] == "text/plain"
        assert body == b"with cookies"

    def test_is_base64_encoded_is_always_honoured(self, http_api: LocalApi) -> None:
        for accept in ("application/json", "*/*", None):
            headers = {"Accept": accept} if accept else {}
            response = http_api.get("/results/binary", headers=headers)
            assert response.content == bytes(range(256)), accept


class TestPayloadV1:
    def test_a_payload_1_0_route_gets_the_rest_shaped_event_with_a_version(self, http_api: LocalApi) -> None:
        event = event_of(http_api, "GET", "/v1/things/9?a=1&a=2", [("X-Test", "1"), ("X-Test", "2")])

        assert event["version"] == "1.0"
        assert event["resource"] == "/v1/{proxy+}"
        assert event["path"] == "/v1/things/9"
        assert event["pathParameters"] == {"proxy": "things/9"}
        assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
        assert event["multiValueHeaders"]["X-Test"] == ["1", "2"]
        assert event["requestContext"]["routeKey"] == "ANY /v1/{proxy+}"
        assert event["requestContext"]["stage"] == "$default"

    def test_a_binary_upload_is_base64_without_binary_media_types(self, http_api: LocalApi) -> None:
        event = event_of(http_api, "POST", "/v1/upload", [("Content-Type", "image/png")], bytes(range(256)))

        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == bytes(range(256))

    def test_a_base64_result_is_decoded_whatever_the_accept_header(self, http_api: LocalApi) -> None:
        assert http_api.get("/v1/binary", headers={"Accept": "text/html"}).content == bytes(range(256))


class TestCode:
    def test_a_zip_code_uri_is_served(self, http_api: LocalApi) -> None:
        response = http_api.get("/zipped")

        assert response.status_code == 200
        assert response.text == "from the zip"

    def test_inline_code_is_served(self, http_api: LocalApi) -> None:
        assert http_api.get("/inline/route").json()["fallback"] == "$default"

    def test_the_console_lists_the_http_api_and_its_routes(self, http_api: LocalApi) -> None:
        output = http_api.output()

        assert "ItemsApi (HTTP API, stage $default)" in output
        assert "GET     " in output and "/items/{id}  ->  HttpFunction" in output
        assert "$default  ->  FallbackFunction" in output
