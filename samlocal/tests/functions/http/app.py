"""A test function for HTTP APIs: each path shows one way a result becomes a response (payload 2.0 or 1.0)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    path = event.get("rawPath") or event.get("path") or ""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if name == "plain":
        return {"hello": "world", "items": [1, 2]}  # no statusCode: API Gateway answers 200 JSON
    if name == "text":
        return "just text"
    if name == "cookies":
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Joined": "a,b"},
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
    body = {"event": event, "function": context.function_name, "greeting": os.environ.get("GREETING")}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
