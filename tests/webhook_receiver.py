"""A webhook receiver on 127.0.0.1 for tests: records every POST (headers and raw body); can fail on purpose,
or hold POSTs unanswered until told to let them go."""

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
    deliveries: list[Delivery] = field(default_factory=list)  # the POSTs answered 204
    received: list[Delivery] = field(default_factory=list)  # every POST, answered or not
    failures_left: int = 0  # answer `failure_status` to this many POSTs first
    failure_status: int = 503
    attempts: int = 0
    holds_left: int = 0  # hold this many POSTs unanswered until `release` is set, then answer 503
    held: threading.Event = field(default_factory=threading.Event)  # a POST is being held
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def webhook_receiver(failures: int = 0, failure_status: int = 503, holds: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(url="", failures_left=failures, failure_status=failure_status, holds_left=holds)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            delivery = Delivery(self.path, dict(self.headers.items()), body)
            with lock:
                receiver.attempts += 1
                receiver.received.append(delivery)
                holding = receiver.holds_left > 0
                receiver.holds_left -= holding
                failing = not holding and receiver.failures_left > 0
                receiver.failures_left -= failing
                if not holding and not failing:
                    receiver.deliveries.append(delivery)
            if holding:
                receiver.held.set()
                receiver.release.wait(timeout=120)
            try:
                self.send_response(receiver.failure_status if failing else 503 if holding else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # a held POST whose sender is gone
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/jobs?token=t0k3n"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
