"""The template's S3 buckets, SQS queues and DynamoDB tables, as the local AWS endpoint holds them.

A resource's physical name is its name property (`BucketName`, `QueueName`, `TableName`) when the template
gives one, else one CloudFormation would generate: `<stack>-<LogicalId>-<SUFFIX>` (lower case for a bucket,
`.fifo` at the end of a FIFO queue). The suffix comes from the stack name and the logical id, so a resource
keeps its name from one run to the next. `Ref` and `Fn::GetAtt` resolve as on AWS:

- AWS::S3::Bucket: Ref is the name; Arn, DomainName, RegionalDomainName, DualStackDomainName, WebsiteURL.
- AWS::SQS::Queue: Ref is the queue URL on the local endpoint; Arn, QueueName, QueueUrl.
- AWS::DynamoDB::Table and AWS::Serverless::SimpleTable: Ref is the name; Arn, StreamArn (a table with a
  StreamSpecification).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samlocal.intrinsics import (
    ACCOUNT_ID,
    PSEUDO_PARAMETERS,
    PhysicalResource,
    Resolver,
    TemplateError,
    load_document,
)

BUCKET = "AWS::S3::Bucket"
QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
SIMPLE_TABLE = "AWS::Serverless::SimpleTable"
_NAME_PROPERTY = {BUCKET: "BucketName", QUEUE: "QueueName", TABLE: "TableName", SIMPLE_TABLE: "TableName"}
SERVED_TYPES = tuple(_NAME_PROPERTY)
# Function event sources that need the endpoint (DynamoDB streams are reported as not served).
ENDPOINT_EVENT_TYPES = frozenset({"SQS", "S3", "DynamoDB"})
_NAME_LIMITS = {BUCKET: 63, QUEUE: 80, TABLE: 255, SIMPLE_TABLE: 255}
# A table's stream label: fixed, so StreamArn is stable too.
_STREAM_LABEL = "1970-01-01T00:00:00.000"


@dataclass(frozen=True)
class LocalResource:
    logical_id: str
    type: str
    name: str
    physical: PhysicalResource
    # Resolved, with Ref/GetAtt of the other local resources (a RedrivePolicy names its DLQ's real ARN).
    properties: Mapping[str, Any]

    @property
    def arn(self) -> str:
        return self.physical.attributes["Arn"]


def _suffix(stack_name: str, logical_id: str) -> str:
    digest = hashlib.sha256(f"{stack_name}/{logical_id}".encode()).digest()
    return base64.b32encode(digest).decode()[:12]


def generated_name(resource_type: str, stack_name: str, logical_id: str, *, fifo: bool = False) -> str:
    """The name CloudFormation gives a resource the template does not name."""
    ending = f"-{_suffix(stack_name, logical_id)}" + (".fifo" if fifo else "")
    prefix = f"{stack_name}-{logical_id}"[: _NAME_LIMITS[resource_type] - len(ending)]
    name = prefix + ending
    return name.lower() if resource_type == BUCKET else name


def physical_resource(resource_type: str, name: str, *, endpoint_url: str, region: str) -> PhysicalResource:
    if resource_type == BUCKET:
        return PhysicalResource(
            name,
            {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
            },
        )
    if resource_type == QUEUE:
        url = f"{endpoint_url}/{ACCOUNT_ID}/{name}"  # the URL moto answers for a client of this endpoint
        return PhysicalResource(
            url, {"Arn": f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}", "QueueName": name, "QueueUrl": url}
        )
    arn = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"
    return PhysicalResource(name, {"Arn": arn, "StreamArn": f"{arn}/stream/{_STREAM_LABEL}"})


class ResourceReader:
    """Finds the buckets, queues and tables of a template, and the function events that need the endpoint."""

    def __init__(self, template_path: Path, parameter_overrides: Mapping[str, str] | None = None) -> None:
        self.template_path = template_path.resolve()
        document = load_document(self.template_path)
        self.document: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
        self.parameter_overrides = parameter_overrides
        self.resolver = Resolver(self.document, self.template_path.parent, parameter_overrides)
        resources = self.document.get("Resources")
        self.resources: Mapping[str, Any] = resources if isinstance(resources, Mapping) else {}
        self.declared = {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if isinstance(resource, Mapping) and resource.get("Type") in SERVED_TYPES and self._included(resource)
        }

    def _included(self, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.resolver.condition(str(condition))

    def event_types(self) -> set[str]:
        """The types of the functions' events (SAM does not allow Events in Globals)."""
        found: set[str] = set()
        for resource in self.resources.values():
            if not isinstance(resource, Mapping) or resource.get("Type") != "AWS::Serverless::Function":
                continue
            for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
                if isinstance(event, Mapping) and self._included(resource):
                    found.add(str(event.get("Type")))
        return found

    @property
    def needs_endpoint(self) -> bool:
        return bool(self.declared) or bool(self.event_types() & ENDPOINT_EVENT_TYPES)

    @property
    def stack_name(self) -> str:
        return str(PSEUDO_PARAMETERS["AWS::StackName"])

    def _name(self, logical_id: str, resource: Mapping[str, Any]) -> str:
        resource_type = str(resource["Type"])
        properties = resource.get("Properties") or {}
        given = self.resolver.resolve(properties.get(_NAME_PROPERTY[resource_type]))
        if given is not None:
            if not isinstance(given, str) or not given:
                raise TemplateError(f"{logical_id}: {_NAME_PROPERTY[resource_type]} must be a string, got {given!r}")
            return given
        fifo = resource_type == QUEUE and _true(self.resolver.resolve(properties.get("FifoQueue")))
        return generated_name(resource_type, self.stack_name, logical_id, fifo=fifo)

    def read(self, *, endpoint_url: str, region: str) -> dict[str, LocalResource]:
        """Every resource with its physical name and its properties resolved against the others."""
        physical = {
            logical_id: physical_resource(
                str(resource["Type"]), self._name(logical_id, resource), endpoint_url=endpoint_url, region=region
            )
            for logical_id, resource in self.declared.items()
        }
        resolver = Resolver(self.document, self.template_path.parent, self.parameter_overrides, physical=physical)
        found: dict[str, LocalResource] = {}
        for logical_id, resource in self.declared.items():
            properties = resolver.resolve(resource.get("Properties") or {})
            if not isinstance(properties, Mapping):
                raise TemplateError(f"{logical_id}: Properties must be a mapping")
            resource_type = str(resource["Type"])
            name = physical[logical_id].attributes.get("QueueName") or physical[logical_id].ref
            found[logical_id] = LocalResource(logical_id, resource_type, name, physical[logical_id], properties)
        return found


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
