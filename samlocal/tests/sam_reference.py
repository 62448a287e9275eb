"""Builds API Gateway proxy events with SAM CLI's own code, for the differential test of samlocal.

Runs under SAM CLI's interpreter (.venv-sam/bin/python), never under the project's: SAM CLI pins its own
Flask, click and boto3. Reads a JSON document on stdin:

    {"routes": [{"path": "/items/{id}", "methods": ["GET"], "operation_name": null, "payload": "1.0"}, ...],
     "kind": "REST" | "HTTP", "binary_types": [...], "stage": "test", "stage_variables": {...}, "port": 3000,
     "requests": [{"method": "GET", "path": "/items/42", "query": "a=1", "headers": [[name, value]],
                   "body": "<base64>", "source_ip": "127.0.0.1"}]}

and writes the list of events SAM CLI builds for them (samcli.local.apigw.event_constructor): `construct_v1_event`
for REST APIs and HTTP API routes with payload format 1.0, `construct_v2_event_http` for payload format 2.0,
each in the Flask request context SAM CLI's local API service would have (same URL rules, same endpoint names,
the route key as its service writes it).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from flask import Flask
from samcli.local.apigw.event_constructor import (  # type: ignore[import-not-found]
    construct_v1_event,
    construct_v2_event_http,
)
from samcli.local.apigw.path_converter import PathConverter  # type: ignore[import-not-found]
from samcli.local.apigw.route import Route  # type: ignore[import-not-found]


def _view(**_: Any) -> str:
    return ""


def main() -> None:
    spec = json.load(sys.stdin)
    app = Flask("sam_reference")
    operation_names: dict[tuple[str, str], Any] = {}
    payloads: dict[tuple[str, str], str] = {}
    http_api = spec.get("kind") == "HTTP"
    for route in spec["routes"]:
        # As SAM CLI's local API service: the Flask endpoint is named after the route's Flask path.
        flask_path = PathConverter.convert_path_to_flask(route["path"])
        for method in route["methods"]:
            operation_names[(flask_path, method)] = route.get("operation_name")
            payloads[(flask_path, method)] = route.get("payload", "1.0")
        app.add_url_rule(
            flask_path, endpoint=flask_path, view_func=_view, methods=route["methods"], provide_automatic_options=False
        )
    events = []
    for request in spec["requests"]:
        with app.test_request_context(
            path=request["path"],
            method=request["method"],
            query_string=request["query"],
            headers=[tuple(pair) for pair in request["headers"]],
            data=base64.b64decode(request["body"]),
            environ_base={"REMOTE_ADDR": request["source_ip"]},
        ) as context:
            flask_request = context.request
            key = (flask_request.endpoint or "", flask_request.method)
            if http_api and payloads.get(key) == "2.0":
                route_key = f"{flask_request.method} {PathConverter.convert_path_to_api_gateway(key[0])}"
                event = construct_v2_event_http(
                    flask_request,
                    spec["port"],
                    spec["binary_types"],
                    stage_name=spec["stage"],
                    stage_variables=spec["stage_variables"],
                    route_key=route_key,
                )
            else:
                event = construct_v1_event(
                    flask_request,
                    spec["port"],
                    spec["binary_types"],
                    stage_name=spec["stage"],
                    stage_variables=spec["stage_variables"],
                    operation_name=operation_names.get(key),
                    api_type=Route.HTTP if http_api else Route.API,
                )
            events.append(event)
    json.dump(events, sys.stdout)


if __name__ == "__main__":
    main()
