"""Completion webhooks: one signed POST per job, retried with exponential backoff while the receiver fails,
delivered at least once even when the worker sending it dies (see `Webhooks`).

The body is the job's final status document as compact JSON (the same bytes on every attempt), with
`X-Webhook-Id: <job id>` to de-duplicate on; `X-Signature-256: sha256=<hex>` is the HMAC-SHA256 of
those exact bytes keyed with WEBHOOK_SECRET, so a receiver recomputes it over the raw body it received.
Webhook URLs follow the rules of image URLs (public addresses only unless the deployment allows a network).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from lambda_vision.errors import InputError
from lambda_vision.fetch import UrlFetcher

if TYPE_CHECKING:
    from lambda_vision.jobs.store import JobRecord, JobStore

SIGNATURE_HEADER = "X-Signature-256"
ID_HEADER = "X-Webhook-Id"  # the same on every attempt of a job's webhook (the job id): receivers de-duplicate on it
ATTEMPT_HEADER = "X-Webhook-Attempt"
# A receiver's answer that may succeed when sent again; any other 4xx is final.
RETRIABLE_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 30.0
RECORD_SECONDS = 2.0  # kept free at the end of a lease to record how the last attempt ended
MIN_ATTEMPT_SECONDS = 5.0  # an attempt is started only with this long left for it (or the whole POST timeout)

_log = logging.getLogger(__name__)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the signature over the raw body and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header)


@dataclass(frozen=True)
class WebhookAnswer:
    """How one attempt ended: the receiver's status code (None when it could not be reached) and a short
    reason when it failed: `http_503`, `url_unreachable`, ... (never the URL: it may carry a token)."""

    status_code: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retriable(self) -> bool:
        """Whether sending again may succeed: no answer, 5xx, or a 4xx that means "later"."""
        code = self.status_code
        return code is None or code >= 500 or code in RETRIABLE_STATUSES


class WebhookPendingError(RuntimeError):
    """The webhook has attempts left but its sender ran out of time: the message is to be delivered again."""


class WebhookSender:
    """One signed POST at a time; `Webhooks` decides when, how often and who sends."""

    def __init__(
        self,
        fetcher: UrlFetcher,
        secret: str,
        attempts: int = 5,
        backoff_seconds: float = 1.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.fetcher = fetcher
        self.secret = secret
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.timeout_seconds = timeout_seconds  # the longest one POST may take (the fetcher's total timeout)

    @staticmethod
    def body(document: dict[str, Any]) -> bytes:
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after the `attempt`-th failure."""
        return float(min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))

    def post(
        self, url: str, body: bytes, delivery_id: str, attempt: int, seconds: float | None = None
    ) -> WebhookAnswer:
        """One attempt, given at most `seconds` (and the fetcher's own timeout)."""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.secret, body),
            ID_HEADER: delivery_id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            deadline = None if seconds is None else time.monotonic() + seconds
            status = self.fetcher.post(url, body, headers, deadline)
        except InputError as failure:
            return WebhookAnswer(None, failure.code.value)
        return WebhookAnswer(status, None if 200 <= status < 300 else f"http_{status}")


class Webhooks:
    """Delivers a final job's webhook at least once, and exactly once unless a sender dies between the
    receiver's 2xx and recording it.

    The sender holds a lease in the job's record (an owner token, expiring when its invocation must end):
    a sender that dies leaves a lease that expires before SQS delivers its message again, and whoever then
    sees the job final with its webhook open takes the lease over. Attempts are counted before each POST,
    so the budget holds across senders; when it is spent, or the receiver refuses for good (a 4xx), the
    failure is recorded; when the sender runs out of time first, it ends its lease and raises
    `WebhookPendingError`, so the message comes back and the next delivery goes on."""

    def __init__(self, store: JobStore, sender: WebhookSender, new_owner: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.store = store
        self.sender = sender
        self.new_owner = new_owner

    def deliver(self, job: JobRecord, deadline: float) -> str | None:
        """Send the job's webhook if it is this caller's to send, before `deadline` (epoch seconds, the
        store's clock); the state it was left in, or None when it was not ours (done, or being sent)."""
        if not job.webhook or job.webhook_delivery.done:
            return None
        owner = self.new_owner()
        leased = self.store.claim_webhook(job.job_id, owner, deadline)
        if leased is None or not leased.webhook:
            return None
        sender, clock = self.sender, self.store.clock
        body = sender.body(leased.document(delivery=False))
        state = leased.webhook_delivery
        attempts = state.attempts
        # An earlier sender's last answer (None: it died during its attempt); its message waited long enough.
        last = WebhookAnswer(state.status_code, state.last_error) if attempts else None
        first = True
        needed = min(sender.timeout_seconds, MIN_ATTEMPT_SECONDS) + RECORD_SECONDS
        while attempts < sender.attempts and (last is None or last.retriable):
            delay = 0.0 if first else sender.backoff(attempts)
            if clock() + delay + needed > deadline:
                self._out_of_time(leased, owner, last)
            if delay:
                _log.info(
                    "webhook of job %s: attempt %d failed (%s); again in %.1f s", job.job_id, attempts, last, delay
                )
                sender.sleep(delay)
            started = self.store.start_webhook_attempt(job.job_id, owner, last)
            if started is None:
                return None  # the lease was taken over: this sender was presumed dead
            attempts, first = started, False
            last = sender.post(leased.webhook, body, job.job_id, attempts, deadline - RECORD_SECONDS - clock())
            if last.delivered and last.status_code is not None:
                self.store.webhook_delivered(job.job_id, last.status_code)
                _log.info("webhook of job %s delivered (attempt %d)", job.job_id, attempts)
                return "delivered"
        self.store.webhook_failed(job.job_id, owner, last)
        _log.warning("webhook of job %s failed after %d attempts (%s)", job.job_id, attempts, last)
        return "failed"

    def _out_of_time(self, job: JobRecord, owner: str, last: WebhookAnswer | None) -> NoReturn:
        self.store.release_webhook(job.job_id, owner, last)
        raise WebhookPendingError(
            f"the webhook of job {job.job_id} has attempts left but this invocation has no time for one more"
        )
