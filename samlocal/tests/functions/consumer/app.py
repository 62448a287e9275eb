"""A test function for event sources: it records every record it receives in a bucket of the local AWS
endpoint (reached through AWS_ENDPOINT_URL), then does what the message body asks.

An SQS message body is JSON: {"id": ..., "action": "ok" | "fail" | "raise" | "crash" | "sleep",
"until": N (act only on receives up to N; default: always), "seconds": S (for sleep)}. Records land under
`sqs/<id>/<receive count>`, S3 events under `s3/<key as the event spells it>/<time>`; an S3 event for a key
with `fail` in it raises after recording.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

s3 = boto3.client("s3")
RECORDS_BUCKET = os.environ["RECORDS_BUCKET"]


def _record(key: str, document: dict[str, Any]) -> None:
    s3.put_object(Bucket=RECORDS_BUCKET, Key=key, Body=json.dumps(document).encode())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:
        return {"statusCode": 200, "body": json.dumps(dict(os.environ))}
    records = event["Records"]
    batch = [record.get("messageId") for record in records]
    failures: list[dict[str, str]] = []
    for record in records:
        seen = {"record": record, "batch": batch, "function": context.function_name, "request": context.aws_request_id}
        if record.get("eventSource") == "aws:s3":
            key = record["s3"]["object"]["key"]
            _record(f"s3/{key}/{time.time_ns()}", seen)
            if "fail" in key:
                raise RuntimeError(f"object {key} fails")
            continue
        body = json.loads(record["body"])
        attempt = int(record["attributes"]["ApproximateReceiveCount"])
        _record(f"sqs/{body['id']}/{attempt}", seen)
        if attempt > int(body.get("until", 1_000_000)):
            continue
        action = body.get("action", "ok")
        if action == "fail":
            failures.append({"itemIdentifier": record["messageId"]})
        elif action == "raise":
            raise RuntimeError(f"message {body['id']} fails the whole batch")
        elif action == "crash":
            os._exit(7)
        elif action == "sleep":
            time.sleep(float(body["seconds"]))
    return {"batchItemFailures": failures}
