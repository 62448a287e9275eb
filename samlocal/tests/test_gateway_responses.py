"""The gateway's own answers: customized by GatewayResponses, and integrations that name no local function,
over real sockets; then the rules on their own (gateway response fallbacks, IAM policy evaluation)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samlocal import gateway_responses as responses
from samlocal.gateway_responses import ErrorContext, GatewayResponses, read_customizations
from samlocal.iam_policy import Decision, PolicyError, evaluate, wildcard_match
from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("responses") / "console.log"
    local_api = LocalApi(TEMPLATES / "auth.yaml", log)
    try:
        yield local_api
    finally:
        local_api.close()


class TestOverSockets:
    def test_an_unknown_route_gets_the_customized_missing_authentication_token(self, api: LocalApi) -> None:
        response = api.get("/nowhere")
        assert response.status_code == 404
        assert response.json() == {"message": "no route", "type": "MISSING_AUTHENTICATION_TOKEN", "stage": "dev"}
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        # DEFAULT_4XX's headers do not reach a type customized on its own
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_a_function_error_keeps_the_default_502(self, api: LocalApi) -> None:
        response = api.get("/error")
        assert response.status_code == 502
        assert response.content == b'{"message": "Internal server error"}'

    def test_a_mock_integration_answers_with_its_integration_response(self, api: LocalApi) -> None:
        response = api.get("/mock", headers={"X-Echo": "echoed"})
        assert response.status_code == 202
        assert response.headers["X-Mock"] == "yes"
        assert response.headers["X-Echo"] == "echoed"
        assert response.json() == {"mocked": True, "stage": "dev"}

    @pytest.mark.parametrize("path", ["/gone", "/legacy", "/forward/unreachable"])
    def test_an_integration_without_a_local_function_is_500(self, api: LocalApi, path: str) -> None:
        response = api.get(path)
        assert response.status_code == 500
        assert response.content == b'{"message": "Internal server error"}'

    def test_they_are_listed_at_start_up(self, api: LocalApi) -> None:
        output = api.output()
        assert "/mock  ->  MOCK integration" in output
        assert "function:ElsewhereFunction" in output and "names no local function" in output
        assert "/legacy  ->  HTTP integration https://example.com/legacy (not run locally: answers 500)" in output
        assert "/forward/{proxy+}  ->  HTTP_PROXY integration to http://127.0.0.1:9/backend/{proxy}" in output


class _Backend(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        document = {
            "method": self.command,
            "path": self.path,
            "x-test": self.headers.get("X-Test"),
            "body": body.decode(),
        }
        payload = json.dumps(document).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Backend", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


for _method in ("GET", "POST", "DELETE"):
    setattr(_Backend, f"do_{_method}", _Backend._answer)


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_proxy_integration_forwards_to_its_backend(backend: int, tmp_path: Path) -> None:
    api = LocalApi(TEMPLATES / "auth.yaml", tmp_path / "console.log", "--parameter-overrides", f"BackendPort={backend}")
    try:
        response = api.post("/forward/a/b%20c?x=1&x=2", data=b"payload", headers={"X-Test": "kept"})
        assert response.status_code == 201
        assert response.headers["X-Backend"] == "yes"
        assert response.json() == {
            "method": "POST",
            "path": "/backend/a/b%20c?x=1&x=2",
            "x-test": "kept",
            "body": "payload",
        }
        assert api.request("DELETE", "/forward/z").json()["method"] == "DELETE"
    finally:
        api.close()


def customized(properties: dict[str, Any], definition: dict[str, Any] | None = None) -> GatewayResponses:
    found, warnings = read_customizations(properties, definition)
    assert warnings == []
    return GatewayResponses(found)


class TestGatewayResponseRules:
    def test_without_customization_the_bytes_are_api_gateways(self) -> None:
        response = GatewayResponses().response(responses.UNAUTHORIZED)
        assert (response.status, response.body) == (401, b'{"message":"Unauthorized"}')
        assert ("x-amzn-ErrorType", "UnauthorizedException") in response.headers

    def test_a_class_default_status_applies_to_types_without_their_own(self) -> None:
        gateway = customized({"GatewayResponses": {"DEFAULT_4XX": {"StatusCode": 400}}})
        assert gateway.response(responses.ACCESS_DENIED).status == 400
        assert gateway.response(responses.LAMBDA_ERROR).status == 502

    def test_the_openapi_extension_is_read_and_sam_wins(self) -> None:
        definition = {
            "x-amazon-apigateway-gateway-responses": {
                "ACCESS_DENIED": {
                    "statusCode": 401,
                    "responseParameters": {"gatewayresponse.header.X-From": "'openapi'"},
                    "responseTemplates": {"application/json": '{"why": "$context.error.message"}'},
                },
                "UNAUTHORIZED": {"statusCode": "418"},
            }
        }
        gateway = customized({"GatewayResponses": {"UNAUTHORIZED": {"StatusCode": "499"}}}, definition)
        denied = gateway.response(responses.EXPLICITLY_DENIED)
        assert denied.status == 401
        assert ("X-From", "openapi") in denied.headers
        assert denied.body == b'{"why": "User is not authorized to access this resource with an explicit deny"}'
        assert gateway.response(responses.UNAUTHORIZED).status == 499

    def test_header_mappings_read_the_request(self) -> None:
        headers = {"X-Origin": "method.request.header.Origin", "X-Q": "method.request.querystring.q"}
        gateway = customized({"GatewayResponses": {"DEFAULT_5XX": {"ResponseParameters": {"Headers": headers}}}})
        error = ErrorContext(headers={"origin": "https://a.example"}, query={"q": "1"})
        response = gateway.response(responses.INTEGRATION_TIMEOUT, error)
        assert ("X-Origin", "https://a.example") in response.headers
        assert ("X-Q", "1") in response.headers

    def test_a_bad_status_code_is_a_warning(self) -> None:
        _, warnings = read_customizations({"GatewayResponses": {"DEFAULT_4XX": {"StatusCode": "abc"}}}, None)
        assert warnings == ["GatewayResponses.DEFAULT_4XX: StatusCode must be an HTTP status, got 'abc'"]


ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/items/42"


def policy(*statements: tuple[str, str | list[str]]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource} for effect, resource in statements
        ],
    }


class TestIamPolicy:
    @pytest.mark.parametrize(
        ("document", "decision"),
        [
            (policy(("Allow", ARN)), Decision.ALLOW),
            (policy(("Allow", "arn:aws:execute-api:us-east-1:123456789012:abc123/*")), Decision.ALLOW),
            (policy(("Allow", "arn:aws:execute-api:*:*:abc123/dev/*/items/*")), Decision.ALLOW),
            (policy(("Allow", "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/POST/*")), Decision.IMPLICIT_DENY),
            (policy(("Allow", "*"), ("Deny", ARN)), Decision.EXPLICIT_DENY),
            (policy(("Allow", [ARN.replace("42", "4?")])), Decision.ALLOW),
            (policy(("Allow", ARN.replace("42", "4"))), Decision.IMPLICIT_DENY),
        ],
    )
    def test_statements_against_the_method_arn(self, document: dict[str, Any], decision: Decision) -> None:
        assert evaluate(document, ARN) is decision

    def test_actions_and_not_resource(self) -> None:
        other_action = {"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}
        assert evaluate(other_action, ARN) is Decision.IMPLICIT_DENY
        any_action = {"Statement": {"Effect": "Allow", "Action": "execute-api:*", "NotResource": "*/POST/*"}}
        assert evaluate(any_action, ARN) is Decision.ALLOW

    @pytest.mark.parametrize(
        "document",
        [
            None,
            {},
            {"Statement": []},
            {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]},
            {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        ],
    )
    def test_a_document_that_is_not_a_policy_is_an_error(self, document: Any) -> None:
        with pytest.raises(PolicyError):
            evaluate(document, ARN)

    @given(st.text(min_size=1, max_size=40), st.data())
    def test_a_star_in_place_of_any_part_still_matches(self, value: str, data: st.DataObject) -> None:
        start = data.draw(st.integers(0, len(value)))
        end = data.draw(st.integers(start, len(value)))
        assert wildcard_match(value[:start] + "*" + value[end:], value)
        assert wildcard_match(value, value)

    @given(st.permutations([("Allow", "*"), ("Deny", ARN), ("Allow", ARN)]))
    def test_a_deny_wins_in_any_order(self, statements: list[tuple[str, str]]) -> None:
        assert evaluate(policy(*statements), ARN) is Decision.EXPLICIT_DENY
