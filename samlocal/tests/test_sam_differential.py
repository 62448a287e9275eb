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
