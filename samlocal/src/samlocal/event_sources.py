"""The functions' event sources served by the local AWS endpoint, read from their `Events`.

- `Type: SQS`: Queue (an ARN), BatchSize (default 10), MaximumBatchingWindowInSeconds, Enabled,
  ScalingConfig.MaximumConcurrency, FunctionResponseTypes [ReportBatchItemFailures], FilterCriteria.
- `Type: S3`: Bucket (a bucket of the template), Events (one or a list), Filter.S3Key.Rules.
  A bucket's NotificationConfiguration.LambdaConfigurations to a function of the template count too.
Every other non-API event type is reported as not served (DynamoDB and Kinesis streams, schedules...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from samlocal.event_filters import FilterPatternError, validate
from samlocal.resources import BUCKET, QUEUE, LocalResource
from samlocal.template import Function

DEFAULT_BATCH_SIZE = 10
_NOT_SERVED = {
    "DynamoDB": "DynamoDB stream events are not served",
    "Kinesis": "Kinesis stream events are not served",
}


class EventSourceError(Exception):
    """An event source the template declares cannot be served as written."""


@dataclass(frozen=True)
class SqsEventSource:
    function_id: str
    event_id: str
    queue_arn: str
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window: float = 0.0
    enabled: bool = True
    maximum_concurrency: int | None = None
    report_batch_item_failures: bool = False
    # FilterCriteria's patterns, parsed (a message matching none is deleted without an invocation).
    filters: tuple[Mapping[str, Any], ...] = ()

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]

    @property
    def name(self) -> str:
        return f"{self.function_id}.{self.event_id}"


@dataclass(frozen=True)
class S3EventSource:
    function_id: str
    event_id: str
    bucket_id: str  # the bucket's logical id
    events: tuple[str, ...]
    filter: Mapping[str, Any] = field(default_factory=dict)  # the template's Filter: {S3Key: {Rules: [...]}}

    @property
    def name(self) -> str:
        return f"{self.function_id}.{self.event_id}"


@dataclass
class EventSources:
    sqs: list[SqsEventSource] = field(default_factory=list)
    s3: list[S3EventSource] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _integer(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as error:
        raise EventSourceError(f"{what} must be an integer, got {value!r}") from error


def _filters(criteria: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if not criteria:
        return ()
    patterns: list[Mapping[str, Any]] = []
    for item in (criteria or {}).get("Filters") or []:
        pattern = item.get("Pattern") if isinstance(item, Mapping) else None
        try:
            parsed = json.loads(pattern) if isinstance(pattern, str) else pattern
        except ValueError as error:
            raise EventSourceError(f"{where}: FilterCriteria pattern is not JSON: {pattern!r}") from error
        if not isinstance(parsed, Mapping):
            raise EventSourceError(f"{where}: a FilterCriteria pattern must be a JSON object, got {pattern!r}")
        try:
            validate(parsed)
        except FilterPatternError as error:
            raise EventSourceError(f"{where}: FilterCriteria pattern {pattern!r}: {error}") from error
        patterns.append(parsed)
    return tuple(patterns)


def sqs_event_source(function_id: str, event_id: str, properties: Mapping[str, Any]) -> SqsEventSource:
    where = f"{function_id}.{event_id}"
    queue = properties.get("Queue")
    if not isinstance(queue, str) or not queue.startswith("arn:"):
        raise EventSourceError(f"{where}: Queue must be a queue ARN (!GetAtt Queue.Arn), got {queue!r}")
    batch_size = _integer(properties.get("BatchSize", DEFAULT_BATCH_SIZE), f"{where}.BatchSize")
    if not 1 <= batch_size <= 10000:
        raise EventSourceError(f"{where}: BatchSize must be between 1 and 10000, got {batch_size}")
    window = _integer(properties.get("MaximumBatchingWindowInSeconds", 0), f"{where}.MaximumBatchingWindowInSeconds")
    if not 0 <= window <= 300:
        raise EventSourceError(f"{where}: MaximumBatchingWindowInSeconds must be between 0 and 300, got {window}")
    concurrency = (properties.get("ScalingConfig") or {}).get("MaximumConcurrency")
    maximum_concurrency = None
    if concurrency is not None:
        maximum_concurrency = _integer(concurrency, f"{where}.ScalingConfig.MaximumConcurrency")
        if not 2 <= maximum_concurrency <= 1000:
            raise EventSourceError(
                f"{where}: ScalingConfig.MaximumConcurrency must be between 2 and 1000, got {maximum_concurrency}"
            )
    response_types = properties.get("FunctionResponseTypes") or []
    return SqsEventSource(
        function_id=function_id,
        event_id=event_id,
        queue_arn=queue,
        batch_size=batch_size,
        batching_window=float(window),
        enabled=_true(properties.get("Enabled", True)),
        maximum_concurrency=maximum_concurrency,
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        filters=_filters(properties.get("FilterCriteria"), where),
    )


def read_event_sources(functions: Mapping[str, Function], resources: Mapping[str, LocalResource]) -> EventSources:
    """The SQS and S3 event sources of the functions, and a warning for each event type not served."""
    found = EventSources()
    buckets = {resource.name: resource for resource in resources.values() if resource.type == BUCKET}
    for function_id, function in functions.items():
        for event_id, event in function.events.items():
            event_type = str(event.get("Type"))
            properties = event.get("Properties") or {}
            where = f"{function_id}.{event_id}"
            if event_type == "SQS":
                found.sqs.append(sqs_event_source(function_id, event_id, properties))
            elif event_type == "S3":
                bucket = buckets.get(str(properties.get("Bucket")))
                if bucket is None:
                    raise EventSourceError(
                        f"{where}: Bucket must be a bucket of the template (!Ref Bucket), "
                        f"got {properties.get('Bucket')!r}"
                    )
                events = properties.get("Events")
                found.s3.append(
                    S3EventSource(
                        function_id,
                        event_id,
                        bucket.logical_id,
                        tuple(str(item) for item in (events if isinstance(events, list) else [events])),
                        properties.get("Filter") or {},
                    )
                )
            else:
                reason = _NOT_SERVED.get(event_type, f"{event_type} events are not served")
                found.warnings.append(f"{where}: {reason}")
    found.s3 += _lambda_configurations(functions, resources)
    return found


def _lambda_configurations(
    functions: Mapping[str, Function], resources: Mapping[str, LocalResource]
) -> list[S3EventSource]:
    """A bucket's NotificationConfiguration.LambdaConfigurations naming functions of the template."""
    # The bucket's properties were resolved before the functions: a GetAtt of one reads `<LogicalId>.Arn`.
    by_arn = {function.arn: function_id for function_id, function in functions.items()}
    by_arn.update({f"{function_id}.Arn": function_id for function_id in functions})
    found: list[S3EventSource] = []
    for bucket in resources.values():
        if bucket.type != BUCKET:
            continue
        configuration = bucket.properties.get("NotificationConfiguration") or {}
        for number, item in enumerate(configuration.get("LambdaConfigurations") or []):
            function_id = by_arn.get(str(item.get("Function")))
            if function_id is None:
                raise EventSourceError(
                    f"{bucket.logical_id}: LambdaConfigurations[{number}] names no function of the template: "
                    f"{item.get('Function')!r}"
                )
            event_id = f"{bucket.logical_id}Notification{number}"
            found.append(
                S3EventSource(function_id, event_id, bucket.logical_id, (str(item["Event"]),), item.get("Filter") or {})
            )
    return found


def queue_resource(source: SqsEventSource, resources: Mapping[str, LocalResource]) -> LocalResource | None:
    for resource in resources.values():
        if resource.type == QUEUE and resource.arn == source.queue_arn:
            return resource
    return None
