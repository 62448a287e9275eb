"""A test function for execution environments: how long it runs, how much memory it takes, how it fails."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from awslambdaric import lambda_runtime_client

_CHUNK = 4 * 1024 * 1024


def _before_next(action: Any) -> None:
    """Runs `action` once this invocation is answered, as the runtime is about to ask for the next one."""
    ask = lambda_runtime_client.LambdaRuntimeClient.wait_next_invocation

    def act_then_ask(client: Any) -> Any:
        lambda_runtime_client.LambdaRuntimeClient.wait_next_invocation = ask
        action()
        return ask(client)

    lambda_runtime_client.LambdaRuntimeClient.wait_next_invocation = act_then_ask


def _stop() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def _exit_after(seconds: float) -> None:
    """The process dies `seconds` after asking for its next invocation, while its environment is idle."""

    def exit_now() -> None:
        time.sleep(seconds)
        os._exit(5)

    threading.Thread(target=exit_now, daemon=True).start()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    allocated = 0
    held: list[bytes] = []
    for _ in range(int(query.get("mb", "0")) * 1024 * 1024 // _CHUNK):
        held.append(b"\x01" * _CHUNK)  # written, so resident
        allocated += _CHUNK
        time.sleep(0.002)
    time.sleep(float(query.get("seconds", "0")))
    if "stop-before-next" in query:
        _before_next(_stop)
    if "exit-after" in query:
        seconds = float(query["exit-after"])
        _before_next(lambda: _exit_after(seconds))
    body = {"pid": os.getpid(), "allocated_mb": allocated // (1024 * 1024), "request_id": context.aws_request_id}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
