"""The job worker: SQS batches of work messages (chunks of a job, S3 notifications of dropped images, finish
requests), each processed on its own and reported back with partial batch responses; and the dead-letter
queue's consumer, which counts the images of messages that failed every delivery as failed.

Everything that lasts across invocations (settings, models, AWS clients) is created once per container.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.objects import ObjectReader, ObjectWriter
from lambda_vision.jobs.store import JobStore
from lambda_vision.jobs.webhooks import WebhookSender
from lambda_vision.jobs.worker import Worker
from lambda_vision.models import ModelStore
from lambda_vision.pipeline import Pipeline
from lambda_vision.registry import ModelRegistry
from lambda_vision.settings import Settings

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-vision-worker")
# The inference thread gives up the GIL around every decode, resize and numpy step, and takes it back while
# the reading and recording threads run Python (presigning, HTTP, JSON). Python's default switch interval
# lets such a thread keep the GIL for 5 ms against a waiting one: a fifth of a millisecond keeps the
# inference thread's waits short (measured: 1-2 ms less per image).
sys.setswitchinterval(0.0002)

settings = Settings.from_env()
job_settings = JobSettings.from_env()
logger = Logger()
# The library's own log lines (chunks, pages, webhooks) in the same JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"lambda_vision"})
fetcher = UrlFetcher(FetchPolicy.from_settings(settings))
session = boto3.Session()
# Signature Version 4 for every request, and for the URLs the reader and writer presign (objects.py), with the
# credentials the client signs with.
s3 = session.client("s3", config=Config(signature_version="s3v4"))
credentials = session.get_credentials()
worker = Worker(
    job_settings,
    JobStore(session.resource("dynamodb").Table(job_settings.table), job_settings.retention_days),
    writer=ObjectWriter(s3, timeout=settings.url_timeout, credentials=credentials),
    models=ModelStore(ModelRegistry.load(settings.models_config_path), settings),
    pipeline=Pipeline(fetcher, settings.max_image_pixels),
    webhooks=WebhookSender(
        fetcher,
        job_settings.webhook_secret,
        job_settings.webhook_attempts,
        job_settings.webhook_backoff_seconds,
        timeout_seconds=settings.url_timeout,
    ),
    reader=ObjectReader(s3, settings.url_max_bytes, timeout=settings.url_timeout, credentials=credentials),
)
processor = BatchProcessor(event_type=EventType.SQS)


def process(record: SQSRecord) -> None:
    logger.append_keys(message_id=record.message_id, receive_count=record.attributes.approximate_receive_count)
    worker.handle(record.body, deferred_id=record.message_id)


def bury(record: SQSRecord) -> None:
    logger.append_keys(message_id=record.message_id)
    worker.dead_letter(record.body)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    worker.begin(context.get_remaining_time_in_millis() / 1000.0)
    # The images of the next messages download, and the results of the previous one are recorded, while a
    # message runs through the network.
    worker.prefetch([record.get("body", "") for record in event.get("Records", [])])
    try:
        response = process_partial_response(event=event, record_handler=process, processor=processor, context=context)
    finally:
        unrecorded = worker.flush()
        worker.reader.forget()
    reported = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    response["batchItemFailures"] += [{"itemIdentifier": item} for item in unrecorded if item not in reported]
    return response


@logger.inject_lambda_context
def dead_letter_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    worker.begin(context.get_remaining_time_in_millis() / 1000.0)
    return process_partial_response(event=event, record_handler=bury, processor=processor, context=context)
