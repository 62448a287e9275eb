"""What the job routes of the API do: submit a job, describe it, cancel it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import UrlFetcher
from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.locations import S3Location
from lambda_vision.jobs.messages import ChunkMessage, FinishMessage, PlanMessage, chunk_id
from lambda_vision.jobs.planner import is_image_key
from lambda_vision.jobs.queues import QueueError, send_messages
from lambda_vision.jobs.results import job_prefix
from lambda_vision.jobs.store import JobRecord, JobStatus, JobStore
from lambda_vision.jobs.submission import JobRequest, parse_job_request
from lambda_vision.registry import ModelRegistry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

JOB_ID = re.compile(r"[0-9a-f]{32}")
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_FORBIDDEN = frozenset({"AccessDenied", "403", "AllAccessDisabled"})


def unavailable(message: str) -> ApiError:
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.JOBS_UNAVAILABLE, message)


class JobService:
    def __init__(
        self,
        settings: JobSettings,
        registry: ModelRegistry,
        fetcher: UrlFetcher,
        store: JobStore,
        *,
        s3: S3Client,
        sqs: SQSClient,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.fetcher = fetcher
        self.store = store
        self.s3 = s3
        self.sqs = sqs
        self.clock = clock
        self.new_id = new_id

    def submit(self, body: Any) -> JobRecord:
        request = parse_job_request(body, self.settings, self.registry, self.fetcher)
        self._check_buckets(request)
        job_id = self.new_id()
        items = request.items
        job = JobRecord(
            job_id=job_id,
            status=JobStatus.QUEUED,
            task=request.model.task.value,
            model=request.model.name,
            parameters=request.parameters,
            input=request.input,
            output=job_prefix(request.output, job_id).uri,
            created_at=self.clock(),
            webhook=request.webhook,
            total=len(items),
            pending=len(items),
            planning_done=request.prefix is None,
        )
        try:
            self.store.create(job)
            if request.prefix is not None:
                send_messages(self.sqs, self.settings.plan_queue_url, [PlanMessage(job_id, 0, None)])
            else:
                size = self.settings.chunk_size
                chunks = [
                    ChunkMessage(job_id, chunk_id(0, index), items[start : start + size])
                    for index, start in enumerate(range(0, len(items), size))
                ]
                send_messages(self.sqs, self.settings.work_queue_url, chunks)
        except (ClientError, BotoCoreError, QueueError) as error:
            self.store.fail(job_id, "the job could not be queued")
            raise unavailable(f"The job could not be queued ({type(error).__name__}); try again.") from None
        return job

    def _check_buckets(self, request: JobRequest) -> None:
        """The input prefix holds at least one object and the output bucket exists (4xx now, not a failed job)."""
        if request.prefix is not None:
            prefix = request.prefix
            page = self._s3_call(
                prefix, "input", lambda: self.s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key, MaxKeys=100)
            )
            keys = [entry["Key"] for entry in page.get("Contents", [])]
            if not any(map(is_image_key, keys)) and not page.get("IsTruncated"):
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    ErrorCode.EMPTY_INPUT,
                    f"input: there is no object under {prefix.uri}; upload the images first or check the prefix.",
                )
        output = request.output
        self._s3_call(output, "output", lambda: self.s3.head_bucket(Bucket=output.bucket))

    @staticmethod
    def _s3_call(location: S3Location, field: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_BUCKET:
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    ErrorCode.LOCATION_NOT_FOUND,
                    f"{field}: the bucket {location.bucket} does not exist; check its name.",
                ) from None
            if code in _FORBIDDEN:
                raise ApiError(
                    HTTPStatus.FORBIDDEN,
                    ErrorCode.LOCATION_FORBIDDEN,
                    f"{field}: S3 refused access to {location.uri}; the stack's role may not read it.",
                ) from None
            raise unavailable(f"S3 could not be asked about {field} ({code}); try again.") from None
        except BotoCoreError as error:
            raise unavailable(f"S3 could not be reached ({type(error).__name__}); try again.") from None

    def get(self, job_id: str) -> JobRecord:
        job = self.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                ErrorCode.JOB_NOT_FOUND,
                f"No job {job_id!r}: job ids are the job_id POST /jobs answered (jobs are kept "
                f"{self.settings.retention_days} days).",
            )
        return job

    def cancel(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if not self.store.cancel(job_id):
            current = self.get(job_id)
            raise ApiError(
                HTTPStatus.CONFLICT,
                ErrorCode.JOB_FINISHED,
                f"Job {job_id} is already {current.status.value}; only a queued or running job can be cancelled.",
            )
        # The workers write the summary and send the webhook; chunks not yet started are skipped.
        send_messages(self.sqs, self.settings.work_queue_url, [FinishMessage(job.job_id)])
        return self.get(job_id)
