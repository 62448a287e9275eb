"""A test function: each route shows one behaviour the local API Gateway must reproduce."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import shared_greeting  # type: ignore[import-not-found]  # from the SharedLayer's python/ directory


def _json(body: Any, status: int = 200) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _query(event: dict[str, Any], name: str, default: str) -> str:
    return str((event.get("queryStringParameters") or {}).get(name, default))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # REST and payload 1.0 events name the resource; payload 2.0 events their route key ("GET /echo").
    resource = event.get("resource") or str(event.get("routeKey", " ")).split(" ", 1)[-1]
    if resource == "/binary":
        data = bytes(range(256)) * int(_query(event, "repeat", "1"))
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(data).decode(),
            "isBase64Encoded": True,
        }
    if resource == "/error":
        raise RuntimeError("the function failed on purpose")
    if resource == "/crash":
        os._exit(3)
    if resource == "/malformed":
        return {"statusCode": 200, "body": {"a body": "that is not a string"}}
    if resource == "/big":
        return {"statusCode": 200, "body": "x" * int(_query(event, "bytes", "7000000"))}
    time.sleep(float(_query(event, "seconds", "0")))
    if resource == "/cookies":
        return {
            "statusCode": 201,
            "headers": {"X-Single": "one", "Content-Type": "text/plain"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "cookies",
        }
    if resource == "/env":
        opt = Path(os.environ["DATA_DIR"])
        return _json(
            {
                "environment": dict(os.environ),
                "data": (opt / "greeting.txt").read_text().strip(),
                "layer": shared_greeting.GREETING,
                "cwd": str(Path.cwd()),
            }
        )
    return _json(
        {
            "event": event,
            "pid": os.getpid(),
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
            "aws_request_id": context.aws_request_id,
        }
    )
