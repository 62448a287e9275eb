"""What travels on the queues: work chunks, planning steps, finish requests, and S3's own notifications.

Every message names its job and, for a chunk, a chunk id derived from where its images were listed
(page and position), so a message sent twice, or delivered twice, is recognised as the same work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from lambda_vision.jobs.locations import LocationError, S3Location


class MessageError(ValueError):
    """A message body this service did not write (or no longer understands)."""


@dataclass(frozen=True)
class WorkItem:
    """One image of a job: an S3 object or a URL; `key` is how result lines name it."""

    key: str
    s3: S3Location | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.s3 is not None:
            return {"key": self.key, "s3": self.s3.uri}
        return {"key": self.key, "url": self.url}

    @classmethod
    def from_json(cls, item: Any) -> WorkItem:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise MessageError(f"work item {item!r} has no key")
        if isinstance(item.get("s3"), str):
            try:
                return cls(item["key"], s3=S3Location.parse(item["s3"]))
            except LocationError as error:
                raise MessageError(str(error)) from None
        if isinstance(item.get("url"), str):
            return cls(item["key"], url=item["url"])
        raise MessageError(f"work item {item['key']!r} has neither s3 nor url")


@dataclass(frozen=True)
class ChunkMessage:
    job_id: str
    chunk_id: str
    items: tuple[WorkItem, ...]


@dataclass(frozen=True)
class PlanMessage:
    job_id: str
    page: int
    token: str | None  # S3's continuation token of this page; None for the first


@dataclass(frozen=True)
class FinishMessage:
    job_id: str


@dataclass(frozen=True)
class DroppedObjects:
    """An S3 event notification: objects created under the drop prefix."""

    objects: tuple[S3Location, ...]


Message = ChunkMessage | PlanMessage | FinishMessage | DroppedObjects


def chunk_id(page: int, index: int) -> str:
    return f"p{page:06d}-c{index:04d}"


def encode(message: ChunkMessage | PlanMessage | FinishMessage) -> str:
    body: dict[str, Any]
    if isinstance(message, ChunkMessage):
        body = {
            "kind": "chunk",
            "job_id": message.job_id,
            "chunk": message.chunk_id,
            "items": [item.to_json() for item in message.items],
        }
    elif isinstance(message, PlanMessage):
        body = {"kind": "plan", "job_id": message.job_id, "page": message.page, "token": message.token}
    else:
        body = {"kind": "finish", "job_id": message.job_id}
    return json.dumps(body, separators=(",", ":"))


def decode(body: str) -> Message | None:
    """The message in an SQS body; None for S3's test event. Raises MessageError for anything else."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        raise MessageError("the message body is not JSON") from None
    if not isinstance(data, dict):
        raise MessageError("the message body is not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return None
    if "Records" in data:
        return _s3_notification(data["Records"])
    kind, job_id = data.get("kind"), data.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise MessageError("the message names no job")
    if kind == "chunk":
        items = data.get("items")
        if not isinstance(items, list) or not items or not isinstance(data.get("chunk"), str):
            raise MessageError("a chunk message needs a chunk id and a non-empty list of items")
        return ChunkMessage(job_id, data["chunk"], tuple(WorkItem.from_json(item) for item in items))
    if kind == "plan":
        page, token = data.get("page"), data.get("token")
        if not isinstance(page, int) or page < 0 or not (token is None or isinstance(token, str)):
            raise MessageError("a plan message needs a page number and a continuation token or null")
        return PlanMessage(job_id, page, token)
    if kind == "finish":
        return FinishMessage(job_id)
    raise MessageError(f"unknown message kind {kind!r}")


def _s3_notification(records: Any) -> DroppedObjects:
    if not isinstance(records, list):
        raise MessageError("the S3 notification has no list of records")
    objects = []
    for record in records:
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            # Keys arrive URL-encoded, spaces as '+'.
            objects.append(S3Location(record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])))
        except (KeyError, TypeError):
            raise MessageError("an S3 notification record lacks its bucket or object key") from None
    return DroppedObjects(tuple(objects))
