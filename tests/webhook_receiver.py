"""A webhook receiver on 127.0.0.1 for tests: records every POST (headers and raw body); can fail on purpose."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    failures_left: int = 0  # answer 503 to this many POSTs first
    attempts: int = 0


@contextmanager
def webhook_receiver(failures: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(url="")
    receiver.failures_left = failures
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                receiver.attempts += 1
                failing = receiver.failures_left > 0
                if failing:
                    receiver.failures_left -= 1
                else:
                    receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            self.send_response(503 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/jobs?token=t0k3n"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
