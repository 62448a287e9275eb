"""Invoke a built function as Lambda's python3.13 runtime would, with the event fixtures (scripts/check_python313
runs this inside a chroot: code in /var/task, layers in /opt)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = ["/var/task", "/opt/python"]
os.environ.update(
    MODELS_DIR="/opt/models",
    POWERTOOLS_SERVICE_NAME="lambda-vision",
    POWERTOOLS_METRICS_NAMESPACE="LambdaVision",
    POWERTOOLS_LOG_LEVEL="WARNING",
    AWS_DEFAULT_REGION="us-east-1",
)
EXPECTED = {
    "predict_multipart": (200, ["0", "270", "url_forbidden", "180"]),
    "predict_raw": (200, ["270"]),
    "predict_nsfw": (200, ["sfw"]),
    "detect_annotated": (200, "image/jpeg"),
    "health": (200, "ready"),
    "bad_images": (200, ["image_undecodable", "image_undecodable", "image_too_large", "image_empty", "0"]),
    "unsupported_media_type": (415, "unsupported_media_type"),
    "too_many_images": (422, "too_many_images"),
}


class Context:
    function_name = "InferenceFunction"
    memory_limit_in_mb = 2048
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:InferenceFunction"


def summary(response: dict[str, Any]) -> Any:
    if response["isBase64Encoded"]:
        return response["multiValueHeaders"]["Content-Type"][0]
    body = json.loads(response["body"])
    if "results" in body:
        return [
            (r.get("predictions") or r.get("detections"))[0]["label"] if r["status"] == "ok" else r["error"]["code"]
            for r in body["results"]
        ]
    return body["error"]["code"] if "error" in body else body["status"]


def main() -> int:
    started = time.perf_counter()
    import app  # noqa: PLC0415 - imported after the path and settings are in place

    print(f"Python {sys.version.split()[0]}: import and model preload {time.perf_counter() - started:.2f} s")
    failures = 0
    for name, expected in EXPECTED.items():
        event = json.loads(Path(f"/events/{name}.json").read_text())
        with contextlib.redirect_stdout(io.StringIO()):  # the function's metrics (EMF lines)
            response = app.lambda_handler(event, Context())
        got = (int(response["statusCode"]), summary(response))
        failures += got != expected
        print(f"{'ok  ' if got == expected else 'FAIL'} {name:24} {got[0]} {got[1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
