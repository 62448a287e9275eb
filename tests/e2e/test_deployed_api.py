"""A deployed stack answers like the function: every request of events/ is sent to API_URL over HTTPS and the
answer compared with the function's answer to the same event, computed here in-process.

Skipped unless API_URL is set (scripts/smoke sets it from the stack's outputs; API_KEY when the stack requires
a key, API_AUTH=IAM when requests must be signed with SigV4 by your AWS credentials, API_TYPE=HTTP for a stack
deployed with ApiType=HTTP, API_CORS_ORIGIN for its CorsAllowOrigin). What only the real API Gateway does
(binary bodies, unknown routes, API keys, authentication, CORS preflight) is checked on top.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from PIL import Image

from support import EVENTS_DIR, LambdaContext, load_event

API_URL = os.environ.get("API_URL", "").rstrip("/")
API_KEY = os.environ.get("API_KEY", "")
API_AUTH = os.environ.get("API_AUTH", "NONE")
API_TYPE = os.environ.get("API_TYPE", "REST")
API_CORS_ORIGIN = os.environ.get("API_CORS_ORIGIN", "")
TIMEOUT = 35  # API Gateway answers within 29 s
SCORE_TOLERANCE = 0.02  # arm64 and x86_64 builds of ONNX Runtime round differently

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not API_URL, reason="API_URL is not set: no deployed stack to call"),
]

EVENTS = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def signed(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The request signed with AWS Signature Version 4 for execute-api, with the caller's AWS credentials."""
    import boto3  # noqa: PLC0415 - only for stacks deployed with Auth=IAM
    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415

    credentials = boto3.Session().get_credentials()
    assert credentials is not None, "Auth=IAM: no AWS credentials to sign with"
    region = (request.url or "").split("//", 1)[1].split(".")[2]  # <id>.execute-api.<region>.amazonaws.com
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body, headers=dict(request.headers))
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(aws_request)
    request.headers.update(dict(aws_request.headers.items()))
    return request


def send(event: dict[str, Any], api_key: str | None = API_KEY, sign: bool = API_AUTH == "IAM") -> Answer:
    """The HTTP request that API Gateway turned into `event`, sent to the deployed stage."""
    headers = {
        name: value
        for name, value in (event.get("headers") or {}).items()
        if name.lower() in {"content-type", "accept", "origin", "access-control-request-method"}
    }
    if api_key:
        headers["x-api-key"] = api_key
    body: str | None = event.get("body")
    data = base64.b64decode(body or "") if event.get("isBase64Encoded") else (body.encode() if body else None)
    request = requests.Request(
        event["httpMethod"],
        API_URL + event["path"],
        params=event.get("queryStringParameters"),
        headers=headers,
        data=data,
    ).prepare()
    if sign:
        request = signed(request)
    with requests.Session() as session:
        response = session.send(request, timeout=TIMEOUT)
    return Answer(response.status_code, response.headers.get("Content-Type", ""), response.content, response.headers)


def local(event: dict[str, Any]) -> Answer:
    """The function's own answer, as API Gateway would relay it."""
    import app  # noqa: PLC0415 - loads the models: only when a deployed stack is there to compare with

    raw = app.lambda_handler(copy.deepcopy(event), LambdaContext())
    headers = {name.lower(): values[0] for name, values in raw.get("multiValueHeaders", {}).items()}
    headers.update({name.lower(): value for name, value in (raw.get("headers") or {}).items()})
    body = base64.b64decode(raw["body"]) if raw.get("isBase64Encoded") else raw["body"].encode()
    return Answer(int(raw["statusCode"]), headers.get("content-type", ""), body)


def assert_same_results(deployed: Any, expected: Any, where: str = "body") -> None:
    """Equal JSON, except what differs between two runs (timings, request ids, which models a container has
    loaded so far) and scores (equal within SCORE_TOLERANCE)."""
    if isinstance(expected, dict):
        assert isinstance(deployed, dict), where
        keys = {key for key in expected if key not in {"timings_ms", "request_id", "loaded"}}
        assert keys <= set(deployed), f"{where}: missing {sorted(keys - set(deployed))}"
        for key in keys:
            assert_same_results(deployed[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(deployed, list), where
        assert len(deployed) == len(expected), where
        for index, (got, want) in enumerate(zip(deployed, expected, strict=True)):
            assert_same_results(got, want, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert deployed == pytest.approx(expected, abs=SCORE_TOLERANCE, rel=0.01), where
    else:
        assert deployed == expected, where


@pytest.mark.parametrize("name", EVENTS)
def test_deployed_api_answers_like_the_function(name: str) -> None:
    event = load_event(name)
    deployed, expected = send(event), local(event)

    assert deployed.status == expected.status, deployed.body[:500]
    assert deployed.content_type.split(";")[0] == expected.content_type.split(";")[0]
    if expected.content_type.startswith("image/"):
        # The binary answer arrives as bytes (the request's Accept matched a binary media type), not base64.
        with Image.open(io.BytesIO(deployed.body)) as picture:
            assert picture.size == Image.open(io.BytesIO(expected.body)).size
    elif expected.content_type.startswith("text/html"):
        assert deployed.body == expected.body  # the page, as text (not a binary media type)
    else:
        assert_same_results(deployed.json, expected.json)


def test_an_unknown_route_is_refused_in_the_api_error_shape() -> None:
    answer = send({"httpMethod": "GET", "path": "/no-such-route"})
    error = answer.json["error"]
    if API_TYPE == "HTTP":
        # The HTTP API's $default route sends it to the function, which answers its own 404.
        assert answer.status == 404
        assert error["code"] == "route_not_found"
    else:
        # A REST API answers routes it does not know itself, before any function runs (its gateway responses).
        assert answer.status == 403
        assert error["code"] == "MISSING_AUTHENTICATION_TOKEN"
        assert error["message"] == "Missing Authentication Token"
    assert error["request_id"]


def test_cors_preflight_is_answered_by_api_gateway() -> None:
    origin = API_CORS_ORIGIN or "https://app.example.com"
    answer = send(
        {
            "httpMethod": "OPTIONS",
            "path": "/predict",
            "headers": {"Origin": origin, "Access-Control-Request-Method": "POST"},
        },
        api_key=None,
        sign=False,
    )
    if API_TYPE == "HTTP" and not API_CORS_ORIGIN:
        # Without a CorsConfiguration an HTTP API answers no preflight: OPTIONS is an ordinary request of its
        # $default route, refused by its authorization, else answered by the function (no such route).
        assert answer.status == {"IAM": 403, "COGNITO": 401}.get(API_AUTH, 404)
        assert "Access-Control-Allow-Origin" not in answer.headers
        return
    assert answer.status == 204
    if "Access-Control-Allow-Origin" in answer.headers:  # the stack's CorsAllowOrigin is set
        assert "POST" in answer.headers["Access-Control-Allow-Methods"].split(",")


@pytest.mark.skipif(API_AUTH != "IAM", reason="the stack does not use Auth=IAM (API_AUTH unset)")
def test_an_unsigned_call_is_refused_when_the_stack_uses_iam() -> None:
    answer = send({"httpMethod": "GET", "path": "/health"}, sign=False)
    assert answer.status == 403
    if API_TYPE == "HTTP":
        assert answer.json == {"message": "Forbidden"}  # HTTP APIs cannot customize their own errors
    else:
        assert answer.json["error"]["code"] == "MISSING_AUTHENTICATION_TOKEN"


def test_the_page_is_served_at_the_stage_root_with_or_without_a_slash() -> None:
    # The page's URLs are relative to its own: at https://<api>/v1 (no slash) it still calls /v1/models.
    for path in ("/", ""):
        answer = send({"httpMethod": "GET", "path": path})
        assert answer.status == 200
        assert answer.content_type.startswith("text/html")
        assert b'location.pathname.endsWith("/")' in answer.body


def test_health_is_ready_once_deployed() -> None:
    answer = send({"httpMethod": "GET", "path": "/health"})
    assert answer.status == 200, answer.body
    assert answer.json["status"] == "ready"


@pytest.mark.skipif(not API_KEY, reason="the stack does not require an API key (API_KEY unset)")
def test_a_call_without_the_api_key_is_forbidden() -> None:
    answer = send({"httpMethod": "GET", "path": "/health"}, api_key=None)
    assert answer.status == 403
