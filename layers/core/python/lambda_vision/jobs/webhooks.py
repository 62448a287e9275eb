"""Completion webhooks: one signed POST per job, retried with exponential backoff while the receiver fails.

The body is the job's status document as compact JSON; `X-Signature-256: sha256=<hex>` is the HMAC-SHA256 of
those exact bytes keyed with WEBHOOK_SECRET, so a receiver recomputes it over the raw body it received.
Webhook URLs follow the rules of image URLs (public addresses only unless the deployment allows a network).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambda_vision.errors import InputError
from lambda_vision.fetch import UrlFetcher

SIGNATURE_HEADER = "X-Signature-256"
# A receiver's answer that may succeed when sent again; any other 4xx is final.
RETRIABLE_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 30.0

_log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature over the raw body and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True)
class Delivery:
    state: str  # "delivered" or "failed"
    attempts: int
    status_code: int | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"state": self.state, "attempts": self.attempts, "status_code": self.status_code}
        if self.error:
            result["error"] = self.error
        return result


class WebhookSender:
    def __init__(
        self,
        fetcher: UrlFetcher,
        secret: str,
        attempts: int = 5,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fetcher = fetcher
        self.secret = secret
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def send(self, url: str, document: dict[str, Any]) -> Delivery:
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret, body),
            "X-Lambda-Vision-Job": str(document.get("job_id", "")),
        }
        status: int | None = None
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                status = self.fetcher.post(url, body, headers)
                error = None
            except InputError as failure:
                status, error = None, failure.code.value
            if status is not None and 200 <= status < 300:
                return Delivery("delivered", attempt, status)
            if status is not None and status < 500 and status not in RETRIABLE_STATUSES:
                break
            if attempt < self.attempts:
                delay = min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                _log.info("webhook attempt %d failed (%s); retrying in %.1f s", attempt, status or error, delay)
                self.sleep(delay)
        return Delivery("failed", attempt, status, error)
