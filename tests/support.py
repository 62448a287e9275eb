"""Test helpers: API Gateway events from events/, a Lambda context, a local image server (imported as `support`)."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
MODELS_DIR = ROOT / "layers" / "models" / "models"

# The function reads its settings once, at import: point it at the models layer's source folder.
os.environ.setdefault("MODELS_DIR", str(MODELS_DIR))
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-vision")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LambdaVision")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return event


@dataclass
class LambdaContext:
    function_name: str = "lambda-vision-InferenceFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:lambda-vision-InferenceFunction"
    aws_request_id: str = "6f1c2c1e-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/lambda-vision-InferenceFunction"
    log_stream_name: str = "2026/11/21/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve the files of `folder` on 127.0.0.1 (an address the function fetches from only when allowed to)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFileHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
