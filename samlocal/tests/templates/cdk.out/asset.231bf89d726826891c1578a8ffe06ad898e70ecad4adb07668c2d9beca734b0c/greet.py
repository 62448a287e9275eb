"""The greeting handler of the CDK test app's nested stack (an HTTP API)."""

import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"greeting": f"{os.environ['GREETING']}, {event['pathParameters']['name']}", "route": event["routeKey"]}
