"""The items handler of the CDK test app (a REST API behind API Gateway)."""

import json
import os
from typing import Any

import cdk_shared


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = {"event": event, "shared": cdk_shared.NAME, "table": os.environ.get("TABLE_NAME")}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
