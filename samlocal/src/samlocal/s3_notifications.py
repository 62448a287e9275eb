"""S3 event notifications to functions (`Events: Type: S3`, a bucket's LambdaConfigurations), as Lambda delivers them.

S3 invokes a function asynchronously, one event per invocation. Locally every S3 event source gets an
internal queue on the endpoint (`samlocal-s3-<Function>-<Event>`) and its bucket a QueueConfiguration to it
with the source's events and key filter: moto's server matches the object against them and sends S3's event
itself. A poller receives each event, completes it to the record Lambda delivers (userIdentity,
requestParameters, responseElements, the bucket's ownerIdentity, the object's sequencer) and invokes the
function with it in the same environments as the API.

An invocation that fails (function error, timeout, crash) is retried `MaximumRetryAttempts` times
(EventInvokeConfig, default 2 as on Lambda), after 1 s then 2 s (Lambda waits about 1 then 2 minutes).
An event older than `MaximumEventAgeInSeconds` is not retried. Then it goes to the `DestinationConfig.OnFailure`
SQS queue as Lambda's invocation record, or is dropped with a console line; a success goes to
`OnSuccess` when one is configured. Other destination types (SNS, EventBridge, Lambda, S3) are not served.
A throttled event (no free environment) waits for one without counting as an attempt.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.console import Console
from samlocal.event_sources import EventSourceError, S3EventSource
from samlocal.intrinsics import ACCOUNT_ID
from samlocal.provision import queue_notification
from samlocal.queue_pollers import Message, QueuePoller, error_summary
from samlocal.workers import INIT_TIME_LIMIT, FunctionPool, Outcome

DEFAULT_RETRY_ATTEMPTS = 2
RETRY_DELAYS = (1, 2)  # seconds before the first and the second retry
_THROTTLE_PAUSE = 1
_PRINCIPAL = "AWS:LOCAL"


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """A function's EventInvokeConfig: retries of asynchronous invocations and where their outcomes go."""

    maximum_retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    maximum_event_age: float = 21600.0
    on_failure_queue: str | None = None  # a queue's name
    on_success_queue: str | None = None


def async_invoke_config(function_id: str, config: Mapping[str, Any]) -> tuple[AsyncInvokeConfig, list[str]]:
    """The function's EventInvokeConfig, and a warning for each part not served."""
    warnings: list[str] = []
    attempts = config.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS)
    age = config.get("MaximumEventAgeInSeconds", 21600)
    try:
        attempts, age = int(attempts), int(age)
    except (TypeError, ValueError) as error:
        raise EventSourceError(f"{function_id}.EventInvokeConfig: {error}") from error
    if not 0 <= attempts <= 2:
        raise EventSourceError(
            f"{function_id}.EventInvokeConfig: MaximumRetryAttempts must be 0, 1 or 2, got {attempts}"
        )
    if not 60 <= age <= 21600:
        raise EventSourceError(
            f"{function_id}.EventInvokeConfig: MaximumEventAgeInSeconds must be between 60 and 21600, got {age}"
        )
    queues: dict[str, str | None] = {"OnFailure": None, "OnSuccess": None}
    destinations = config.get("DestinationConfig") or {}
    for condition in queues:
        destination = destinations.get(condition)
        if not isinstance(destination, Mapping):
            continue
        arn = destination.get("Destination")
        if destination.get("Type") == "SQS" and isinstance(arn, str) and arn.startswith("arn:aws:sqs:"):
            queues[condition] = arn.rsplit(":", 1)[-1]
        else:
            warnings.append(
                f"{function_id}.EventInvokeConfig: the {condition} destination {destination.get('Type')} "
                f"{arn or '(created by SAM)'} is not served (only SQS queues given by ARN)"
            )
    return AsyncInvokeConfig(attempts, float(age), queues["OnFailure"], queues["OnSuccess"]), warnings


def internal_queue_name(source: S3EventSource) -> str:
    return f"samlocal-s3-{source.function_id}-{source.event_id}"[:80]


def bucket_notifications(source: S3EventSource, region: str) -> list[dict[str, Any]]:
    """The QueueConfigurations that send the source's events to its internal queue."""
    arn = f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{internal_queue_name(source)}"
    return [queue_notification(arn, event, source.filter) for event in source.events]


def lambda_record(record: Mapping[str, Any], sequencer: str) -> dict[str, Any]:
    """An S3 event record as the S3 server sends it, completed with what S3 adds for Lambda."""
    completed: dict[str, Any] = {
        **record,
        "userIdentity": {"principalId": _PRINCIPAL},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
            "x-amz-id-2": uuid.uuid4().hex + uuid.uuid4().hex,
        },
    }
    s3 = dict(record.get("s3") or {})
    s3["bucket"] = {**(s3.get("bucket") or {}), "ownerIdentity": {"principalId": _PRINCIPAL}}
    s3_object = dict(s3.get("object") or {})
    # S3 form-encodes the key but keeps its slashes (the server encodes them too)
    s3_object["key"] = quote_plus(unquote_plus(str(s3_object.get("key", ""))), safe="/")
    s3["object"] = {**s3_object, "sequencer": sequencer}
    completed["s3"] = s3
    return completed


def invocation_record(
    function_arn: str,
    *,
    request_id: str,
    payload: Any,
    outcome: Outcome,
    attempts: int,
    condition: str,
) -> dict[str, Any]:
    """The document Lambda sends to an asynchronous invocation's destination."""
    try:
        response: Any = json.loads(outcome.payload) if outcome.payload else None
    except ValueError:
        response = outcome.payload.decode(errors="replace")
    context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if not outcome.ok:
        context["functionError"] = "Unhandled"
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload,
        "responseContext": context,
        "responsePayload": response,
    }


class S3NotificationDelivery(QueuePoller):
    """Polls a source's internal queue and invokes its function with each S3 event, retrying failures."""

    def __init__(
        self,
        source: S3EventSource,
        *,
        bucket_name: str,
        config: AsyncInvokeConfig,
        pool: FunctionPool,
        endpoint: AwsEndpoint,
        console: Console,
    ) -> None:
        super().__init__(
            name=f"S3 {bucket_name} -> {source.function_id}",
            queue_name=internal_queue_name(source),
            pool=pool,
            endpoint=endpoint,
            console=console,
            concurrency=pool.size,
        )
        self.source = source
        self.bucket_name = bucket_name
        self.config = config
        # message id -> (request id, failed attempts so far): Lambda's retries keep the first request id
        self._failures: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._sequence = 0

    def create_queue(self) -> None:
        """The internal queue, its visibility long enough for an invocation to end before it shows again."""
        visibility = int(self.function.timeout + INIT_TIME_LIMIT) + 60
        self.sqs.create_queue(QueueName=self.queue_name, Attributes={"VisibilityTimeout": str(visibility)})

    def describe(self) -> str:
        source = self.source
        rules = ((source.filter or {}).get("S3Key") or {}).get("Rules") or []
        keys = " ".join(f"{rule.get('Name')}={rule.get('Value')}" for rule in rules)
        retries = f"{self.config.maximum_retry_attempts} retries"
        if self.config.on_failure_queue:
            retries += f", then to {self.config.on_failure_queue}"
        return (
            f"S3 {self.bucket_name} {','.join(source.events)}{' ' + keys if keys else ''} -> {source.function_id} "
            f"(asynchronous, {retries})"
        )

    def _sequencer(self) -> str:
        with self._lock:
            self._sequence += 1
            return f"{time.time_ns():016X}{self._sequence:04X}"

    def handle(self, messages: list[Message]) -> None:
        for message in messages:
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        try:
            event = json.loads(message["Body"])
        except ValueError:
            event = None
        if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
            self.delete([message])  # s3:TestEvent and anything else that is not an event
            return
        records = [lambda_record(record, self._sequencer()) for record in event["Records"]]
        payload = {"Records": records}
        keys = ", ".join(str(record["s3"]["object"].get("key")) for record in records)
        head = f"S3 {records[0].get('eventName')} {self.bucket_name}/{keys} -> {self.source.function_id}"
        with self._lock:
            request_id, failures = self._failures.setdefault(message["MessageId"], (str(uuid.uuid4()), 0))
        request_id, outcome = self.invoke(json.dumps(payload).encode(), request_id)
        if outcome is None:
            if not self.stopping:
                self.console.access(f"{head}: no free environment (throttled), retried")
                self._make_visible(message, _THROTTLE_PAUSE)
            return
        failures += 0 if outcome.ok else 1
        with self._lock:
            self._failures[message["MessageId"]] = (request_id, failures)
        attempts = failures + (1 if outcome.ok else 0)
        if outcome.ok:
            self.console.access(f"{head}: request {request_id}, attempt {attempts}, succeeded")
            self._finish(
                message,
                payload=payload,
                request_id=request_id,
                outcome=outcome,
                attempts=attempts,
                condition="Success",
                destination=self.config.on_success_queue,
            )
            return
        sent = float(message.get("Attributes", {}).get("SentTimestamp", time.time() * 1000)) / 1000
        too_old = time.time() - sent >= self.config.maximum_event_age
        if failures <= self.config.maximum_retry_attempts and not too_old:
            delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
            self.console.access(
                f"{head}: request {request_id}, attempt {attempts} failed ({error_summary(outcome)}), "
                f"retried in {delay} s"
            )
            self._make_visible(message, delay)
            return
        condition = "EventAgeExceeded" if too_old else "RetriesExhausted"
        where = (
            f"sent to {self.config.on_failure_queue}"
            if self.config.on_failure_queue
            else "dropped (no OnFailure destination)"
        )
        self.console.access(
            f"{head}: request {request_id}, attempt {attempts} failed ({error_summary(outcome)}); "
            f"{condition}, the event is {where}"
        )
        self._finish(
            message,
            payload=payload,
            request_id=request_id,
            outcome=outcome,
            attempts=attempts,
            condition=condition,
            destination=self.config.on_failure_queue,
        )

    def _finish(
        self,
        message: Message,
        *,
        payload: Any,
        request_id: str,
        outcome: Outcome,
        attempts: int,
        condition: str,
        destination: str | None,
    ) -> None:
        if destination:
            record = invocation_record(
                self.function.arn,
                request_id=request_id,
                payload=payload,
                outcome=outcome,
                attempts=attempts,
                condition=condition,
            )
            url = self.sqs.get_queue_url(QueueName=destination)["QueueUrl"]
            self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        self.delete([message])
        with self._lock:
            self._failures.pop(message["MessageId"], None)

    def _make_visible(self, message: Message, delay: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
        )
