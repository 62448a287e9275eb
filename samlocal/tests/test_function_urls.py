"""Lambda Function URLs over real sockets: each URL on a port of its own, Lambda's payload 2.0 event, the v2
response format, Lambda's own answers (403 for unsigned AWS_IAM requests, 429, 502), CORS and template reload."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from samlocal.cli import parse_args
from samlocal.events import HttpRequest
from samlocal.function_urls import signing_access_key, url_id
from samlocal.template import read_stack
from samlocal.testing import LocalApi

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "templates" / "function_urls.yaml"

# The example request event of the AWS Lambda Developer Guide, "Invoking Lambda function URLs", request
# payload format (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads).
DOCUMENTED_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "<urlid>",
        "authentication": None,
        "authorizer": {
            "iam": {
                "accessKey": "AKIA...",
                "accountId": "111122223333",
                "callerId": "AIDA...",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": "arn:aws:iam::111122223333:user/example-user",
                "userId": "AIDA...",
            }
        },
        "domainName": "<url-id>.lambda-url.us-west-2.on.aws",
        "domainPrefix": "<url-id>",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "123.123.123.123",
            "userAgent": "agent",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "body": "Hello from client!",
    "pathParameters": None,
    "isBase64Encoded": False,
    "stageVariables": None,
}


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    local_api = LocalApi(TEMPLATE, tmp_path_factory.mktemp("function_urls") / "console.log")
    try:
        yield local_api
    finally:
        local_api.close()


def signed(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
    """The headers of a request signed with SigV4 by botocore, as the AWS SDKs sign Function URL requests."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials("AKIALOCALTESTKEY", "not-checked-offline"), "lambda", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def event_of(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()["event"]
    return event


class TestStartUp:
    def test_each_function_url_is_listed_on_a_port_of_its_own(self, urls: LocalApi) -> None:
        assert set(urls.function_urls) == {"UrlFunction", "SignedFunction", "ShortFunctionUrl", "ThrottledFunction"}
        ports = {url.rsplit(":", 1)[1] for url in urls.function_urls.values()}
        assert len(ports) == 4
        assert urls.url.rsplit(":", 1)[1] not in ports
        output = urls.output()
        assert f"Function URL for UrlFunction: {urls.function_urls['UrlFunction']}/" in output
        assert f"Function URL for ShortFunction (ShortFunctionUrl): {urls.function_urls['ShortFunctionUrl']}/" in output

    def test_what_is_not_served_as_on_aws_is_said(self, urls: LocalApi) -> None:
        output = urls.output()
        assert "InvokeMode RESPONSE_STREAM: served buffered" in output
        assert "ShortFunctionUrl: Qualifier prod: the function's current code is served" in output
        assert "AuthType AWS_IAM (SignedFunction)" in output
        assert "signatures are not verified offline" in output
        assert "no Function URLs" not in output
        assert "AWS::Lambda::Url" not in output


class TestEvent:
    def test_a_get_becomes_lambdas_function_url_event(self, urls: LocalApi) -> None:
        base = urls.function_urls["UrlFunction"]
        response = requests.get(
            f"{base}/any/path/here?a=1&a=2&b=x%20y",
            headers={"X-Test": "1", "User-Agent": "ua/1", "Cookie": "s=1; t=2"},
            timeout=30,
        )
        event = event_of(response)
        identifier = url_id("UrlFunction")

        assert event["version"] == "2.0"
        assert event["routeKey"] == "$default"
        assert event["rawPath"] == "/any/path/here"
        assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
        assert event["cookies"] == ["s=1", "t=2"]
        assert "cookie" not in event["headers"]
        assert event["headers"]["x-test"] == "1"
        assert all(name == name.lower() for name in event["headers"])
        assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
        assert event["isBase64Encoded"] is False
        assert "body" not in event and "pathParameters" not in event and "stageVariables" not in event
        context = event["requestContext"]
        assert context["accountId"] == "anonymous"
        assert "authorizer" not in context
        assert context["apiId"] == context["domainPrefix"] == identifier
        assert re.fullmatch(r"[0-9a-z]{32}", identifier)
        assert context["domainName"] == f"{identifier}.lambda-url.us-east-1.on.aws"
        assert context["http"] == {
            "method": "GET",
            "path": "/any/path/here",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "ua/1",
        }
        assert context["routeKey"] == context["stage"] == "$default"
        assert context["requestId"] == response.headers["x-amzn-RequestId"] == response.headers["X-Request"]
        assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", context["time"])
        assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
        assert "x-amz-apigw-id" not in response.headers  # a Function URL is not API Gateway

    def test_every_method_and_path_reaches_the_function(self, urls: LocalApi) -> None:
        base = urls.function_urls["UrlFunction"]
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            event = event_of(requests.request(method, f"{base}/{method.lower()}/deep/er", timeout=30))
            assert event["requestContext"]["http"]["method"] == method
            assert event["rawPath"] == f"/{method.lower()}/deep/er"
        assert event_of(requests.get(f"{base}/", timeout=30))["rawPath"] == "/"

    def test_a_text_body_arrives_as_text_a_binary_one_base64_encoded(self, urls: LocalApi) -> None:
        base = urls.function_urls["UrlFunction"]
        text = event_of(requests.post(f"{base}/json", json={"k": "é"}, timeout=30))
        assert json.loads(text["body"]) == {"k": "é"}
        assert text["isBase64Encoded"] is False
        data = bytes(range(256)) * 3
        binary = event_of(
            requests.post(f"{base}/upload", data=data, headers={"Content-Type": "image/jpeg"}, timeout=30)
        )
        assert binary["isBase64Encoded"] is True
        assert base64.b64decode(binary["body"]) == data

    def test_the_event_has_the_documented_shape(self, urls: LocalApi) -> None:
        """Every field of the documented example is there with the same JSON type (fields the example shows
        as null are left out when they have no value, as Lambda does)."""
        url = urls.function_urls["SignedFunction"] + "/my/path?parameter1=value1&parameter1=value2&parameter2=value"
        headers = {"header1": "value1", "Content-Type": "text/plain", "Cookie": "cookie1; cookie2"}
        body = b"Hello from client!"
        headers = signed("POST", url, body, headers)
        event = event_of(requests.post(url, data=body, headers=headers, timeout=30))

        def compare(documented: Any, actual: Any, where: str) -> None:
            if documented is None:
                return
            assert type(actual) is type(documented), f"{where}: {actual!r} is not like {documented!r}"
            if isinstance(documented, dict) and where != "headers":
                for key, value in documented.items():
                    if value is not None:
                        assert key in actual, f"{where}.{key} is missing"
                    if key in actual:
                        compare(value, actual[key], f"{where}.{key}" if where else key)

        compare(DOCUMENTED_EVENT, event, "")
        assert event["body"] == "Hello from client!"
        assert event["cookies"] == ["cookie1", "cookie2"]
        assert event["queryStringParameters"] == DOCUMENTED_EVENT["queryStringParameters"]
        assert event["rawQueryString"] == DOCUMENTED_EVENT["rawQueryString"]
        assert event["headers"]["header1"] == "value1"


class TestResponses:
    def test_a_result_without_status_code_is_answered_200_json(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["UrlFunction"] + "/dict", timeout=30)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"hello": "world", "items": [1, 2]}

    def test_cookies_become_set_cookie_headers(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["UrlFunction"] + "/cookies", timeout=30)
        assert response.status_code == 201
        assert response.raw.headers.getlist("Set-Cookie") == ["session=abc; Path=/", "theme=dark"]
        assert response.text == "with cookies"

    def test_a_base64_result_is_answered_as_bytes(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["UrlFunction"] + "/binary", timeout=30)
        assert response.status_code == 200
        assert response.content == bytes(range(256))

    def test_a_function_error_answers_502(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["UrlFunction"] + "/error", timeout=30)
        assert response.status_code == 502
        assert response.text == "Internal Server Error"
        urls.wait_for_output("function error")

    def test_a_response_above_6_mb_answers_502(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["UrlFunction"] + "/huge", timeout=60)
        assert response.status_code == 502
        assert response.text == "Internal Server Error"

    def test_a_function_past_its_timeout_answers_502(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["ShortFunctionUrl"] + "/sleep?seconds=5", timeout=30)
        assert response.status_code == 502  # the 1 s Timeout, not the 5 s sleep (which would answer 200)
        assert response.text == "Internal Server Error"
        urls.wait_for_output("Task timed out after 1")

    def test_an_event_above_6_mb_answers_413_without_an_invocation(self, urls: LocalApi) -> None:
        body = b"\x00" * (5 * 1024 * 1024)  # 5 MB of bytes, about 6.7 MB once base64-encoded in the event
        response = requests.post(
            urls.function_urls["UrlFunction"] + "/too-big",
            data=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
        assert response.status_code == 413
        assert "Request must be smaller than 6291456 bytes" in response.json()["Message"]
        urls.wait_for_output("above Lambda's 6291456 byte request limit")

    def test_parallel_requests_run_in_parallel_environments(self, urls: LocalApi) -> None:
        url = urls.function_urls["UrlFunction"] + "/sleep?seconds=1"
        with ThreadPoolExecutor(4) as executor:
            responses = list(executor.map(lambda _: requests.get(url, timeout=30), range(4)))
        assert [response.status_code for response in responses] == [200] * 4
        # Four requests in flight at once: four environments (queued behind one, they would share its pid).
        assert len({response.json()["pid"] for response in responses}) == 4

    def test_a_function_that_may_not_run_is_throttled_429(self, urls: LocalApi) -> None:
        response = requests.get(urls.function_urls["ThrottledFunction"] + "/", timeout=30)
        assert response.status_code == 429
        assert response.json() == {"Message": "Rate Exceeded."}


class TestAwsIam:
    def test_an_unsigned_request_is_forbidden(self, urls: LocalApi) -> None:
        base = urls.function_urls["SignedFunction"]
        for headers in ({}, {"Authorization": "Bearer token"}, {"Authorization": "AWS4-HMAC-SHA256 nothing"}):
            response = requests.get(f"{base}/x", headers=headers, timeout=30)
            assert response.status_code == 403
            assert response.json() == {"Message": "Forbidden"}

    def test_a_signed_request_reaches_the_function_with_its_access_key(self, urls: LocalApi) -> None:
        url = urls.function_urls["SignedFunction"] + "/who?me=1"
        event = event_of(requests.get(url, headers=signed("GET", url), timeout=30))
        context = event["requestContext"]
        assert context["accountId"] == "123456789012"
        iam = context["authorizer"]["iam"]
        assert iam["accessKey"] == "AKIALOCALTESTKEY"
        assert iam["userId"] == iam["callerId"] and iam["callerId"].startswith("AIDA")
        assert event["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIALOCALTESTKEY/")

    def test_a_presigned_url_is_accepted(self, urls: LocalApi) -> None:
        base = urls.function_urls["SignedFunction"]
        query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAPRESIGNED%2F20260101%2Fus-east-1%2Flambda"
        event = event_of(requests.get(f"{base}/p?{query}", timeout=30))
        assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIAPRESIGNED"


class TestCors:
    def test_a_preflight_is_answered_by_the_service(self, urls: LocalApi) -> None:
        response = requests.options(
            urls.function_urls["UrlFunction"] + "/anything",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert response.headers["access-control-allow-methods"] == "GET,POST"
        assert response.headers["access-control-allow-headers"] == "content-type,x-custom"
        assert response.headers["access-control-max-age"] == "300"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "x-request" not in response.headers  # the function did not run

    def test_responses_to_an_allowed_origin_get_the_urls_cors_headers(self, urls: LocalApi) -> None:
        base = urls.function_urls["UrlFunction"]
        allowed = requests.get(f"{base}/cookies", headers={"Origin": "https://app.example"}, timeout=30)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"  # not the function's
        assert allowed.headers["access-control-expose-headers"] == "x-request"
        other = requests.get(f"{base}/dict", headers={"Origin": "https://elsewhere.example"}, timeout=30)
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers

    def test_without_cors_an_options_request_reaches_the_function(self, urls: LocalApi) -> None:
        response = requests.options(
            urls.function_urls["ThrottledFunction"] + "/",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            timeout=30,
        )
        assert response.status_code == 429  # the function was invoked (and throttled)


def test_function_urls_added_changed_or_removed_in_the_template_are_served_without_a_restart(tmp_path: Path) -> None:
    shutil.copytree(HERE / "functions", tmp_path / "functions")
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "function_urls.yaml"
    template.write_text(TEMPLATE.read_text())
    local_api = LocalApi(template, tmp_path / "console.log")
    try:
        text = template.read_text().replace(
            "      Timeout: 1\n", "      Timeout: 1\n      FunctionUrlConfig: {AuthType: NONE}\n"
        )
        iam = "      FunctionUrlConfig:\n        AuthType: AWS_IAM\n        Cors:"
        text = text.replace("      FunctionUrlConfig:\n        AuthType: NONE\n        Cors:", iam)
        template.write_text(text.split("  ThrottledFunction:")[0])  # and the throttled function removed
        output = local_api.wait_for_output("+ Function URL ShortFunction: ", timeout=30)
        added = re.search(r"\+ Function URL ShortFunction: (http://\S+)/", output)
        assert added is not None
        assert "- Function URL ThrottledFunction" in output
        event = event_of(requests.get(added.group(1) + "/new", timeout=30))
        assert event["requestContext"]["domainPrefix"] == url_id("ShortFunction")
        assert "~ Function URL UrlFunction: Function URL for UrlFunction" in output
        kept = requests.get(local_api.function_urls["UrlFunction"] + "/same-port", timeout=30)
        assert (kept.status_code, kept.json()) == (403, {"Message": "Forbidden"})  # now AWS_IAM, on the same port
        with pytest.raises(requests.ConnectionError):
            requests.get(local_api.function_urls["ThrottledFunction"] + "/", timeout=5)
    finally:
        local_api.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestStartFunctionUrls:
    """`samlocal start-function-urls [FUNCTION]`, the options of SAM CLI's proposed command."""

    def test_one_functions_url_on_a_port_of_the_range_without_signatures(self, tmp_path: Path) -> None:
        port = free_port()
        local_api = LocalApi(
            TEMPLATE,
            tmp_path / "console.log",
            "SignedFunction",
            "--port-range",
            f"{port}-{port}",
            "--disable-authorizer",
            command="start-function-urls",
        )
        try:
            assert local_api.function_urls == {"SignedFunction": f"http://127.0.0.1:{port}"}
            assert "accept unsigned requests" in local_api.output()
            event = event_of(requests.get(f"http://127.0.0.1:{port}/unsigned", timeout=30))
            assert event["requestContext"]["accountId"] == "anonymous"
            assert "authorizer" not in event["requestContext"]
        finally:
            local_api.close()

    def test_a_busy_range_or_no_function_url_is_said_and_exits_2(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            command = [sys.executable, "-m", "samlocal", "start-function-urls", "-t", str(TEMPLATE)]
            taken = subprocess.run(
                [*command, "--port-range", f"{port}-{port}"], check=False, capture_output=True, text=True, timeout=60
            )
        assert taken.returncode == 2
        assert f"no free port in --port-range {port}-{port} for the Function URL of UrlFunction" in taken.stderr
        api_only = [sys.executable, "-m", "samlocal", "start-function-urls", "-t", str(HERE / "templates" / "api.yaml")]
        none = subprocess.run(api_only, check=False, capture_output=True, text=True, timeout=60)
        assert none.returncode == 2
        assert "the template has no Function URL (FunctionUrlConfig or AWS::Lambda::Url) to serve" in none.stderr

    def test_samconfig_has_a_table_for_the_command(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "samconfig.toml").write_text(
            "version = 0.1\n"
            '[default.local_start_function_urls.parameters]\nport_range = "4101-4105"\n'
            "[default.local_start_api.parameters]\nfunction_url_port = 4200\n"
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("FUNCTION_URL_PORT", raising=False)
        urls_only = parse_args(["start-function-urls", "UrlFunction"])
        assert (urls_only.function, urls_only.port_range) == ("UrlFunction", range(4101, 4106))
        assert urls_only.function_url_port == 3001
        assert parse_args(["start-function-urls", "-p", "4300"]).function_url_port == 4300
        with_api = parse_args(["start-api"])
        assert (with_api.function_url_port, with_api.port_range, with_api.function) == (4200, None, None)
        assert parse_args(["start-api", "--function-url-port", "0"]).function_url_port == 0


class TestTemplate:
    def test_a_url_resource_names_its_function_by_ref_getatt_or_arn(self, tmp_path: Path) -> None:
        template = tmp_path / "template.yaml"
        template.write_text(
            "Transform: AWS::Serverless-2016-10-31\n"
            "Resources:\n"
            "  Fn:\n"
            "    Type: AWS::Serverless::Function\n"
            "    Properties: {InlineCode: 'def h(e, c): return e', Handler: index.h, Runtime: python3.13,"
            " FunctionName: named-fn}\n"
            "  ByRef: {Type: AWS::Lambda::Url, Properties: {TargetFunctionArn: !Ref Fn, AuthType: NONE}}\n"
            "  ByArn:\n"
            "    Type: AWS::Lambda::Url\n"
            "    Properties:\n"
            "      TargetFunctionArn: arn:aws:lambda:us-east-1:123456789012:function:named-fn\n"
            "      AuthType: AWS_IAM\n"
            "      Cors: {AllowOrigins: ['*']}\n"
            "  Elsewhere:\n"
            "    Type: AWS::Lambda::Url\n"
            "    Properties: {TargetFunctionArn: 'arn:aws:lambda:us-east-1:1:function:other', AuthType: NONE}\n"
        )
        stack = read_stack(template)
        assert {key: url.function_id for key, url in stack.function_urls.items()} == {"ByRef": "Fn", "ByArn": "Fn"}
        assert stack.function_urls["ByArn"].auth_type == "AWS_IAM"
        assert stack.function_urls["ByArn"].cors == {"AllowOrigins": ["*"]}
        assert any(line.startswith("Elsewhere: not served: its TargetFunctionArn") for line in stack.not_served)


@settings(max_examples=200, deadline=None)
@given(
    authorization=st.text(max_size=80),
    query=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
)
def test_only_a_sigv4_credential_counts_as_signed(authorization: str, query: str) -> None:
    request = HttpRequest("GET", "/", query, [("Authorization", authorization)], b"", "127.0.0.1")
    key = signing_access_key(request)
    if key is not None:
        assert key
        assert authorization.startswith("AWS4-HMAC-SHA256 ") or "X-Amz-Credential=" in unquote_plus(query)
        assert "/" not in key
