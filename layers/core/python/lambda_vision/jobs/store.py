"""Job state in DynamoDB: one item per job with atomic counters, one marker item per planned page and per
counted chunk, so that work delivered twice is counted once and a job reaches its final status once.

Items (partition key `pk`, sort key `sk`):
- `JOB#<id>` / `JOB`: the job: status, model, parameters, counts (total, succeeded, failed, skipped,
  pending), planning_done, timestamps, and the webhook's delivery: a lease (owner token and expiry) held by
  the one sender at a time, attempts started, the last answer, and when it was delivered or given up on;
- `JOB#<id>` / `PAGE#<n>`: page n of the input was listed and its images added to total and pending;
- `JOB#<id>` / `CHUNK#<chunk>`: the images of that chunk were counted.
A marker and its counter update are one transaction: both happen, or neither. Several chunks of a job can be
counted in one transaction (their markers and one update of the sum), up to DynamoDB's 100 actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from lambda_vision.jobs.webhooks import WebhookAnswer

Clock = Callable[[], float]


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class WebhookDelivery:
    """Where the job's webhook stands: attempts started, the last answer, the lease of whoever sends it."""

    attempts: int = 0
    status_code: int | None = None  # of the last answer
    last_error: str | None = None  # why the last attempt failed: "http_503", "url_unreachable", ...
    delivered_at: float | None = None
    failed_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None

    @property
    def done(self) -> bool:
        return self.delivered_at is not None or self.failed_at is not None

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        if self.failed_at is not None:
            return "failed"
        return "sending" if self.attempts else "pending"

    def document(self, job_id: str) -> dict[str, Any]:
        document: dict[str, Any] = {"id": job_id, "state": self.state, "attempts": self.attempts}
        if self.status_code is not None:
            document["status_code"] = self.status_code
        if self.last_error and self.delivered_at is None:
            document["last_error"] = self.last_error
        if self.delivered_at is not None:
            document["delivered_at"] = iso_time(self.delivered_at)
        if self.failed_at is not None:
            document["failed_at"] = iso_time(self.failed_at)
        return document

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WebhookDelivery:
        def moment(name: str) -> float | None:
            value = item.get(name)
            return None if value is None else float(value)

        code = item.get("webhook_status_code")
        return cls(
            attempts=int(item.get("webhook_attempts", 0)),
            status_code=None if code is None else int(code),
            last_error=item.get("webhook_last_error"),
            delivered_at=moment("webhook_sent_at"),
            failed_at=moment("webhook_failed_at"),
            lease_owner=item.get("webhook_lease_owner"),
            lease_until=moment("webhook_lease_until"),
        )


@dataclass
class JobRecord:
    job_id: str
    status: JobStatus
    task: str
    model: str
    parameters: dict[str, Any]
    input: str | list[str]  # the prefix URI, or the list of URIs
    output: str  # where this job's result objects are: <output prefix><job id>/
    created_at: float
    webhook: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    dead_lettered: int = 0
    planning_done: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    webhook_delivery: WebhookDelivery = field(default_factory=WebhookDelivery)

    def document(self, *, delivery: bool = True) -> dict[str, Any]:
        """What GET /jobs/{job_id} says about the job; without `delivery`, what the summary object and the
        webhook's body say (the same bytes on every attempt, so a receiver can compare them)."""
        document: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status.value,
            "task": self.task,
            "model": self.model,
            "parameters": self.parameters,
            "input": self.input if isinstance(self.input, str) else {"uris": len(self.input)},
            "output": self.output,
            "counts": {
                "total": self.total,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "skipped": self.skipped,
            },
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
        }
        if self.error:
            document["error"] = self.error
        if self.webhook and delivery:  # never the URL itself: it may carry a token
            document["webhook"] = self.webhook_delivery.document(self.job_id)
        return document

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> JobRecord:
        def number(name: str) -> int:
            return int(item.get(name, 0))

        def moment(name: str) -> float | None:
            value = item.get(name)
            return None if value is None else float(value)

        return cls(
            job_id=str(item["job_id"]),
            status=JobStatus(item["status"]),
            task=str(item["task"]),
            model=str(item["model"]),
            parameters=_plain(item.get("parameters", {})),
            input=_plain(item["input"]),
            output=str(item["output"]),
            created_at=float(item["created_at"]),
            webhook=item.get("webhook"),
            total=number("total"),
            succeeded=number("succeeded"),
            failed=number("failed"),
            skipped=number("skipped"),
            pending=number("pending"),
            dead_lettered=number("dead_lettered"),
            planning_done=bool(item.get("planning_done", False)),
            started_at=moment("started_at"),
            finished_at=moment("finished_at"),
            error=item.get("error"),
            webhook_delivery=WebhookDelivery.from_item(item),
        )


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int and float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _dynamo(value: Any) -> Any:
    """Floats as Decimals, which is how DynamoDB takes numbers."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dynamo(item) for item in value]
    return value


# The webhook is still to be delivered: neither delivered nor given up on.
_WEBHOOK_OPEN = "attribute_not_exists(webhook_sent_at) AND attribute_not_exists(webhook_failed_at)"


def _key(job_id: str, sort: str = "JOB") -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": sort}


def _conditional_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = error.response.get("CancellationReasons", [])
        return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons) or not reasons
    return False


@dataclass(frozen=True)
class ChunkStates:
    jobs: dict[str, JobRecord]  # by job id; a job that does not exist is missing
    counted: set[tuple[str, str]]  # (job id, chunk id) of the chunks already counted


_BATCH_GET_LIMIT = 100  # keys per BatchGetItem
MAX_CHUNKS_PER_TRANSACTION = 99  # DynamoDB's limit of 100 actions: the chunks' markers and the job's update


class Counted(Enum):
    """What counting several chunks at once did."""

    IMAGES_LEFT = "images left"  # counted, and the job has images left to count: it did not end with them
    COUNTED = "counted"  # counted; they may have been the last images of the job
    ALREADY = "already"  # nothing counted: one of them was counted before (or the job is gone)


@dataclass(frozen=True)
class ChunkCount:
    """A chunk's outcome, to be counted once."""

    chunk: str
    succeeded: int = 0
    failed: int = 0


class JobStore:
    def __init__(self, table: Table, retention_days: int = 30, clock: Clock = time.time) -> None:
        self.table = table
        self.retention_seconds = retention_days * 86_400
        self.clock = clock

    def _expires(self) -> int:
        return int(self.clock() + self.retention_seconds)

    def create(self, job: JobRecord) -> None:
        item: dict[str, Any] = {
            **_key(job.job_id),
            "job_id": job.job_id,
            "status": job.status.value,
            "task": job.task,
            "model": job.model,
            "parameters": _dynamo(job.parameters),
            "input": job.input,
            "output": job.output,
            "created_at": _dynamo(job.created_at),
            "total": job.total,
            "succeeded": 0,
            "failed": 0,
            "skipped": 0,
            "pending": job.pending,
            "dead_lettered": 0,
            "planning_done": job.planning_done,
            "expires_at": self._expires(),
        }
        if job.webhook:
            item["webhook"] = job.webhook
        self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get(self, job_id: str) -> JobRecord | None:
        item = self.table.get_item(Key=_key(job_id), ConsistentRead=True).get("Item")
        return None if item is None else JobRecord.from_item(item)

    def chunk_counted(self, job_id: str, chunk: str) -> bool:
        return "Item" in self.table.get_item(Key=_key(job_id, f"CHUNK#{chunk}"), ConsistentRead=True)

    def get_with_chunk(self, job_id: str, chunk: str) -> tuple[JobRecord | None, bool]:
        """The job and whether the chunk was counted, in one round trip."""
        states = self.get_chunk_states([(job_id, chunk)])
        return states.jobs.get(job_id), (job_id, chunk) in states.counted

    def get_chunk_states(self, chunks: Sequence[tuple[str, str]]) -> ChunkStates:
        """The jobs of several (job id, chunk id) pairs and which of the chunks were counted, in one round trip
        (BatchGetItem, 100 keys at a time)."""
        keys = {_key(job_id)["pk"]: _key(job_id) for job_id, _ in chunks}
        wanted = list(keys.values()) + [_key(job_id, f"CHUNK#{chunk}") for job_id, chunk in dict.fromkeys(chunks)]
        items: list[dict[str, Any]] = []
        for start in range(0, len(wanted), _BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table.name: {"Keys": wanted[start : start + _BATCH_GET_LIMIT], "ConsistentRead": True}
            }
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                items += response.get("Responses", {}).get(self.table.name, [])
                request = dict(response.get("UnprocessedKeys") or {})
        jobs = {record.job_id: record for record in (JobRecord.from_item(i) for i in items if i["sk"] == "JOB")}
        counted = {
            (str(item["pk"]).removeprefix("JOB#"), str(item["sk"]).removeprefix("CHUNK#"))
            for item in items
            if str(item["sk"]).startswith("CHUNK#")
        }
        return ChunkStates(jobs, counted)

    def add_page(self, job_id: str, page: int, images: int, last: bool) -> bool:
        """Count the images of a listed page into total and pending, once per page; whether it was new."""
        refused = self._transact(
            job_id,
            {f"PAGE#{page}": {"images": images}},
            update="SET planning_done = :last ADD #total :n, pending :n",
            values={":n": images, ":last": last},
            names={"#total": "total"},
        )
        return refused is None

    def count_chunk(
        self, job_id: str, chunk: str, *, succeeded: int = 0, failed: int = 0, skipped: int = 0, dead_lettered: int = 0
    ) -> bool:
        """Add a chunk's outcome to the counters, once per chunk; whether it was new."""
        images = succeeded + failed + skipped
        refused = self._transact(
            job_id,
            {f"CHUNK#{chunk}": {"succeeded": succeeded, "failed": failed, "skipped": skipped}},
            update="ADD succeeded :s, failed :f, skipped :k, dead_lettered :d, pending :p",
            values={":s": succeeded, ":f": failed, ":k": skipped, ":d": dead_lettered, ":p": -images},
            names=None,
        )
        return refused is None

    def count_chunks(self, job_id: str, counts: Sequence[ChunkCount]) -> Counted:
        """Add the outcomes of several chunks (at most MAX_CHUNKS_PER_TRANSACTION) to the counters in one
        transaction: all of them, or none when any of them was counted already (then count them one by one).

        The first attempt also asks that the job have images left to count after these: when it does, the
        job cannot have ended with them and nobody needs to read it to find out (IMAGES_LEFT). The chunks that
        bring it to its end are counted by a second attempt without that condition (COUNTED)."""
        if not 0 < len(counts) <= MAX_CHUNKS_PER_TRANSACTION:
            raise ValueError(f"1 to {MAX_CHUNKS_PER_TRANSACTION} chunks per transaction, not {len(counts)}")
        succeeded = sum(count.succeeded for count in counts)
        failed = sum(count.failed for count in counts)
        markers = {
            f"CHUNK#{count.chunk}": {"succeeded": count.succeeded, "failed": count.failed, "skipped": 0}
            for count in counts
        }
        update = "ADD succeeded :s, failed :f, pending :p"
        values = {":s": succeeded, ":f": failed, ":p": -(succeeded + failed)}
        reasons = self._transact(
            job_id,
            markers,
            update=update,
            values={**values, ":images": succeeded + failed},
            names=None,
            condition="attribute_exists(pk) AND pending > :images",
        )
        if reasons is None:
            return Counted.IMAGES_LEFT
        if not reasons or any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons[:-1]):
            return Counted.ALREADY  # a marker existed (or the answer does not say which condition failed)
        counted = self._transact(job_id, markers, update=update, values=values, names=None) is None
        return Counted.COUNTED if counted else Counted.ALREADY

    def _transact(
        self,
        job_id: str,
        markers: dict[str, dict[str, Any]],
        *,
        update: str,
        values: dict[str, Any],
        names: dict[str, str] | None,
        condition: str = "attribute_exists(pk)",
    ) -> Sequence[Mapping[str, object]] | None:
        """The marker items, each new, and the job's update under `condition`, as one transaction: None when
        it was written, else the reasons DynamoDB gave for each item (the update's last; none when it gave
        none) when a condition failed."""
        expires = self._expires()
        job_update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": _key(job_id),
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
            "ConditionExpression": condition,
        }
        if names:
            job_update["ExpressionAttributeNames"] = names
        puts: list[Any] = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": {**_key(job_id, marker), **fields, "expires_at": expires},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for marker, fields in markers.items()
        ]
        try:
            self.table.meta.client.transact_write_items(TransactItems=[*puts, {"Update": cast(Any, job_update)}])
        except ClientError as error:
            if _conditional_failure(error):
                return error.response.get("CancellationReasons", [])
            raise
        return None

    def mark_running(self, job_id: str) -> None:
        self._conditional_update(
            job_id,
            "SET #status = :running, started_at = :now",
            "#status = :queued",
            {":running": JobStatus.RUNNING.value, ":queued": JobStatus.QUEUED.value, ":now": self._now()},
        )

    def _now(self) -> Decimal:
        return Decimal(repr(round(self.clock(), 3)))

    def cancel(self, job_id: str) -> bool:
        """Cancel an active job; False when it was already finished (or does not exist)."""
        return self._conditional_update(
            job_id,
            "SET #status = :cancelled, finished_at = :now",
            "#status IN (:queued, :running)",
            {
                ":cancelled": JobStatus.CANCELLED.value,
                ":queued": JobStatus.QUEUED.value,
                ":running": JobStatus.RUNNING.value,
                ":now": self._now(),
            },
        )

    def fail(self, job_id: str, reason: str) -> bool:
        """End an active job as failed (its planning could not complete)."""
        return self._conditional_update(
            job_id,
            "SET #status = :failed, finished_at = :now, #error = :reason",
            "#status IN (:queued, :running)",
            {
                ":failed": JobStatus.FAILED.value,
                ":queued": JobStatus.QUEUED.value,
                ":running": JobStatus.RUNNING.value,
                ":now": self._now(),
                ":reason": reason,
            },
            {"#error": "error"},
        )

    def finish_if_complete(self, job_id: str) -> JobRecord | None:
        """The job's record once it is final: finishes it first (once) when every planned image is counted."""
        job = self.get(job_id)
        if job is None or job.status.final:
            return job
        if not job.planning_done or job.pending > 0:
            return None
        # Nothing counts towards this job any more: its counters are settled and the decision is stable.
        failed_job = job.dead_lettered > 0 or (job.total > 0 and job.succeeded == 0)
        final = JobStatus.FAILED if failed_job else JobStatus.SUCCEEDED
        values: dict[str, Any] = {
            ":final": final.value,
            ":now": self._now(),
            ":queued": JobStatus.QUEUED.value,
            ":running": JobStatus.RUNNING.value,
            ":true": True,
            ":zero": 0,
        }
        update = "SET #status = :final, finished_at = :now"
        if failed_job and job.dead_lettered:
            update += ", #error = :reason"
            values[":reason"] = f"{job.dead_lettered} images could not be processed (their messages were dead-lettered)"
        self._conditional_update(
            job_id,
            update,
            "#status IN (:queued, :running) AND planning_done = :true AND pending = :zero",
            values,
            {"#error": "error"} if ":reason" in values else None,
        )
        return self.get(job_id)

    # The webhook: one sender at a time holds a lease; a lease that expired (its sender died) is taken over.

    def claim_webhook(self, job_id: str, owner: str, until: float) -> JobRecord | None:
        """Lease the webhook of a final job to `owner` until `until` (epoch seconds) when it is neither
        delivered nor given up on and no other sender holds a lease that is still running; the job, or None."""
        item = self._update(
            job_id,
            "SET webhook_lease_owner = :owner, webhook_lease_until = :until",
            "attribute_exists(webhook) AND #status IN (:succeeded, :failed, :cancelled)"
            f" AND {_WEBHOOK_OPEN} AND (attribute_not_exists(webhook_lease_until) OR webhook_lease_until <= :now)",
            {
                ":owner": owner,
                ":until": _dynamo(float(until)),
                ":now": self._now(),
                ":succeeded": JobStatus.SUCCEEDED.value,
                ":failed": JobStatus.FAILED.value,
                ":cancelled": JobStatus.CANCELLED.value,
            },
            returning=True,
        )
        return None if item is None else JobRecord.from_item(item)

    def start_webhook_attempt(self, job_id: str, owner: str, previous: WebhookAnswer | None) -> int | None:
        """Count one more attempt (recording how the previous one ended) while `owner` holds the lease; the
        attempt's number, or None when the lease was lost."""
        values: dict[str, Any] = {":owner": owner, ":one": 1}
        update = "ADD webhook_attempts :one"
        if previous is not None:
            update = "SET webhook_status_code = :code, webhook_last_error = :error " + update
            values.update({":code": previous.status_code, ":error": previous.error})
        item = self._update(job_id, update, f"webhook_lease_owner = :owner AND {_WEBHOOK_OPEN}", values, returning=True)
        return None if item is None else int(item["webhook_attempts"])

    def webhook_delivered(self, job_id: str, status_code: int) -> bool:
        """The receiver answered 2xx: recorded once, whoever's lease it was (a 2xx is a 2xx)."""
        return (
            self._update(
                job_id,
                "SET webhook_sent_at = :now, webhook_status_code = :code"
                " REMOVE webhook_lease_owner, webhook_lease_until, webhook_last_error",
                "attribute_not_exists(webhook_sent_at)",
                {":now": self._now(), ":code": status_code},
            )
            is not None
        )

    def webhook_failed(self, job_id: str, owner: str, last: WebhookAnswer | None) -> bool:
        """Give up on the webhook (the attempts are spent, or the receiver refused it for good)."""
        return (
            self._update(
                job_id,
                "SET webhook_failed_at = :now, webhook_status_code = :code, webhook_last_error = :error"
                " REMOVE webhook_lease_owner, webhook_lease_until",
                f"webhook_lease_owner = :owner AND {_WEBHOOK_OPEN}",
                {
                    ":now": self._now(),
                    ":owner": owner,
                    ":code": None if last is None else last.status_code,
                    ":error": (None if last is None else last.error) or "no answer was recorded",
                },
            )
            is not None
        )

    def release_webhook(self, job_id: str, owner: str, last: WebhookAnswer | None) -> bool:
        """End the lease now (its sender is out of time), so the next sender need not wait for it to expire."""
        values: dict[str, Any] = {":now": self._now(), ":owner": owner}
        update = "SET webhook_lease_until = :now"
        if last is not None:
            update += ", webhook_status_code = :code, webhook_last_error = :error"
            values.update({":code": last.status_code, ":error": last.error})
        return self._update(job_id, update, f"webhook_lease_owner = :owner AND {_WEBHOOK_OPEN}", values) is not None

    def _conditional_update(
        self,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        return self._update(job_id, update, condition, values, names) is not None

    def _update(
        self,
        job_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        *,
        returning: bool = False,
    ) -> dict[str, Any] | None:
        """Update the job when `condition` holds: its item after the update (empty unless `returning`), or
        None when the condition did not hold."""
        attribute_names = {"#status": "status", **(names or {})}
        used = {name: value for name, value in attribute_names.items() if name in update or name in condition}
        arguments: dict[str, Any] = {
            "Key": _key(job_id),
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(pk) AND ({condition})",
            "ExpressionAttributeValues": values,
        }
        if used:
            arguments["ExpressionAttributeNames"] = used
        if returning:
            arguments["ReturnValues"] = "ALL_NEW"
        try:
            response = self.table.update_item(**arguments)
        except ClientError as error:
            if _conditional_failure(error):
                return None
            raise
        return dict(response.get("Attributes", {}))
