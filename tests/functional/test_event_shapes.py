"""The same routes answer REST (v1), HTTP API (payload 2.0) and Lambda Function URL events.

The v2 events are built by the local API's own HTTP API event construction (samlocal.http_events): cookies
out of the headers, header names in lower case with repeated values joined by commas, no multiValue maps, the
body base64-encoded unless it is text-like.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

import app
import sample_images
from lambda_vision.resolvers import EventShape, event_shape
from samlocal.events import HttpRequest, RequestIds
from samlocal.http_events import build_http_event
from samlocal.routing import RouteTable
from samlocal.template import Api, Route
from support import LambdaContext, load_event

FUNCTION = "InferenceFunction"
HTTP_API = Api("ServerlessHttpApi", "$default", kind="HTTP")
FUNCTION_URL_DOMAIN = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
ROUTES = RouteTable(
    Route(method, path, FUNCTION, HTTP_API.logical_id, payload_format_version="2.0")
    for method, path in [
        ("POST", "/predict"),
        ("POST", "/object_detection"),
        ("GET", "/models"),
        ("GET", "/models/{name}"),
        ("GET", "/health"),
        ("ANY", "/{proxy+}"),
    ]
)


def v2_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    function_url: bool = False,
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    match = ROUTES.match(method, path)
    assert match is not None
    domain = FUNCTION_URL_DOMAIN if function_url else "abcdef1234.execute-api.us-east-1.amazonaws.com"
    request = HttpRequest(method, path, query, [("Host", domain), *(headers or [])], body, "198.51.100.7")
    return build_http_event(
        request,
        route=match.route,
        api=HTTP_API,
        path_parameters=match.path_parameters,
        ids=RequestIds.new(),
        port=443,
        scheme="https",
        domain_name=domain if function_url else None,
    )


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = app.lambda_handler(copy.deepcopy(event), LambdaContext())
    return response


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


def test_each_event_shape_is_recognised() -> None:
    assert event_shape(load_event("models")) is EventShape.REST
    assert event_shape(v2_event("GET", "/models")) is EventShape.HTTP
    assert event_shape(v2_event("GET", "/models", function_url=True)) is EventShape.FUNCTION_URL


@pytest.mark.parametrize("function_url", [False, True], ids=["http-api", "function-url"])
def test_a_binary_upload_is_classified_from_a_v2_event(function_url: bool) -> None:
    page = sample_images.rotated_page(90)
    event = v2_event(
        "POST", "/predict?model=orientation&top_k=2", [("Content-Type", "image/png")], page, function_url=function_url
    )
    assert event["isBase64Encoded"] is True  # HTTP APIs encode every body that is not text-like

    response = invoke(event)

    assert response["statusCode"] == 200
    assert "multiValueHeaders" not in response
    (result,) = body_of(response)["results"]
    assert len(result["predictions"]) == 2
    assert result["predictions"][0]["label"] == "270"


def test_a_json_body_with_base64_images_is_read_as_text_from_a_v2_event() -> None:
    encoded = base64.b64encode(sample_images.rotated_page(180)).decode()
    document = json.dumps({"images": [{"base64": encoded}]}).encode()
    event = v2_event("POST", "/predict?model=orientation", [("Content-Type", "application/json")], document)
    assert event["isBase64Encoded"] is False

    (result,) = body_of(invoke(event))["results"]

    assert result["predictions"][0]["label"] == "180"


def test_joined_headers_and_cookies_do_not_confuse_content_negotiation() -> None:
    event = v2_event(
        "GET",
        "/models/layout",
        [("Accept", "text/html;q=0.5"), ("Accept", "application/json"), ("Cookie", "session=abc; theme=dark")],
    )
    assert event["headers"]["accept"] == "text/html;q=0.5,application/json"
    assert event["cookies"] == ["session=abc", "theme=dark"]

    response = invoke(event)

    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert body_of(response)["labels"][:2] == ["text", "title"]


def test_errors_keep_their_shape_and_request_id_in_v2_events() -> None:
    event = v2_event("POST", "/predict?model=nope", [("Content-Type", "image/png")], b"\x89PNG")

    response = invoke(event)

    assert response["statusCode"] == 404
    error = body_of(response)["error"]
    assert error["code"] == "model_not_found"
    assert error["request_id"] == event["requestContext"]["requestId"]


def test_an_unknown_path_is_the_apps_own_404_for_every_shape() -> None:
    for event in (v2_event("GET", "/nowhere"), v2_event("GET", "/nowhere", function_url=True)):
        response = invoke(event)
        assert response["statusCode"] == 404
        assert body_of(response)["error"]["code"] == "route_not_found"
        assert "GET /nowhere" in body_of(response)["error"]["message"]


def test_an_annotated_image_is_base64_in_a_v2_response() -> None:
    page = sample_images.encode(sample_images.render_page()[0])
    event = v2_event("POST", "/object_detection", [("Content-Type", "image/png"), ("Accept", "image/png")], page)

    response = invoke(event)

    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert response["headers"]["Content-Type"] == "image/png"
    assert base64.b64decode(response["body"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_rest_events_still_answer_with_multi_value_headers() -> None:
    response = invoke(load_event("models"))

    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
