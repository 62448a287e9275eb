"""Pollers of a queue on the local AWS endpoint that hand what they receive to a function's environments.

A poller is a few threads, each invoking the function through its `FunctionPool`, the same execution
environments the API uses, one invocation at a time per thread. They take turns at receiving: one long poll
is out at a time, and a thread that received hands the turn on before it invokes, so an idle queue costs one
request a second whatever the concurrency, and a busy one still has every thread invoking at once. What a
batch becomes (an SQS event, S3 events) and which messages are deleted afterwards is the subclass's business.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.console import Console
from samlocal.events import random_uuid, trace_id
from samlocal.workers import INIT_TIME_LIMIT, FunctionPool, Invocation, Outcome, PoolClosedError

# Short long polls: a stopping emulator never waits long for its pollers.
POLL_WAIT_SECONDS = 1
_RETRY_PAUSE = 1.0
Message = dict[str, Any]


class QueuePoller:
    def __init__(
        self,
        *,
        name: str,
        queue_name: str,
        pool: FunctionPool,
        endpoint: AwsEndpoint,
        console: Console,
        concurrency: int,
    ) -> None:
        self.name = name
        self.queue_name = queue_name
        self.pool = pool
        self.function = pool.function
        self.endpoint = endpoint
        self.console = console
        self.concurrency = max(1, concurrency)
        self.sqs = endpoint.client("sqs")  # boto3 clients are safe to share between threads
        self.queue_url = ""
        self.visibility_timeout = 30
        self._stopping = threading.Event()
        self._receiving = threading.Lock()  # the turn to long-poll
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.queue_url = self.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])
        self.visibility_timeout = int(attributes["Attributes"].get("VisibilityTimeout", 30))
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"{self.name}-{number + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=POLL_WAIT_SECONDS + 1)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - installed with moto

        while not self.stopping:
            try:
                with self._receiving:
                    if self.stopping:
                        return
                    messages = self.receive_batch()
                if messages:
                    self.handle(messages)
            except PoolClosedError:
                return
            except Exception as error:  # noqa: BLE001 - as Lambda's pollers, this one never stops polling
                if self.stopping:
                    return
                if isinstance(error, (BotoCoreError, ClientError)):
                    self.console.info(f"{self.name}: {error}")
                else:  # not the SDK's: its text may quote anything
                    self.console.info(f"{self.name}: polling failed ({type(error).__name__}); polling again")
                self._stopping.wait(_RETRY_PAUSE)

    def receive(self, count: int, wait_seconds: int) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[Message] = response.get("Messages", [])
        return messages

    def receive_batch(self) -> list[Message]:
        return self.receive(1, POLL_WAIT_SECONDS)

    def handle(self, messages: list[Message]) -> None:
        raise NotImplementedError

    def invoke(self, payload: bytes, request_id: str | None = None) -> tuple[str, Outcome | None]:
        """Invokes the function with `payload` in one of its environments; None if none became free within the
        queue's visibility timeout (throttled) or the emulator is stopping."""
        invocation = Invocation(request_id or random_uuid(), payload, self.function.timeout, trace_id(time.time()))
        if not self.pool.invoke(invocation, time.monotonic() + self.visibility_timeout):
            return invocation.request_id, None
        # The watchdog ends the invocation at the function's timeout (or the init limit): this wait is a backstop.
        give_up = time.monotonic() + self.function.timeout + INIT_TIME_LIMIT + 60
        while not self.stopping and time.monotonic() < give_up:
            outcome = invocation.wait(1.0)
            if outcome is not None:
                return invocation.request_id, outcome
        return invocation.request_id, None

    def delete(self, messages: Sequence[Message]) -> list[str]:
        """Deletes the messages; the ids of those SQS refused to delete (an expired receipt handle)."""
        refused: list[str] = []
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                    for number, message in enumerate(chunk)
                ],
            )
            refused += [chunk[int(entry["Id"])]["MessageId"] for entry in response.get("Failed", [])]
        return refused


def error_summary(outcome: Outcome) -> str:
    """`errorType: errorMessage` of a function error (the runtime reports Unhandled; the payload says what)."""
    try:
        document = json.loads(outcome.payload)
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("errorType"):
        message = str(document.get("errorMessage") or "")
        return f"{document['errorType']}: {message[:300]}" if message else str(document["errorType"])
    return str(outcome.error_type)
