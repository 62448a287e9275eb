"""The planner: lists one page of a job's input prefix per invocation, sends its images to the work queue in
chunks, and sends itself the next page with S3's continuation token, so no listing has to fit one invocation."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.locations import S3Location
from lambda_vision.jobs.messages import ChunkMessage, FinishMessage, PlanMessage, WorkItem, chunk_id
from lambda_vision.jobs.queues import send_messages
from lambda_vision.jobs.store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_log = logging.getLogger(__name__)


def is_image_key(key: str) -> bool:
    """Folder markers ("photos/") are not images; every other object is one, or an error line saying why not."""
    return not key.endswith("/")


class Planner:
    def __init__(self, settings: JobSettings, store: JobStore, s3: S3Client, sqs: SQSClient) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        self.sqs = sqs

    def plan(self, message: PlanMessage) -> None:
        job = self.store.get(message.job_id)
        if job is None:
            _log.warning("planning skipped: job %s does not exist", message.job_id)
            return
        if job.status.final or not isinstance(job.input, str):
            self.store.add_page(job.job_id, message.page, 0, last=True)
            self._finish(job.job_id)
            return
        prefix = S3Location.parse(job.input)
        request: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key, "MaxKeys": self.settings.page_size}
        if message.token:
            request["ContinuationToken"] = message.token
        page = self.s3.list_objects_v2(**request)
        keys = [entry["Key"] for entry in page.get("Contents", []) if is_image_key(entry["Key"])]
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        self.store.add_page(job.job_id, message.page, len(keys), last=next_token is None)
        size = self.settings.chunk_size
        chunks = [
            ChunkMessage(
                job.job_id,
                chunk_id(message.page, index),
                tuple(WorkItem(key, s3=S3Location(prefix.bucket, key)) for key in keys[start : start + size]),
            )
            for index, start in enumerate(range(0, len(keys), size))
        ]
        # Sent even when the page was counted before (a redelivery): the chunks themselves are counted once.
        send_messages(self.sqs, self.settings.work_queue_url, chunks)
        if next_token:
            send_messages(
                self.sqs, self.settings.plan_queue_url, [PlanMessage(job.job_id, message.page + 1, next_token)]
            )
        else:
            self._finish(job.job_id)
        _log.info("planned page %d of job %s: %d images in %d chunks", message.page, job.job_id, len(keys), len(chunks))

    def _finish(self, job_id: str) -> None:
        """Planning is over: the workers finish the job (now, if every chunk was already counted)."""
        send_messages(self.sqs, self.settings.work_queue_url, [FinishMessage(job_id)])
