"""The worker: runs the images of a work message through the API's pipeline (one ONNX batch), writes their
result lines as one object, counts them once, and finishes the job when it sees the last image counted.

A failure of one image (undecodable, missing object, unreachable URL) is a result line. A failure of the
whole message (a model that cannot load, S3 refusing the write) raises, so SQS delivers it again and, after
maxReceiveCount deliveries, moves it to the dead-letter queue, where `dead_letter` counts its images failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.inputs import ImageInput
from lambda_vision.jobs import results
from lambda_vision.jobs.config import INCOMING_PREFIX, RESULTS_PREFIX, JobSettings
from lambda_vision.jobs.locations import S3Location
from lambda_vision.jobs.messages import (
    ChunkMessage,
    DroppedObjects,
    FinishMessage,
    MessageError,
    PlanMessage,
    WorkItem,
    decode,
)
from lambda_vision.jobs.objects import ObjectReader, ObjectWriter
from lambda_vision.jobs.store import (
    MAX_CHUNKS_PER_TRANSACTION,
    ChunkCount,
    ChunkStates,
    Counted,
    JobRecord,
    JobStatus,
    JobStore,
)
from lambda_vision.jobs.webhooks import Webhooks, WebhookSender
from lambda_vision.models import LoadedModel, ModelStore
from lambda_vision.pipeline import DetectionParameters, ImageResult, Pipeline
from lambda_vision.registry import Task

_log = logging.getLogger(__name__)
# How long a webhook lease lasts when the invocation's own deadline is not known (outside Lambda).
DEFAULT_LEASE_SECONDS = 60.0


class Worker:
    def __init__(
        self,
        settings: JobSettings,
        store: JobStore,
        *,
        writer: ObjectWriter,
        models: ModelStore,
        pipeline: Pipeline,
        webhooks: WebhookSender,
        reader: ObjectReader,
    ) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.models = models
        self.pipeline = pipeline
        self.webhooks = Webhooks(store, webhooks)
        self.reader = reader
        self.deadline: float | None = None  # when the current invocation must end (epoch seconds)
        # One writer: a chunk's lines are written while the next chunk runs through the network; the chunks
        # whose lines were written are counted at the end of the invocation, in one transaction per job.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        self._deferred: list[tuple[str, str, Future[ChunkCount]]] = []  # message id, job id, its lines written
        # This invocation's chunk states (jobs, counted markers), read in one round trip for the whole batch.
        self._states: Future[ChunkStates] | None = None
        self._state_keys: set[tuple[str, str]] = set()
        self._marked_running: set[str] = set()  # jobs this invocation moved from queued to running

    def begin(self, remaining_seconds: float | None) -> None:
        """A new invocation, which Lambda ends `remaining_seconds` from now: no webhook lease outlasts it."""
        self.deadline = None if remaining_seconds is None else self.store.clock() + remaining_seconds

    # Work queue

    def handle(self, body: str, deferred_id: str | None = None) -> None:
        """Process one message of the work queue; raises when it should be delivered again.

        With a `deferred_id`, a chunk's results are written in the background while the next message runs,
        and counted by `flush`, which then says which of them failed."""
        message = decode(body)
        if isinstance(message, ChunkMessage):
            self.run_chunk(message, deferred_id)
        elif isinstance(message, FinishMessage):
            self.complete(message.job_id, always=True)
        elif isinstance(message, DroppedObjects):
            self.run_dropped(message)
        elif isinstance(message, PlanMessage):
            raise MessageError("a plan message belongs on the plan queue")

    def prefetch(self, bodies: Sequence[str]) -> None:
        """Start reading the state of a batch of work messages (their jobs and chunk markers, one round trip)
        and their images (in their order) before processing them."""
        messages = []
        for body in bodies:
            try:
                message = decode(body)
            except MessageError:
                continue
            if isinstance(message, ChunkMessage):
                messages.append(message)
        if not messages:
            return
        # The state first: the first message waits for it, and the images' reads would hold it up.
        chunks = [(message.job_id, message.chunk_id) for message in messages]
        self._states = self._writer.submit(self.store.get_chunk_states, chunks)
        self._state_keys = set(chunks)
        for message in messages:
            locations = [item.s3 for item in message.items if item.s3 is not None]
            self.reader.prefetch([location for location in locations if self.settings.policy.may_read(location)])

    def flush(self) -> list[str]:
        """Wait for the deferred writes, count the chunks written (one transaction per job), then finish each
        job that may have ended with them (once per job, not per chunk; a job with images left to count is not
        even read); the ids of the messages whose results, or whose job's end, could not be recorded."""
        failed = []
        messages: dict[str, list[str]] = {}  # job id -> its deferred messages
        written: dict[str, list[tuple[str, ChunkCount]]] = {}  # job id -> its chunks written, by message
        for deferred_id, job_id, future in self._deferred:
            messages.setdefault(job_id, []).append(deferred_id)
            error = future.exception()
            if error is not None:
                _log.error("recording the results of message %s failed: %r", deferred_id, error)
                failed.append(deferred_id)
            else:
                written.setdefault(job_id, []).append((deferred_id, future.result()))
        ended = set()  # the jobs that may have ended with these chunks
        for job_id, chunks in written.items():
            for start in range(0, len(chunks), MAX_CHUNKS_PER_TRANSACTION):
                not_counted, may_have_ended = self._count(job_id, chunks[start : start + MAX_CHUNKS_PER_TRANSACTION])
                failed += not_counted
                if may_have_ended:
                    ended.add(job_id)
        for job_id, deferred_ids in messages.items():
            if job_id not in ended:
                continue
            try:
                self.complete(job_id)
            except Exception as error:  # noqa: BLE001 - whatever it was, these messages must come back
                _log.error("finishing job %s failed: %r", job_id, error)
                failed += [deferred_id for deferred_id in deferred_ids if deferred_id not in failed]
        self._deferred.clear()
        self._states, self._state_keys = None, set()
        self._marked_running.clear()
        return failed

    def _chunk_state(self, message: ChunkMessage) -> tuple[JobRecord | None, bool]:
        """The message's job and whether its chunk was counted: from the batch's read when it covers it."""
        key = (message.job_id, message.chunk_id)
        if self._states is not None and key in self._state_keys and self._states.exception() is None:
            states = self._states.result()
            return states.jobs.get(message.job_id), key in states.counted
        return self.store.get_with_chunk(message.job_id, message.chunk_id)

    def run_chunk(self, message: ChunkMessage, deferred_id: str | None = None) -> None:
        job, counted = self._chunk_state(message)
        if job is None:
            raise MessageError(f"job {message.job_id} does not exist (expired, or never created)")
        if counted or job.status.final:
            if not counted:  # cancelled (or failed while planning): work not started is skipped
                self.store.count_chunk(job.job_id, message.chunk_id, skipped=len(message.items))
            self.complete(job.job_id)
            return
        start = time.perf_counter()
        model = self.models.get_for_task(Task(job.task), job.model)
        lines = self.infer(model, job.parameters, message.items)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if deferred_id is None:
            count = self._write_chunk(job, message, lines, elapsed_ms)
            self.store.count_chunk(job.job_id, count.chunk, succeeded=count.succeeded, failed=count.failed)
            self.complete(job.job_id)
        else:
            future = self._writer.submit(self._write_chunk, job, message, lines, elapsed_ms)
            self._deferred.append((deferred_id, job.job_id, future))

    def _write_chunk(self, job: JobRecord, message: ChunkMessage, lines: list[dict[str, Any]], ms: float) -> ChunkCount:
        """A chunk's lines, and what to count once they are written (a counted chunk always has its lines)."""
        start = time.perf_counter()
        self._put_lines(self._part(job, message.chunk_id), lines)
        if job.status is JobStatus.QUEUED and job.job_id not in self._marked_running:
            self.store.mark_running(job.job_id)
            self._marked_running.add(job.job_id)
        succeeded = sum(1 for line in lines if line["status"] == "ok")
        _log.info(
            "chunk %s of job %s: %d images, %d failed, %.0f ms reading and inference, %.0f ms writing its lines",
            message.chunk_id,
            job.job_id,
            len(lines),
            len(lines) - succeeded,
            ms,
            (time.perf_counter() - start) * 1000.0,
        )
        return ChunkCount(message.chunk_id, succeeded=succeeded, failed=len(lines) - succeeded)

    def _count(self, job_id: str, chunks: list[tuple[str, ChunkCount]]) -> tuple[list[str], bool]:
        """Count chunks of a job whose lines are written: in one transaction, or one by one when some of them
        were counted already (a message delivered twice). The ids of the messages that could not be counted,
        and whether the job may have ended with these chunks."""
        unique = list({count.chunk: count for _, count in chunks}.values())  # a message delivered twice at once
        try:
            counted = self.store.count_chunks(job_id, unique)
        except Exception as error:  # noqa: BLE001 - whatever it was, these messages must come back
            _log.error("counting %d chunks of job %s failed: %r", len(chunks), job_id, error)
            return [deferred_id for deferred_id, _ in chunks], False
        if counted is not Counted.ALREADY:
            return [], counted is Counted.COUNTED
        failed = []
        for deferred_id, count in chunks:
            try:
                self.store.count_chunk(job_id, count.chunk, succeeded=count.succeeded, failed=count.failed)
            except Exception as error:  # noqa: BLE001
                _log.error("counting the results of message %s failed: %r", deferred_id, error)
                failed.append(deferred_id)
        return failed, True

    def infer(self, model: LoadedModel, parameters: dict[str, Any], items: Sequence[WorkItem]) -> list[dict[str, Any]]:
        """One result line per item, in order; the readable images run as one batch."""
        objects = [item.s3 for item in items if item.s3 is not None]
        allowed = [location for location in objects if self.settings.policy.may_read(location)]
        payloads = dict(zip(allowed, self.reader.read(allowed), strict=True))
        failures: dict[int, InputError] = {}
        inputs: list[ImageInput] = []
        for index, item in enumerate(items):
            if item.s3 is None:
                inputs.append(ImageInput(index=index, source=item.key, url=item.url))
                continue
            payload = payloads.get(item.s3)
            if payload is None:
                failures[index] = InputError(ErrorCode.OBJECT_UNREADABLE, f"{item.s3.uri} may not be read by jobs")
            elif isinstance(payload, InputError):
                failures[index] = payload
            else:
                inputs.append(ImageInput(index=index, source=item.key, data=payload))
        by_index = {result.input.index: result for result in self._run(model, parameters, inputs)}
        return [
            results.error_line(item.key, failures[index].code, failures[index].message)
            if index in failures
            else results.result_line(item.key, by_index[index])
            for index, item in enumerate(items)
        ]

    def _run(self, model: LoadedModel, parameters: dict[str, Any], inputs: list[ImageInput]) -> list[ImageResult]:
        spec = model.spec
        if spec.task is Task.CLASSIFICATION:
            return self.pipeline.classify(model, inputs, int(parameters.get("top_k") or spec.top_k))
        detection = DetectionParameters(
            threshold=float(parameters.get("threshold", spec.score_threshold)),
            iou=float(parameters.get("iou", spec.iou_threshold)),
            max_detections=int(parameters.get("max_detections", spec.max_detections)),
        )
        return self.pipeline.detect(model, inputs, detection)

    def run_dropped(self, message: DroppedObjects) -> None:
        """Images dropped under incoming/: the default model of DROP_TASK, one result object each."""
        dropped = [location for location in message.objects if self._is_drop(location)]
        if not dropped:
            return
        model = self.models.get_for_task(self.settings.drop_task, None)
        lines = self.infer(model, {}, [WorkItem(location.key, s3=location) for location in dropped])
        for location, line in zip(dropped, lines, strict=True):
            self._put_lines(self._drop_result(location), [{**line, "model": model.spec.name}])

    def _is_drop(self, location: S3Location) -> bool:
        return location.bucket == self.settings.jobs_bucket and location.key.startswith(INCOMING_PREFIX)

    def _drop_result(self, location: S3Location) -> S3Location:
        return S3Location(self.settings.jobs_bucket, f"{RESULTS_PREFIX}{location.key}.jsonl")

    # Finishing

    def complete(self, job_id: str, always: bool = False) -> None:
        """Finish the job if every image is counted; write its summary and send its webhook once it is final."""
        job = self.store.finish_if_complete(job_id)
        if job is not None and job.status.final and (always or job.pending <= 0):
            self.finalize(job)

    def finalize(self, job: JobRecord) -> None:
        """Write the summary and deliver the webhook unless it is done or another live sender holds it; raises
        `WebhookPendingError` when this invocation runs out of time with attempts left (the message comes back)."""
        output = S3Location.parse(job.output)
        self._put_json(results.summary_location(output), job.document(delivery=False))
        deadline = self.deadline if self.deadline is not None else self.store.clock() + DEFAULT_LEASE_SECONDS
        self.webhooks.deliver(job, deadline)

    # Dead-letter queue

    def dead_letter(self, body: str) -> None:
        """A message that failed every delivery: its images count as failed, its job can still finish."""
        try:
            message = decode(body)
        except MessageError as error:
            _log.error("dead letter dropped: %s", error)
            return
        if isinstance(message, ChunkMessage):
            self._dead_chunk(message)
        elif isinstance(message, PlanMessage):
            self.store.fail(message.job_id, f"listing page {message.page} of the input failed repeatedly")
            self.complete(message.job_id, always=True)
        elif isinstance(message, FinishMessage):
            _log.error("finishing job %s failed repeatedly; trying once more", message.job_id)
            self.complete(message.job_id, always=True)  # a webhook still open is not left behind
        elif isinstance(message, DroppedObjects):
            for location in filter(self._is_drop, message.objects):
                line = results.error_line(location.key, ErrorCode.MESSAGE_FAILED, _DEAD_LETTER_MESSAGE)
                self._put_lines(self._drop_result(location), [line])

    def _dead_chunk(self, message: ChunkMessage) -> None:
        job = self.store.get(message.job_id)
        if job is None:
            _log.error("dead letter of job %s dropped: the job does not exist", message.job_id)
            return
        if not self.store.chunk_counted(job.job_id, message.chunk_id):
            lines = [
                results.error_line(item.key, ErrorCode.MESSAGE_FAILED, _DEAD_LETTER_MESSAGE) for item in message.items
            ]
            self._put_lines(self._part(job, message.chunk_id), lines)
            count = len(message.items)
            self.store.count_chunk(job.job_id, message.chunk_id, failed=count, dead_lettered=count)
        self.complete(job.job_id)

    # S3

    @staticmethod
    def _part(job: JobRecord, chunk: str) -> S3Location:
        return results.part_location(S3Location.parse(job.output), chunk)

    def _put_lines(self, location: S3Location, lines: list[dict[str, Any]]) -> None:
        self.writer.write(location, results.json_lines(lines), results.CONTENT_TYPE)

    def _put_json(self, location: S3Location, document: dict[str, Any]) -> None:
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        self.writer.write(location, body, "application/json")


_DEAD_LETTER_MESSAGE = (
    "the work message holding this image failed on every delivery (the worker crashed or timed out) and was "
    "dead-lettered; submit the image again in a new job"
)
