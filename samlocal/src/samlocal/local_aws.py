"""Local AWS for a template: the endpoint, the resources created on it, and the event sources it drives.

Started when the template declares buckets, queues or tables, or a function has SQS, S3 or DynamoDB events
(and not with --no-aws). The order matters: the endpoint binds its port first (queue URLs name it), the
template's Refs then resolve to the physical names, the resources are created before any function runs,
and the pollers start with the API.
"""

from __future__ import annotations

from collections.abc import Mapping

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.console import Console
from samlocal.event_sources import EventSourceError, EventSources, queue_resource, read_event_sources
from samlocal.intrinsics import PhysicalResource
from samlocal.provision import Provisioner
from samlocal.resources import BUCKET, QUEUE, LocalResource, ResourceReader
from samlocal.s3_notifications import S3NotificationDelivery, async_invoke_config, bucket_notifications
from samlocal.sqs_mapping import SqsEventSourceMapping
from samlocal.template import Stack
from samlocal.workers import FunctionPool


class LocalAws:
    def __init__(self, reader: ResourceReader, *, port: int, region: str, console: Console) -> None:
        self.console = console
        self.endpoint = AwsEndpoint(port, region, console)
        self.resources: dict[str, LocalResource] = reader.read(endpoint_url=self.endpoint.url, region=region)
        self.event_sources = EventSources()
        self.mappings: list[SqsEventSourceMapping] = []
        self.deliveries: list[S3NotificationDelivery] = []
        self.warnings: list[str] = []

    @property
    def physical(self) -> dict[str, PhysicalResource]:
        """What the template's Refs and GetAtts of the local resources resolve to."""
        return {logical_id: resource.physical for logical_id, resource in self.resources.items()}

    def function_environment(self) -> dict[str, str]:
        return self.endpoint.function_environment()

    def connect(self, stack: Stack, pools: Mapping[str, FunctionPool]) -> None:
        """Creates the resources and the event source mappings of the stack's functions."""
        self.endpoint.start()
        provisioner = Provisioner(self.endpoint, self.resources)
        provisioner.create()
        self.event_sources = read_event_sources(stack.functions, self.resources)
        self.warnings += provisioner.warnings + self.event_sources.warnings
        sqs = self.endpoint.client("sqs")
        for source in self.event_sources.sqs:
            queue = queue_resource(source, self.resources)
            if queue is None:
                # A queue of another stack (an ARN parameter): an empty one of that name stands in for it.
                sqs.create_queue(QueueName=source.queue_name)
                self.warnings.append(f"{source.name}: queue {source.queue_name} is not in the template, created empty")
            pool = pools.get(source.function_id)
            if pool is None:
                raise EventSourceError(f"{source.name}: {source.function_id} is not a function served locally")
            if not source.enabled:
                self.warnings.append(
                    f"{source.name}: the mapping is disabled (Enabled: false), the queue is not polled"
                )
                continue
            visibility = float((queue.properties if queue else {}).get("VisibilityTimeout", 30))
            if visibility < pool.function.timeout:  # AWS refuses to create such a mapping
                self.warnings.append(
                    f"{source.name}: the queue's visibility timeout ({visibility:g} s) is below the function's "
                    f"timeout ({pool.function.timeout:g} s): a batch still running reappears and runs twice"
                )
            mapping = SqsEventSourceMapping(source, pool, self.endpoint, self.console)
            if source.maximum_concurrency and source.maximum_concurrency > pool.size:
                self.warnings.append(
                    f"{source.name}: MaximumConcurrency {source.maximum_concurrency} is above the function's "
                    f"{pool.size} environment(s); raise it with --max-concurrency {source.function_id}="
                    f"{source.maximum_concurrency}"
                )
            self.mappings.append(mapping)
        provisioner.notify(self._s3_deliveries(stack, pools))

    def _s3_deliveries(self, stack: Stack, pools: Mapping[str, FunctionPool]) -> dict[str, list[dict[str, object]]]:
        """A delivery (internal queue and poller) per S3 event source; the bucket notifications that feed them."""
        notifications: dict[str, list[dict[str, object]]] = {}
        configs = {}
        for source in self.event_sources.s3:
            pool = pools.get(source.function_id)
            if pool is None:
                raise EventSourceError(f"{source.name}: {source.function_id} is not a function served locally")
            if source.function_id not in configs:
                configs[source.function_id], warnings = async_invoke_config(
                    source.function_id, pool.function.event_invoke_config
                )
                self.warnings += warnings
            bucket = self.resources[source.bucket_id]
            delivery = S3NotificationDelivery(
                source,
                bucket_name=bucket.name,
                config=configs[source.function_id],
                pool=pool,
                endpoint=self.endpoint,
                console=self.console,
            )
            delivery.create_queue()
            self.deliveries.append(delivery)
            notifications.setdefault(source.bucket_id, []).extend(bucket_notifications(source, self.endpoint.region))
        return notifications

    def describe(self) -> list[str]:
        lines = [f"AWS endpoint (S3, SQS, DynamoDB) on {self.endpoint.url}, region {self.endpoint.region}"]
        for resource in self.resources.values():
            shown = resource.physical.ref if resource.type == QUEUE else resource.name
            kind = {BUCKET: "bucket", QUEUE: "queue"}.get(resource.type, "table")
            lines.append(f"  {resource.logical_id}: {kind} {shown}")
        lines += [f"  {mapping.describe()}" for mapping in self.mappings]
        lines += [f"  {delivery.describe()}" for delivery in self.deliveries]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return lines

    def start(self) -> None:
        for poller in [*self.mappings, *self.deliveries]:
            poller.start()

    def stop(self) -> None:
        """Pollers first (no new invocations), then the endpoint."""
        for poller in [*self.mappings, *self.deliveries]:
            poller.stop()
        self.endpoint.stop()
