"""Builds API Gateway proxy events with SAM CLI's own code, for the differential test of samlocal.

Runs under SAM CLI's interpreter (.venv-sam/bin/python), never under the project's: SAM CLI pins its own
Flask, click and boto3. Reads a JSON document on stdin:

    {"routes": [{"path": "/items/{id}", "methods": ["GET"], "operation_name": null}, ...],
     "binary_types": [...], "stage": "test", "stage_variables": {...}, "port": 3000,
     "requests": [{"method": "GET", "path": "/items/42", "query": "a=1", "headers": [[name, value]],
                   "body": "<base64>", "source_ip": "127.0.0.1"}]}

and writes the list of events `samcli.local.apigw.event_constructor.construct_v1_event` builds, each in
the Flask request context SAM CLI's local API service would have (same URL rules, same endpoint names).
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from flask import Flask
from samcli.local.apigw.event_constructor import construct_v1_event  # type: ignore[import-not-found]
from samcli.local.apigw.path_converter import PathConverter  # type: ignore[import-not-found]


def _view(**_: Any) -> str:
    return ""


def main() -> None:
    spec = json.load(sys.stdin)
    app = Flask("sam_reference")
    operation_names: dict[tuple[str, str], Any] = {}
    for route in spec["routes"]:
        # As SAM CLI's local API service: the Flask endpoint is named after the route's Flask path.
        flask_path = PathConverter.convert_path_to_flask(route["path"])
        for method in route["methods"]:
            operation_names[(flask_path, method)] = route.get("operation_name")
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
            events.append(
                construct_v1_event(
                    flask_request,
                    spec["port"],
                    spec["binary_types"],
                    stage_name=spec["stage"],
                    stage_variables=spec["stage_variables"],
                    operation_name=operation_names.get((flask_request.endpoint or "", flask_request.method)),
                )
            )
    json.dump(events, sys.stdout)


if __name__ == "__main__":
    main()
