"""Transactions through the local AWS endpoint: moto applies them on the items they name only, with DynamoDB's
all-or-nothing outcome, whatever else their tables hold."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend

from samlocal.aws_endpoint import AwsEndpoint
from samlocal.console import Console

JOB = {"pk": {"S": "job-1"}, "sk": {"S": "JOB"}}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[AwsEndpoint]:
    endpoint = AwsEndpoint(0, "us-east-1", Console(io.StringIO()))
    endpoint.start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def dynamodb(endpoint: AwsEndpoint, request: pytest.FixtureRequest) -> Iterator[Any]:
    client = endpoint.client("dynamodb")
    for name, keys in (("jobs", ("pk", "sk")), ("flags", ("pk",))):
        client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": key, "KeyType": kind}
                for key, kind in zip(keys, ("HASH", "RANGE")[: len(keys)], strict=True)
            ],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    client.put_item(TableName="jobs", Item={**JOB, "counted": {"N": "0"}, "note": {"S": "kept"}})
    # Markers under the job's partition, and items of other partitions.
    items = [{"pk": {"S": "job-1"}, "sk": {"S": f"CHUNK#{index:04d}"}} for index in range(300)]
    items += [{"pk": {"S": f"job-{index + 2}"}, "sk": {"S": "JOB"}} for index in range(300)]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={"jobs": requests})
    client.put_item(TableName="flags", Item={"pk": {"S": "flag"}, "on": {"BOOL": False}})
    yield client
    for name in ("jobs", "flags"):
        client.delete_table(TableName=name)


def _count_chunk(chunk: str) -> list[dict[str, Any]]:
    return [
        {
            "Put": {
                "TableName": "jobs",
                "Item": {"pk": {"S": "job-1"}, "sk": {"S": f"CHUNK#{chunk}"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": "jobs",
                "Key": JOB,
                "UpdateExpression": "ADD counted :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]


def _items(client: Any, table: str) -> list[dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return sorted((item for page in pages for item in page["Items"]), key=repr)


def test_a_transaction_applies_every_operation_and_leaves_the_rest_of_its_tables(dynamodb: Any) -> None:
    assert getattr(DynamoDBBackend.transact_write_items, "only_named_items", False), "the endpoint's own is served"
    before = _items(dynamodb, "jobs")
    dynamodb.transact_write_items(
        TransactItems=[
            *_count_chunk("new"),
            {"Delete": {"TableName": "jobs", "Key": {"pk": {"S": "job-2"}, "sk": {"S": "JOB"}}}},
            {
                "Update": {
                    "TableName": "flags",
                    "Key": {"pk": {"S": "flag"}},
                    "UpdateExpression": "SET #on = :true",
                    "ExpressionAttributeNames": {"#on": "on"},
                    "ExpressionAttributeValues": {":true": {"BOOL": True}},
                }
            },
            {"Put": {"TableName": "flags", "Item": {"pk": {"S": "other"}}}},
        ]
    )
    after = _items(dynamodb, "jobs")
    assert len(after) == len(before)  # one marker more, one job less
    assert {"pk": {"S": "job-1"}, "sk": {"S": "CHUNK#new"}} in after
    assert {"pk": {"S": "job-2"}, "sk": {"S": "JOB"}} not in after
    job = dynamodb.get_item(TableName="jobs", Key=JOB, ConsistentRead=True)["Item"]
    assert (job["counted"], job["note"]) == ({"N": "1"}, {"S": "kept"})
    changed = [item for item in after if item not in before]
    assert changed == sorted([{"pk": {"S": "job-1"}, "sk": {"S": "CHUNK#new"}}, job], key=repr)
    assert _items(dynamodb, "flags") == [{"on": {"BOOL": True}, "pk": {"S": "flag"}}, {"pk": {"S": "other"}}]


def test_a_cancelled_transaction_changes_nothing(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=_count_chunk("0999"))
    before = {table: _items(dynamodb, table) for table in ("jobs", "flags")}
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "job-new"}, "sk": {"S": "JOB"}}}},
                {"Delete": {"TableName": "flags", "Key": {"pk": {"S": "flag"}}}},
                *_count_chunk("0999"),  # counted already: its condition fails
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed", "None"]
    assert {table: _items(dynamodb, table) for table in ("jobs", "flags")} == before
    job = dynamodb.get_item(TableName="jobs", Key=JOB, ConsistentRead=True)["Item"]
    assert job["counted"] == {"N": "1"}


def test_each_chunk_is_counted_once_however_often_it_comes(dynamodb: Any) -> None:
    outcomes = []
    for chunk in ["a", "b", "a", "c", "b", "a"]:
        try:
            dynamodb.transact_write_items(TransactItems=_count_chunk(chunk))
            outcomes.append("counted")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    assert (
        outcomes == ["counted"] * 2 + ["TransactionCanceledException", "counted"] + ["TransactionCanceledException"] * 2
    )
    job = dynamodb.get_item(TableName="jobs", Key=JOB, ConsistentRead=True)["Item"]
    assert job["counted"] == {"N": "3"}
    assert len(_items(dynamodb, "jobs")) == 1 + 300 + 300 + 3


def test_a_transaction_refused_before_writing_changes_nothing(dynamodb: Any) -> None:
    before = _items(dynamodb, "jobs")
    with pytest.raises(ClientError) as raised:  # two operations on one item
        dynamodb.transact_write_items(TransactItems=[*_count_chunk("z"), *_count_chunk("z")[1:]])
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _items(dynamodb, "jobs") == before
