"""The job planner: one page of a job's input prefix per plan message (listed, chunked, sent to the work
queue), then the next page as a new plan message, so a prefix of any size is listed in bounded steps."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.messages import MessageError, PlanMessage, decode
from lambda_vision.jobs.planner import Planner
from lambda_vision.jobs.store import JobStore

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-vision-planner")

job_settings = JobSettings.from_env()
logger = Logger()
# The library's own log lines (chunks, pages, webhooks) in the same JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"lambda_vision"})
planner = Planner(
    job_settings,
    JobStore(boto3.resource("dynamodb").Table(job_settings.table), job_settings.retention_days),
    boto3.client("s3"),
    boto3.client("sqs"),
)
processor = BatchProcessor(event_type=EventType.SQS)


def process(record: SQSRecord) -> None:
    logger.append_keys(message_id=record.message_id, receive_count=record.attributes.approximate_receive_count)
    message = decode(record.body)
    if not isinstance(message, PlanMessage):
        raise MessageError("only plan messages belong on the plan queue")
    planner.plan(message)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=process, processor=processor, context=context)
