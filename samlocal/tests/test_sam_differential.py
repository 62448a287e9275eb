"""The events of samlocal against SAM CLI's own event construction (samcli.local.apigw), for the same
requests on the same routes.

SAM CLI builds its events in a Flask request; sam_reference.py (beside this file) runs that code under SAM CLI's
interpreter (.venv-sam) for each request the emulator received, and the two events are compared field by
field. Where SAM CLI knowingly differs from API Gateway, samlocal follows API Gateway and the comparison
leaves the field out (see IGNORED_HEADERS and the requestContext fields compared).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests_toolbelt import MultipartEncoder

from samlocal.template import read_stack
from samlocal.testing import LocalApi

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"

# SAM CLI lives in a virtual environment of its own (the project's `make sam-cli`), or wherever SAM_CLI_PYTHON says.
SAM_PYTHON = Path(os.environ.get("SAM_CLI_PYTHON") or HERE.parents[1] / ".venv-sam" / "bin" / "python")
# API Gateway adds these (SAM CLI does not add the first two); the proxy's own are compared below.
IGNORED_HEADERS = {"x-amzn-trace-id", "x-forwarded-for"}
COMPARED_CONTEXT = ("resourcePath", "httpMethod", "stage", "protocol", "accountId", "operationName", "domainName")

pytestmark = pytest.mark.skipif(not SAM_PYTHON.exists(), reason="needs SAM CLI in .venv-sam (make sam-cli)")

FORM = MultipartEncoder(fields=[("image", ("a.bin", bytes(range(256)), "application/octet-stream")), ("url", "x")])
REQUESTS: list[dict[str, Any]] = [
    {"method": "GET", "path": "/items/42", "query": "a=1&a=2&b=x+y&c=", "headers": {"X-Custom": "v"}},
    {"method": "GET", "path": "/items/special", "query": "", "headers": {}},
    {"method": "GET", "path": "/echo", "query": "", "headers": {"Accept": "application/json"}},
    {
        "method": "POST",
        "path": "/echo",
        "query": "",
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"images": [{"url": "https://example.com/a.jpg"}]}).encode(),
    },
    {
        "method": "POST",
        "path": "/echo",
        "query": "model=orientation",
        "headers": {"Content-Type": "application/octet-stream"},
        "body": bytes(range(256)) * 4,
    },
    {
        "method": "POST",
        "path": "/echo",
        "query": "",
        "headers": {"Content-Type": "multipart/form-data"},  # replaced by the form's own, with its boundary
        "body": FORM.to_string(),
        "form": True,
    },
    {"method": "PUT", "path": "/files/a/b/c.txt", "query": "", "headers": {"Content-Type": "text/plain"}, "body": b"t"},
]


def _lower(mapping: dict[str, Any] | None) -> dict[str, Any]:
    return {key.lower(): value for key, value in (mapping or {}).items() if key.lower() not in IGNORED_HEADERS}


@pytest.fixture(scope="module")
def pairs(api: LocalApi) -> Iterator[list[tuple[dict[str, Any], dict[str, Any]]]]:
    ours: list[dict[str, Any]] = []
    observed: list[dict[str, Any]] = []
    for spec in REQUESTS:
        headers = dict(spec["headers"])
        if spec.get("form"):
            headers["Content-Type"] = FORM.content_type
        url = api.url + spec["path"] + (f"?{spec['query']}" if spec["query"] else "")
        response = requests.request(spec["method"], url, headers=headers, data=spec.get("body"), timeout=30)
        assert response.status_code == 200, response.text
        event = response.json()["event"]
        ours.append(event)
        sent_headers = [
            [name, value]
            for name, values in event["multiValueHeaders"].items()
            if name.lower() not in IGNORED_HEADERS and not name.lower().startswith("x-forwarded-")
            for value in values
        ]
        observed.append(
            {
                "method": spec["method"],
                "path": spec["path"],
                "query": spec["query"],
                "headers": sent_headers,
                "body": base64.b64encode(spec.get("body") or b"").decode(),
                "source_ip": "127.0.0.1",
            }
        )
    stack = read_stack(TEMPLATES / "api.yaml")
    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [
        {
            "path": route.resource_path,
            "methods": every_method if route.method == "ANY" else [route.method],
            "operation_name": route.operation_name,
        }
        for route in stack.routes
    ]
    api_spec = stack.apis["TestApi"]
    document = {
        "routes": routes,
        "binary_types": api_spec.binary_media_types,
        "stage": api_spec.stage_name,
        "stage_variables": api_spec.stage_variables,
        "port": int(api.url.rsplit(":", 1)[1]),
        "requests": observed,
    }
    completed = subprocess.run(
        [str(SAM_PYTHON), str(HERE / "sam_reference.py")],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    theirs = json.loads(completed.stdout)
    yield list(zip(ours, theirs, strict=True))


@pytest.mark.parametrize("index", range(len(REQUESTS)), ids=[f"{r['method']} {r['path']}" for r in REQUESTS])
def test_the_event_matches_sam_clis(pairs: list[tuple[dict[str, Any], dict[str, Any]]], index: int) -> None:
    ours, theirs = pairs[index]
    assert set(ours) == set(theirs)
    for field in ("resource", "path", "httpMethod", "pathParameters", "stageVariables", "isBase64Encoded", "body"):
        assert ours[field] == theirs[field], field
    assert ours["queryStringParameters"] == theirs["queryStringParameters"]
    assert ours["multiValueQueryStringParameters"] == theirs["multiValueQueryStringParameters"]
    # Header names: API Gateway keeps the client's spelling, SAM CLI's WSGI layer title-cases them.
    assert _lower(ours["headers"]) == _lower(theirs["headers"])
    assert _lower(ours["multiValueHeaders"]) == _lower(theirs["multiValueHeaders"])
    for field in COMPARED_CONTEXT:
        assert ours["requestContext"].get(field) == theirs["requestContext"].get(field), field
    assert ours["requestContext"]["identity"]["sourceIp"] == theirs["requestContext"]["identity"]["sourceIp"]


def test_where_sam_cli_differs_from_api_gateway_samlocal_follows_api_gateway(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    ours, theirs = pairs[0]
    # requestContext.path is the stage and the request path in API Gateway; SAM CLI puts the resource there.
    assert ours["requestContext"]["path"] == "/test/items/42"
    assert theirs["requestContext"]["path"] == "/items/{id}"
    # API Gateway passes the caller's User-Agent; SAM CLI a fixed string.
    assert ours["requestContext"]["identity"]["userAgent"] == ours["headers"]["User-Agent"]
    assert theirs["requestContext"]["identity"]["userAgent"] == "Custom User Agent String"


# HTTP APIs (http_api.yaml): payload format 2.0 against construct_v2_event_http, 1.0 against construct_v1_event.

HTTP_REQUESTS: list[dict[str, Any]] = [
    {
        "method": "GET",
        "path": "/items/42",
        "query": "a=1&a=2&b=x+y&c=",
        "headers": [("X-Custom", "v"), ("Cookie", "s=1; t=2")],
    },
    {"method": "GET", "path": "/items/special", "query": "", "headers": [("Accept", "application/json")]},
    {
        "method": "POST",
        "path": "/upload",
        "query": "",
        "headers": [("Content-Type", "application/json")],
        "body": json.dumps({"images": [{"url": "https://example.com/a.jpg"}]}).encode(),
    },
    {
        "method": "PUT",
        "path": "/files/a/b/c.txt",
        "query": "",
        "headers": [("Content-Type", "text/plain")],
        "body": b"t",
    },
    {"method": "GET", "path": "/v1/things/9", "query": "a=1&a=2", "headers": [("X-Custom", "v")]},
    {
        "method": "POST",
        "path": "/v1/upload",
        "query": "",
        "headers": [("Content-Type", "application/json")],
        "body": b'{"a": 1}',
    },
]


@pytest.fixture(scope="module")
def http_pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[dict[str, Any], dict[str, Any]]]]:
    from test_http_api import workspace  # noqa: PLC0415 - the HTTP API tests' copy of the templates, with its zip

    folder = workspace(tmp_path_factory.mktemp("differential_http"))
    api = LocalApi(folder / "http_api.yaml", folder.parent / "console.log")
    try:
        ours: list[dict[str, Any]] = []
        observed: list[dict[str, Any]] = []
        for spec in HTTP_REQUESTS:
            url = api.url + spec["path"] + (f"?{spec['query']}" if spec["query"] else "")
            response = requests.request(
                spec["method"], url, headers=dict(spec["headers"]), data=spec.get("body"), timeout=30
            )
            assert response.status_code == 200, response.text
            event = response.json()["event"]
            ours.append(event)
            observed.append(
                {
                    "method": spec["method"],
                    "path": spec["path"],
                    "query": spec["query"],
                    "headers": _sent_headers(event),
                    "body": base64.b64encode(spec.get("body") or b"").decode(),
                    "source_ip": "127.0.0.1",
                }
            )
    finally:
        api.close()
    stack = read_stack(folder / "http_api.yaml")
    http_api = stack.apis["ItemsApi"]
    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    document = {
        "kind": "HTTP",
        "routes": [
            {
                "path": route.resource_path,
                "methods": every_method if route.method == "ANY" else [route.method],
                "payload": route.payload_format_version,
            }
            for route in http_api.routes
            if route.resource_path != "$default"  # a catch-all Flask cannot express; no request here takes it
        ],
        "binary_types": http_api.binary_media_types,
        "stage": http_api.stage_name,
        "stage_variables": http_api.stage_variables,
        "port": int(api.url.rsplit(":", 1)[1]),
        "requests": observed,
    }
    completed = subprocess.run(
        [str(SAM_PYTHON), str(HERE / "sam_reference.py")],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    yield list(zip(ours, json.loads(completed.stdout), strict=True))


def _sent_headers(event: dict[str, Any]) -> list[list[str]]:
    """The headers the client sent, as the event shows them (v2: joined values, cookies apart)."""
    if event.get("version") != "2.0":
        return [
            [name, value]
            for name, values in event["multiValueHeaders"].items()
            if name.lower() not in IGNORED_HEADERS and not name.lower().startswith("x-forwarded-")
            for value in values
        ]
    headers = [
        [name, value]
        for name, value in event["headers"].items()
        if name not in IGNORED_HEADERS and not name.startswith("x-forwarded-")
    ]
    return headers + ([["Cookie", "; ".join(event["cookies"])]] if event.get("cookies") else [])


V2_INDEXES = [index for index, spec in enumerate(HTTP_REQUESTS) if not spec["path"].startswith("/v1/")]
V1_INDEXES = [index for index, spec in enumerate(HTTP_REQUESTS) if spec["path"].startswith("/v1/")]


def _ids(indexes: list[int]) -> list[str]:
    return [f"{HTTP_REQUESTS[index]['method']} {HTTP_REQUESTS[index]['path']}" for index in indexes]


@pytest.mark.parametrize("index", V2_INDEXES, ids=_ids(V2_INDEXES))
def test_the_v2_event_matches_sam_clis(http_pairs: list[tuple[dict[str, Any], dict[str, Any]]], index: int) -> None:
    ours, theirs = http_pairs[index]
    for field in ("version", "rawPath", "rawQueryString", "isBase64Encoded", "stageVariables"):
        assert ours.get(field) == theirs.get(field), field
    # API Gateway leaves absent parts out; SAM CLI writes them empty.
    assert ours.get("cookies", []) == theirs["cookies"]
    assert ours.get("queryStringParameters") == theirs.get("queryStringParameters")
    assert ours.get("pathParameters") == (theirs["pathParameters"] or None)
    assert ours.get("body") == (theirs["body"] or None)
    # Header names: API Gateway lower-cases them in v2 events, SAM CLI's WSGI layer title-cases them.
    assert _lower(ours["headers"]) == {
        key: value for key, value in _lower(theirs["headers"]).items() if key != "cookie"
    }
    context, reference = ours["requestContext"], theirs["requestContext"]
    for field in ("stage", "accountId"):
        assert context[field] == reference[field], field
    for field in ("method", "path", "sourceIp", "protocol"):
        assert context["http"][field] == reference["http"][field], field
    if not ours["routeKey"].startswith("ANY "):
        assert ours["routeKey"] == theirs["routeKey"] == context["routeKey"] == reference["routeKey"]


@pytest.mark.parametrize("index", V1_INDEXES, ids=_ids(V1_INDEXES))
def test_the_http_api_1_0_event_matches_sam_clis(
    http_pairs: list[tuple[dict[str, Any], dict[str, Any]]], index: int
) -> None:
    ours, theirs = http_pairs[index]
    for field in ("version", "resource", "path", "httpMethod", "pathParameters", "isBase64Encoded", "body"):
        assert ours[field] == theirs[field], field
    assert ours["queryStringParameters"] == theirs["queryStringParameters"]
    assert ours["multiValueQueryStringParameters"] == theirs["multiValueQueryStringParameters"]
    assert _lower(ours["multiValueHeaders"]) == _lower(theirs["multiValueHeaders"])
    assert ours["requestContext"]["httpMethod"] == theirs["requestContext"]["httpMethod"]


def test_where_sam_cli_differs_from_http_apis_samlocal_follows_api_gateway(
    http_pairs: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    ours, theirs = http_pairs[3]  # PUT /files/a/b/c.txt on `ANY /files/{proxy+}`
    # The route key is the route's own (ANY ...), not the request's method as SAM CLI writes it.
    assert ours["routeKey"] == "ANY /files/{proxy+}"
    assert theirs["routeKey"] == "PUT /files/{proxy+}"
    ours, theirs = http_pairs[0]
    # Cookies are taken out of the headers, and header names are lower case.
    assert "cookie" not in ours["headers"] and "Cookie" in theirs["headers"]
    assert all(name == name.lower() for name in ours["headers"])
    # The caller's User-Agent, not a fixed string.
    assert ours["requestContext"]["http"]["userAgent"].startswith("python-requests/")
    assert theirs["requestContext"]["http"]["userAgent"] == "Custom User Agent String"
