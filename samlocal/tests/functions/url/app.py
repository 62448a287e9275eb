"""A test function for Function URLs: each path shows one way a result becomes a response."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    name = event["rawPath"].rstrip("/").rsplit("/", 1)[-1]
    if name == "dict":
        return {"hello": "world", "items": [1, 2]}  # no statusCode: answered 200 JSON
    if name == "cookies":
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "https://function.example"},
            "cookies": ["session=abc; Path=/", "theme=dark"],
            "body": "with cookies",
        }
    if name == "binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    if name == "error":
        raise RuntimeError("the function failed")
    if name == "huge":
        return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}
    if name == "sleep":
        time.sleep(float(event.get("queryStringParameters", {}).get("seconds", "5")))
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Request": context.aws_request_id},
        "body": json.dumps({"event": event, "function": context.function_name, "pid": os.getpid()}),
    }
