"""The local API Gateway over real sockets: given this HTTP request, the function gets this event and the
client gets this response, byte for byte."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from samlocal.testing import LocalApi

BYTES = bytes(range(256))
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def raw_request(
    api: LocalApi, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """A request with repeated header names, which `requests` cannot send."""
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


def echoed(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["event"]
    return event


class TestEvent:
    def test_a_get_becomes_a_rest_proxy_event(self, api: LocalApi) -> None:
        before = time.time()
        status, headers, body = raw_request(
            api, "GET", "/items/42?a=1&a=2&b=x%20y&empty", [("X-Test", "1"), ("User-Agent", "ua"), ("X-Test", "2")]
        )
        assert status == 200
        event = json.loads(body)["event"]

        assert event["resource"] == "/items/{id}"
        assert event["path"] == "/items/42"
        assert event["httpMethod"] == "GET"
        assert event["pathParameters"] == {"id": "42"}
        assert event["queryStringParameters"] == {"a": "2", "b": "x y", "empty": ""}
        assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "empty": [""]}
        assert event["headers"]["X-Test"] == "2"
        assert event["multiValueHeaders"]["X-Test"] == ["1", "2"]
        assert event["headers"]["X-Forwarded-Proto"] == "http"
        assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
        assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
        assert event["stageVariables"] == {"color": "blue"}
        assert event["body"] is None
        assert event["isBase64Encoded"] is False

        context = event["requestContext"]
        assert context["stage"] == "test"
        assert context["resourcePath"] == "/items/{id}"
        assert context["httpMethod"] == "GET"
        assert context["path"] == "/test/items/42"
        assert context["requestId"] == headers["x-amzn-RequestId"]
        assert context["identity"]["sourceIp"] == "127.0.0.1"
        assert context["identity"]["userAgent"] == "ua"
        assert before * 1000 - 1000 <= context["requestTimeEpoch"] <= time.time() * 1000 + 1000
        assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["requestTime"])

    def test_no_query_and_no_path_parameters_are_null(self, api: LocalApi) -> None:
        event = echoed(api.get("/echo"))
        assert event["queryStringParameters"] is None
        assert event["multiValueQueryStringParameters"] is None
        assert event["pathParameters"] is None

    def test_a_literal_resource_beats_a_path_parameter(self, api: LocalApi) -> None:
        event = echoed(api.get("/items/special"))
        assert event["resource"] == "/items/special"
        assert event["pathParameters"] is None

    def test_path_parameters_stay_percent_encoded(self, api: LocalApi) -> None:
        event = echoed(api.get("/items/a%20b"))
        assert event["pathParameters"] == {"id": "a%20b"}
        assert event["path"] == "/items/a%20b"

    def test_a_greedy_path_takes_every_remaining_segment_and_any_method(self, api: LocalApi) -> None:
        event = echoed(api.request("PUT", "/files/a/b/c.txt", data=b"text"))
        assert event["resource"] == "/files/{proxy+}"
        assert event["pathParameters"] == {"proxy": "a/b/c.txt"}
        assert event["httpMethod"] == "PUT"
        assert event["body"] == "text"

    def test_the_openapi_operation_id_is_the_operation_name(self, api: LocalApi) -> None:
        event = echoed(api.post("/echo", json={"x": 1}))
        assert event["requestContext"]["operationName"] == "postEcho"

    def test_a_json_body_is_passed_as_text(self, api: LocalApi) -> None:
        document = {"images": [{"url": "https://example.com/a.jpg"}], "text": "é ✓"}
        event = echoed(api.post("/echo", data=json.dumps(document, ensure_ascii=False).encode()))
        assert event["isBase64Encoded"] is False
        assert json.loads(event["body"]) == document

    def test_a_chunked_body_is_read_whole(self, api: LocalApi) -> None:
        event = echoed(api.post("/echo", data=iter([b"ab", b"cd", b"ef"])))
        assert event["body"] == "abcdef"

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("application/octet-stream", BYTES),
            ("image/png", PNG),  # matches image/* (written image~1* in the template)
            ("image/jpeg; charset=binary", BYTES),
        ],
    )
    def test_a_binary_media_type_body_arrives_base64_encoded_byte_for_byte(
        self, api: LocalApi, content_type: str, body: bytes
    ) -> None:
        event = echoed(api.post("/echo", data=body, headers={"Content-Type": content_type}))
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body

    def test_a_multipart_upload_of_several_images_arrives_intact(self, api: LocalApi) -> None:
        form = MultipartEncoder(
            fields=[
                ("image", ("a.png", io.BytesIO(PNG), "image/png")),
                ("image", ("b.bin", io.BytesIO(BYTES * 100), "application/octet-stream")),
                ("url", "http://127.0.0.1/c.jpg"),
            ]
        )
        raw = form.to_string()
        event = echoed(api.post("/echo", data=raw, headers={"Content-Type": form.content_type}))
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == raw
        assert event["headers"]["Content-Type"] == form.content_type

    def test_text_media_types_are_not_encoded(self, api: LocalApi) -> None:
        event = echoed(api.post("/echo", data="a=1&b=2", headers={"Content-Type": "application/x-www-form-urlencoded"}))
        assert event["isBase64Encoded"] is False
        assert event["body"] == "a=1&b=2"


class TestResponse:
    def test_binary_comes_back_as_bytes_when_accept_is_a_binary_media_type(self, api: LocalApi) -> None:
        response = api.get("/binary?repeat=3", headers={"Accept": "application/octet-stream"})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.content == BYTES * 3

    def test_only_the_first_accept_media_type_counts(self, api: LocalApi) -> None:
        response = api.get("/binary", headers={"Accept": "text/html, application/octet-stream"})
        assert response.content == base64.b64encode(BYTES)

    def test_binary_comes_back_as_base64_text_otherwise(self, api: LocalApi) -> None:
        response = api.get("/binary", headers={"Accept": "application/json"})
        assert response.status_code == 200
        assert response.content == base64.b64encode(BYTES)

    def test_headers_and_multi_value_headers_are_merged(self, api: LocalApi) -> None:
        response = api.get("/cookies")
        assert response.status_code == 201
        assert response.text == "cookies"
        assert response.headers["Content-Type"] == "text/plain"
        assert response.headers["X-Single"] == "one"
        assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]

    def test_the_gateway_adds_its_request_id_and_a_default_content_type(self, api: LocalApi) -> None:
        response = api.request("PUT", "/files/x")
        assert response.headers["Content-Type"] == "application/json"
        assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-amzn-RequestId"])


class TestGatewayErrors:
    def test_an_unknown_route_is_missing_authentication_token(self, api: LocalApi) -> None:
        response = api.get("/nowhere")
        assert response.status_code == 403
        assert response.content == b'{"message":"Missing Authentication Token"}'
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"

    def test_an_unknown_method_is_missing_authentication_token(self, api: LocalApi) -> None:
        response = api.request("DELETE", "/echo")
        assert response.status_code == 403
        assert response.json() == {"message": "Missing Authentication Token"}

    def test_a_route_that_requires_an_api_key_is_forbidden_without_one(self, api: LocalApi) -> None:
        response = api.get("/private")
        assert response.status_code == 403
        assert response.content == b'{"message":"Forbidden"}'
        assert api.get("/private", headers={"x-api-key": "any"}).status_code == 200

    def test_a_function_error_is_an_internal_server_error(self, api: LocalApi) -> None:
        response = api.get("/error")
        assert response.status_code == 502
        assert response.content == b'{"message": "Internal server error"}'
        api.wait_for_output("the function failed on purpose")

    def test_a_malformed_proxy_response_is_an_internal_server_error(self, api: LocalApi) -> None:
        response = api.get("/malformed")
        assert response.status_code == 502
        assert response.json() == {"message": "Internal server error"}
        api.wait_for_output("Malformed Lambda proxy response")

    def test_a_response_above_6_mb_is_an_internal_server_error(self, api: LocalApi) -> None:
        response = api.get("/big?bytes=7000000")
        assert response.status_code == 502
        api.wait_for_output("Function.ResponseSizeTooLarge")
        assert api.get("/big?bytes=1000").text == "x" * 1000

    def test_a_body_above_10_mb_is_request_too_long(self, api: LocalApi) -> None:
        response = api.post("/echo", data=b"x" * (10 * 1024 * 1024 + 1), headers={"Content-Type": "text/plain"})
        assert response.status_code == 413
        assert response.json() == {"message": "Request Too Long"}

    def test_an_event_above_lambdas_6_mb_is_request_too_long(self, api: LocalApi) -> None:
        # 5 MB of binary becomes 6.7 MB of base64 in the event
        response = api.post("/echo", data=b"\0" * (5 * 1024 * 1024), headers={"Content-Type": "image/png"})
        assert response.status_code == 413
        assert response.json() == {"message": "Request Too Long"}

    def test_the_integration_timeout_of_a_route_is_a_504(self, api: LocalApi) -> None:
        started = time.monotonic()
        response = api.get("/gateway-timeout?seconds=3")
        assert response.status_code == 504
        assert response.content == b'{"message": "Endpoint request timed out"}'
        assert 0.9 < time.monotonic() - started < 2.5

    def test_an_init_error_is_reported_and_answered_502(self, api: LocalApi) -> None:
        response = api.get("/broken")
        assert response.status_code == 502
        output = api.wait_for_output("Runtime.ImportModuleError")
        assert "this module cannot be imported, on purpose" in output


class TestExecutionEnvironments:
    def test_environments_stay_warm_and_are_reused(self, api: LocalApi) -> None:
        first = api.get("/echo").json()
        second = api.get("/echo").json()
        assert first["pid"] == second["pid"]
        assert first["aws_request_id"] != second["aws_request_id"]
        assert first["function_name"] == "EchoFunction"

    def test_each_request_gets_a_report_line(self, api: LocalApi) -> None:
        request_id = api.get("/echo").json()["aws_request_id"]
        output = api.wait_for_output(f"REPORT RequestId: {request_id}")
        line = next(line for line in output.splitlines() if f"REPORT RequestId: {request_id}" in line)
        assert re.search(r"Duration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB", line)
        assert re.search(r"Max Memory Used: \d+ MB", line)
        assert "[EchoFunction] START RequestId: " + request_id in output
        assert "Init Duration: " in output  # on each environment's first request

    def test_the_function_timeout_kills_and_replaces_the_environment(self, api: LocalApi) -> None:
        before = api.get("/slow/sleep?seconds=0").json()["pid"]
        started = time.monotonic()
        response = api.get("/slow/sleep?seconds=5")
        assert response.status_code == 502
        assert 0.9 < time.monotonic() - started < 3
        api.wait_for_output("Task timed out after 1.00 seconds")
        after = api.get("/slow/sleep?seconds=0")
        assert after.status_code == 200
        assert after.json()["pid"] != before or api.get("/slow/sleep?seconds=0").json()["pid"] != before

    def test_a_crashed_worker_is_replaced(self, api: LocalApi) -> None:
        pids = {api.get("/echo").json()["pid"]}
        response = api.get("/crash")
        assert response.status_code == 502
        api.wait_for_output("Runtime exited with error: exit status 3")
        for _ in range(4):
            response = api.get("/echo")
            assert response.status_code == 200
            pids.add(response.json()["pid"])

    def test_a_worker_that_dies_while_idle_is_replaced(self, api: LocalApi) -> None:
        pid = api.get("/echo").json()["pid"]
        os.kill(pid, signal.SIGKILL)
        api.wait_for_output("execution environment exited")
        response = api.get("/echo")
        assert response.status_code == 200
        assert response.json()["pid"] != pid

    def test_concurrent_clients_get_their_own_answers(self, api: LocalApi) -> None:
        def call(number: int) -> tuple[int, dict[str, Any]]:
            with LocalApiClient(api) as client:
                response = client.post(f"/sleep?seconds=0.3&n={number}", json={"client": number})
            return number, echoed(response)

        started = time.monotonic()
        with ThreadPoolExecutor(8) as executor:
            results = list(executor.map(call, range(8)))
        elapsed = time.monotonic() - started
        for number, event in results:
            assert event["queryStringParameters"]["n"] == str(number)
            assert json.loads(event["body"]) == {"client": number}
        # 8 calls of 0.3 s, each in an environment of its own: about 0.3 s (and cold starts), not 2.4 s
        assert elapsed < 2.0

    def test_the_environment_sees_the_template_layers_and_env_vars(self, api: LocalApi) -> None:
        body = api.get("/env").json()
        environment = body["environment"]
        assert environment["GREETING"] == "overridden for EchoFunction"
        assert environment["FROM_ENV_VARS"] == "everyone"
        assert environment["FUNCTION_ONLY"] == "yes"
        assert environment["STACK_REGION"] == "us-east-1"
        assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
        assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert environment["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
        assert environment["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
        assert environment["_HANDLER"] == "app.handler"
        # /opt/... values point into the function's opt directory, where the layers are laid out
        assert not environment["DATA_DIR"].startswith("/opt")
        assert environment["DATA_DIR"].endswith("/EchoFunction/data")
        assert environment["DATA_ROOT"].endswith("/EchoFunction")
        assert body["data"] == "hello from /opt/data"
        assert body["layer"] == "hello from the shared layer"
        assert body["cwd"] == str(Path(__file__).resolve().parent / "functions" / "echo")

    def test_the_routes_are_printed_at_start_up(self, api: LocalApi) -> None:
        output = api.output()
        assert f"GET     {api.url}/items/{{id}}  ->  EchoFunction" in output
        assert f"ANY     {api.url}/files/{{proxy+}}  ->  EchoFunction" in output


class LocalApiClient:
    """A client of its own (one connection per thread)."""

    def __init__(self, api: LocalApi) -> None:
        self.api = api
        self.session = requests.Session()

    def __enter__(self) -> LocalApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.session.post(self.api.url + path, timeout=30, **kwargs)


def test_a_raw_http_1_1_exchange_keeps_the_connection_alive(api: LocalApi) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        for _ in range(2):
            connection.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(65536)
            header, _, body = head.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", header).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += connection.recv(65536)
            assert header.startswith(b"HTTP/1.1 200 OK")
            assert b"Connection: keep-alive" in header
