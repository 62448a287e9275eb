"""The SQS event source mapping: a queue polled for batches that invoke a function, as Lambda does.

- A batch is up to BatchSize messages: one receive (10 at most) when MaximumBatchingWindowInSeconds is 0,
  else receives until the batch is full or the window has passed since its first message.
- The function gets Lambda's SQS event: `Records` with messageId, receiptHandle, body, attributes
  (ApproximateReceiveCount, SentTimestamp, SenderId, ApproximateFirstReceiveTimestamp, and the FIFO ones),
  messageAttributes, md5OfBody, eventSource `aws:sqs`, eventSourceARN, awsRegion.
- Success deletes the batch; with `ReportBatchItemFailures`, every message but the `batchItemFailures`
  (an identifier that is empty or not in the batch fails the whole batch, as on AWS). A function error or
  timeout deletes nothing: the messages come back after the queue's visibility timeout, and after
  maxReceiveCount receives the queue's RedrivePolicy moves them to the dead-letter queue (the endpoint does).
- Up to ScalingConfig.MaximumConcurrency batches at once, and never more than the function's environments.
- FilterCriteria: a message whose record (its JSON body as an object) matches none of the patterns is deleted
  without an invocation, as on AWS.
- An event never exceeds Lambda's 6 MB invocation payload: a batch that would is split and its parts invoke
  the function one after the other, each deleting what it processed.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.console import Console
from samlocal.event_filters import matches_any
from samlocal.event_sources import SqsEventSource
from samlocal.queue_pollers import POLL_WAIT_SECONDS, Message, QueuePoller, error_summary
from samlocal.workers import FunctionPool, Outcome

_MAX_RECEIVE = 10
# Lambda's limit on an invocation's payload (bytes), which an event source mapping's event respects.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
_EVENT_OVERHEAD = len(json.dumps({"Records": []}))


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """An SQS message attribute as Lambda's event spells it."""
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def sqs_record(message: Message, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event for a message as ReceiveMessage returns it."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def filtered_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as filter patterns see it: a body holding JSON is matched as that JSON."""
    try:
        body = json.loads(record["body"])
    except ValueError:
        return dict(record)
    return {**record, "body": body}


def payload_chunks(records: Sequence[Mapping[str, Any]], limit: int = MAX_PAYLOAD_BYTES) -> list[list[int]]:
    """The records' indexes in consecutive groups whose `{"Records": [...]}` event fits `limit` bytes
    (a record too large on its own goes alone)."""
    chunks: list[list[int]] = []
    size = limit
    for index, record in enumerate(records):
        record_size = len(json.dumps(record)) + 2  # the separator
        if not chunks or size + record_size > limit:
            chunks.append([])
            size = _EVENT_OVERHEAD
        chunks[-1].append(index)
        size += record_size
    return chunks


def batch_failures(outcome: Outcome, message_ids: Sequence[str], report_item_failures: bool) -> tuple[set[str], str]:
    """The ids of the messages to leave on the queue after an invocation, and why."""
    everything = set(message_ids)
    if not outcome.ok:
        return everything, f"function error {error_summary(outcome)}"
    if not report_item_failures:
        return set(), ""
    try:
        response = json.loads(outcome.payload or b"null")
    except ValueError:
        return everything, "the response is not JSON"
    if not isinstance(response, Mapping):
        return set(), ""
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return set(), ""
    if not isinstance(failures, list):
        return everything, "batchItemFailures is not a list"
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything, f"batchItemFailures names {identifier!r}, not a message of the batch"
        failed.add(identifier)
    return failed, "batchItemFailures"


class SqsEventSourceMapping(QueuePoller):
    def __init__(self, source: SqsEventSource, pool: FunctionPool, endpoint: AwsEndpoint, console: Console) -> None:
        concurrency = min(source.maximum_concurrency or pool.size, pool.size)
        super().__init__(
            name=f"{source.queue_name} -> {source.function_id}",
            queue_name=source.queue_name,
            pool=pool,
            endpoint=endpoint,
            console=console,
            concurrency=concurrency,
        )
        self.source = source

    def describe(self) -> str:
        source = self.source
        settings = [f"batch size {source.batch_size}"]
        if source.batching_window:
            settings.append(f"batching window {source.batching_window:g} s")
        settings.append(f"up to {self.concurrency} batch(es) at once")
        if source.report_batch_item_failures:
            settings.append("ReportBatchItemFailures")
        if source.filters:
            settings.append(f"{len(source.filters)} filter pattern(s)")
        return f"SQS {source.queue_name} -> {source.function_id} ({', '.join(settings)})"

    def receive_batch(self) -> list[Message]:
        batch_size = self.source.batch_size
        messages = self.receive(min(_MAX_RECEIVE, batch_size), POLL_WAIT_SECONDS)
        if not messages or (self.source.batching_window == 0 and batch_size <= _MAX_RECEIVE):
            return messages
        deadline = time.monotonic() + self.source.batching_window
        while len(messages) < batch_size and not self.stopping:
            remaining = deadline - time.monotonic()
            if self.source.batching_window and remaining <= 0:
                break
            wait = min(POLL_WAIT_SECONDS, int(remaining)) if self.source.batching_window else 0
            more = self.receive(batch_size - len(messages), max(0, wait))
            if not more and not self.source.batching_window:
                break
            messages += more
        return messages

    def handle(self, messages: list[Message]) -> None:
        source = self.source
        records = [sqs_record(message, source.queue_arn, self.endpoint.region) for message in messages]
        if source.filters:
            kept = [matches_any(source.filters, filtered_record(record)) for record in records]
            dropped = [message for message, keep in zip(messages, kept, strict=True) if not keep]
            if dropped:
                refused = self.delete(dropped)
                self.console.access(
                    f"SQS {source.queue_name} -> {source.function_id}: {len(dropped) - len(refused)} message(s) "
                    "matching no FilterCriteria pattern deleted without an invocation"
                )
            messages = [message for message, keep in zip(messages, kept, strict=True) if keep]
            records = [record for record, keep in zip(records, kept, strict=True) if keep]
        chunks = payload_chunks(records)
        if len(chunks) > 1:
            self.console.access(
                f"SQS {source.queue_name} -> {source.function_id}: a batch of {len(records)} message(s) exceeds "
                f"Lambda's 6 MB payload, split into {len(chunks)} invocations"
            )
        for chunk in chunks:
            self._invoke_batch([messages[index] for index in chunk], [records[index] for index in chunk])

    def _invoke_batch(self, messages: list[Message], records: list[dict[str, Any]]) -> None:
        source = self.source
        payload = json.dumps({"Records": records}).encode()
        request_id, outcome = self.invoke(payload)
        head = f"SQS {source.queue_name} -> {source.function_id}: {len(messages)} message(s), request {request_id}"
        if outcome is None:
            if not self.stopping:
                self.console.access(
                    f"{head}: no free environment (throttled); the messages return after the "
                    f"{self.visibility_timeout} s visibility timeout"
                )
            return
        failed, reason = batch_failures(
            outcome, [record["messageId"] for record in records], source.report_batch_item_failures
        )
        succeeded = [message for message in messages if message["MessageId"] not in failed]
        refused = self.delete(succeeded) if succeeded else []
        summary = f"{len(succeeded) - len(refused)} deleted"
        if failed:
            summary += f", {len(failed)} left on the queue ({reason}), visible again after {self.visibility_timeout} s"
        if refused:
            summary += f", {len(refused)} could not be deleted (the visibility timeout expired during the invocation)"
        self.console.access(f"{head}: {summary}")
