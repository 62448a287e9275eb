"""Creates the template's buckets, queues and tables on the local AWS endpoint, with their properties.

- Queues first, each dead-letter queue before the queues that redrive to it: VisibilityTimeout, DelaySeconds,
  MessageRetentionPeriod, MaximumMessageSize, ReceiveMessageWaitTimeSeconds, RedrivePolicy,
  RedriveAllowPolicy, FifoQueue, ContentBasedDeduplication, DeduplicationScope, FifoThroughputLimit, Tags.
- Tables: KeySchema, AttributeDefinitions, BillingMode and ProvisionedThroughput, secondary indexes,
  StreamSpecification, TimeToLiveSpecification, Tags; a SimpleTable's PrimaryKey.
- Buckets: VersioningConfiguration, Tags; NotificationConfiguration's QueueConfigurations (moto sends the
  S3 event to the queue itself, as S3 does), and notifications to functions (see `s3_events`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.resources import BUCKET, QUEUE, SIMPLE_TABLE, TABLE, LocalResource

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)
_KEY_TYPES = {"String": "S", "Number": "N", "Binary": "B"}


class ProvisionError(Exception):
    """A resource could not be created as the template declares it."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value)
    return str(value)


def _tags(properties: Mapping[str, Any]) -> list[dict[str, str]]:
    tags = properties.get("Tags") or []
    if isinstance(tags, Mapping):  # SAM resources take a map
        return [{"Key": str(key), "Value": str(value)} for key, value in tags.items()]
    return [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in tags if isinstance(tag, Mapping)]


def queue_attributes(properties: Mapping[str, Any]) -> dict[str, str]:
    attributes = {name: _text(properties[name]) for name in _QUEUE_ATTRIBUTES if name in properties}
    for name in ("RedrivePolicy", "RedriveAllowPolicy"):
        if name in properties:
            attributes[name] = _text(properties[name])
    return attributes


def _dead_letter_arn(resource: LocalResource) -> str | None:
    policy = resource.properties.get("RedrivePolicy")
    if isinstance(policy, str):
        policy = json.loads(policy)
    return str(policy.get("deadLetterTargetArn")) if isinstance(policy, Mapping) else None


def creation_order(queues: Sequence[LocalResource]) -> list[LocalResource]:
    """Every dead-letter queue before the queues that redrive to it."""
    by_arn = {queue.arn: queue for queue in queues}
    ordered: list[LocalResource] = []
    visiting: set[str] = set()

    def visit(queue: LocalResource) -> None:
        if queue in ordered:
            return
        if queue.logical_id in visiting:
            raise ProvisionError(f"{queue.logical_id}: its RedrivePolicy leads back to itself")
        visiting.add(queue.logical_id)
        target = by_arn.get(_dead_letter_arn(queue) or "")
        if target is not None:
            visit(target)
        ordered.append(queue)

    for queue in queues:
        visit(queue)
    return ordered


def _number_fields(value: Any) -> Any:
    """CloudFormation accepts numbers as strings; the DynamoDB API does not."""
    if isinstance(value, Mapping):
        return {
            key: int(item) if key.endswith(("CapacityUnits", "RequestUnits")) else _number_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_number_fields(item) for item in value]
    return value


def table_request(resource: LocalResource) -> dict[str, Any]:
    """The CreateTable request of an AWS::DynamoDB::Table or AWS::Serverless::SimpleTable."""
    properties = resource.properties
    request: dict[str, Any] = {"TableName": resource.name}
    if resource.type == SIMPLE_TABLE:
        key = properties.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        request["KeySchema"] = [{"AttributeName": key["Name"], "KeyType": "HASH"}]
        request["AttributeDefinitions"] = [
            {"AttributeName": key["Name"], "AttributeType": _KEY_TYPES.get(str(key.get("Type")), "S")}
        ]
        throughput = properties.get("ProvisionedThroughput")
    else:
        for name in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if name in properties:
                request[name] = _number_fields(properties[name])
        throughput = properties.get("ProvisionedThroughput")
        stream = properties.get("StreamSpecification")
        if isinstance(stream, Mapping) and stream.get("StreamViewType"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        if properties.get("TableClass"):
            request["TableClass"] = properties["TableClass"]
    billing = properties.get("BillingMode") or ("PROVISIONED" if throughput else "PAY_PER_REQUEST")
    request["BillingMode"] = billing
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _number_fields(
            throughput or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    tags = _tags(properties)
    if tags:
        request["Tags"] = tags
    return request


def notification_configuration(resource: LocalResource) -> list[dict[str, Any]]:
    """A bucket's QueueConfigurations as the S3 API spells them."""
    configuration = resource.properties.get("NotificationConfiguration") or {}
    return [
        queue_notification(str(item["Queue"]), str(item["Event"]), item.get("Filter"))
        for item in configuration.get("QueueConfigurations") or []
        if isinstance(item, Mapping)
    ]


def queue_notification(queue_arn: str, event: str, template_filter: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {"QueueArn": queue_arn, "Events": [event]}
    rules = ((template_filter or {}).get("S3Key") or {}).get("Rules") or []
    if rules:
        notification["Filter"] = {
            # S3 takes `prefix` and `Prefix`; moto only the lower-case spelling
            "Key": {"FilterRules": [{"Name": str(rule["Name"]).lower(), "Value": str(rule["Value"])} for rule in rules]}
        }
    return notification


class Provisioner:
    def __init__(self, endpoint: AwsEndpoint, resources: Mapping[str, LocalResource]) -> None:
        self.endpoint = endpoint
        self.resources = resources
        self.warnings: list[str] = []

    def _of_type(self, *types: str) -> list[LocalResource]:
        return [resource for resource in self.resources.values() if resource.type in types]

    def create(self) -> None:
        """Queues, then tables, then buckets (their notifications are configured by `notify`)."""
        from botocore.exceptions import ClientError  # noqa: PLC0415 - installed with moto

        current = ""
        try:
            for queue in creation_order(self._of_type(QUEUE)):
                current = queue.logical_id
                self._create_queue(queue)
            for table in self._of_type(TABLE, SIMPLE_TABLE):
                current = table.logical_id
                self._create_table(table)
            for bucket in self._of_type(BUCKET):
                current = bucket.logical_id
                self._create_bucket(bucket)
        except ClientError as error:
            raise ProvisionError(f"{current}: {error}") from error

    def _create_queue(self, queue: LocalResource) -> None:
        sqs = self.endpoint.client("sqs")
        request: dict[str, Any] = {"QueueName": queue.name, "Attributes": queue_attributes(queue.properties)}
        tags = _tags(queue.properties)
        if tags:
            request["tags"] = {tag["Key"]: tag["Value"] for tag in tags}
        sqs.create_queue(**request)

    def _create_table(self, table: LocalResource) -> None:
        dynamodb = self.endpoint.client("dynamodb")
        dynamodb.create_table(**table_request(table))
        ttl = table.properties.get("TimeToLiveSpecification")
        if isinstance(ttl, Mapping) and ttl.get("AttributeName"):
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": str(ttl.get("Enabled", True)).lower() == "true",
                },
            )

    def _create_bucket(self, bucket: LocalResource) -> None:
        s3 = self.endpoint.s3()
        if self.endpoint.region == "us-east-1":
            s3.create_bucket(Bucket=bucket.name)
        else:
            s3.create_bucket(
                Bucket=bucket.name,
                CreateBucketConfiguration={"LocationConstraint": self.endpoint.region},  # type: ignore[typeddict-item]
            )
        versioning = bucket.properties.get("VersioningConfiguration")
        if isinstance(versioning, Mapping) and versioning.get("Status"):
            s3.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": versioning["Status"]})
        tags = _tags(bucket.properties)
        if tags:
            s3.put_bucket_tagging(Bucket=bucket.name, Tagging={"TagSet": tags})  # type: ignore[typeddict-item]
        configuration = bucket.properties.get("NotificationConfiguration") or {}
        for kind in ("TopicConfigurations", "EventBridgeConfiguration"):
            if configuration.get(kind):
                self.warnings.append(f"{bucket.logical_id}: NotificationConfiguration.{kind} is not served")

    def notify(self, extra: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Sets every bucket's queue notifications: the template's, and `extra` ones by bucket logical id."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        s3 = self.endpoint.s3()
        for bucket in self._of_type(BUCKET):
            queues = notification_configuration(bucket) + [dict(item) for item in extra.get(bucket.logical_id, ())]
            if not queues:
                continue
            try:
                s3.put_bucket_notification_configuration(
                    Bucket=bucket.name,
                    NotificationConfiguration={"QueueConfigurations": queues},  # type: ignore[typeddict-item]
                )
            except ClientError as error:
                raise ProvisionError(f"{bucket.logical_id}: NotificationConfiguration: {error}") from error
