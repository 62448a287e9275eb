"""Sending messages to SQS ten at a time (SendMessageBatch's limit), retrying the entries SQS refused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lambda_vision.jobs.messages import ChunkMessage, FinishMessage, PlanMessage, encode

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

BATCH_LIMIT = 10
ATTEMPTS = 3


class QueueError(RuntimeError):
    """SQS kept refusing some messages."""


def send_messages(
    sqs: SQSClient, queue_url: str, messages: Sequence[ChunkMessage | PlanMessage | FinishMessage]
) -> None:
    bodies = [encode(message) for message in messages]
    for start in range(0, len(bodies), BATCH_LIMIT):
        entries = {str(index): body for index, body in enumerate(bodies[start : start + BATCH_LIMIT])}
        for _ in range(ATTEMPTS):
            response = sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in entries.items()],
            )
            failed = {entry["Id"] for entry in response.get("Failed", [])}
            entries = {entry_id: body for entry_id, body in entries.items() if entry_id in failed}
            if not entries:
                break
        else:
            raise QueueError(f"SQS refused {len(entries)} messages for {queue_url}")
