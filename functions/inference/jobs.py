"""The job routes of the inference API: POST /jobs, GET /jobs/{job_id}, DELETE /jobs/{job_id}.

The job service (its AWS clients, the model registry) is created on the first job request, so the image
routes' cold start pays nothing for it.
"""

from __future__ import annotations

import json
from functools import cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, APIGatewayProxyEventV2

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.inputs import header
from lambda_vision.jobs.config import JobSettings
from lambda_vision.openapi import ERROR, Model, response
from lambda_vision.parameters import Path
from lambda_vision.registry import ModelConfigError, ModelRegistry
from lambda_vision.responses import JSON, json_response
from lambda_vision.settings import Settings

if TYPE_CHECKING:
    from lambda_vision.jobs.service import JobService

router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router is untyped

JOBS = "lambda_vision.jobs.schemas"  # the job routes' response shapes
JobId = Annotated[str, Path(description="The job_id POST /jobs answered.")]


def refused(description: str) -> OpenAPIResponse:
    return response(description, ERROR)


@cache
def job_service() -> JobService:
    settings, job_settings = Settings.from_env(), JobSettings.from_env()
    if not job_settings.configured:
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            ErrorCode.JOBS_UNAVAILABLE,
            "Jobs are not configured here: JOBS_TABLE, WORK_QUEUE_URL, PLAN_QUEUE_URL and JOBS_BUCKET are needed.",
        )
    try:
        registry = ModelRegistry.load(settings.models_config_path)
    except ModelConfigError as error:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.MODEL_UNAVAILABLE, f"No models: {error}") from None
    # boto3 and the job service are imported here, on the first job request: the image routes never need them.
    import boto3  # noqa: PLC0415

    from lambda_vision.jobs.service import JobService  # noqa: PLC0415
    from lambda_vision.jobs.store import JobStore  # noqa: PLC0415

    table = boto3.resource("dynamodb").Table(job_settings.table)
    return JobService(
        job_settings,
        registry,
        UrlFetcher(FetchPolicy.from_settings(settings)),
        JobStore(table, job_settings.retention_days),
        s3=boto3.client("s3"),
        sqs=boto3.client("sqs"),
    )


def status_url(job_id: str) -> str:
    """Where GET /jobs/{job_id} is, as the caller reached this API (with the stage on API Gateway's own domain)."""
    event = router.current_event
    assert isinstance(event, APIGatewayProxyEvent | APIGatewayProxyEventV2)
    host = header(event.headers, "host") or event.request_context.domain_name or ""
    scheme = header(event.headers, "x-forwarded-proto") or ("https" if ".amazonaws.com" in host else "http")
    path = event.path  # payload 2.0 (HTTP APIs, Function URLs): rawPath, as the caller sent it
    if isinstance(event, APIGatewayProxyEvent) and host.endswith(".amazonaws.com") and event.request_context.path:
        path = event.request_context.path  # a REST API's event path leaves out the stage its own URLs start with
    return f"{scheme}://{host}{path.rstrip('/')}/{job_id}"


@router.post(
    "/jobs",
    summary="Submit a batch job",
    description=(
        "Classify or detect every image under an S3 prefix, or of a list of URIs. Answers at once with the job id; "
        "results are written as JSON Lines under the output prefix, one line per image."
    ),
    responses={
        202: {"description": "Queued", "content": {JSON: {"model": Model("JobAccepted", JOBS)}}},
        400: refused("Not a JSON job"),
        403: refused("A location the stack may not read or write"),
        404: refused("Unknown model"),
        422: refused("Invalid job"),
    },
    tags=["jobs"],
)
def submit_job() -> Response[str]:
    event = router.current_event
    try:
        body = json.loads(event.decoded_body or "")
    except ValueError:
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            ErrorCode.INVALID_JSON,
            'The body is not JSON; send a job such as {"input": "s3://bucket/prefix/"} as application/json.',
        ) from None
    job = job_service().submit(body)
    url = status_url(job.job_id)
    response = json_response(HTTPStatus.ACCEPTED, {"job_id": job.job_id, "status": job.status.value, "status_url": url})
    response.headers["Location"] = url
    return response


@router.get(
    "/jobs/<job_id>",
    summary="Describe a job",
    description="Status, counts and output location of a job.",
    responses={
        200: {"description": "The job", "content": {JSON: {"model": Model("JobStatusDocument", JOBS)}}},
        404: refused("No such job"),
    },
    tags=["jobs"],
)
def describe_job(job_id: JobId) -> Response[str]:
    return json_response(HTTPStatus.OK, job_service().get(job_id).document())


@router.delete(
    "/jobs/<job_id>",
    summary="Cancel a job",
    description="A queued or running job stops: images not yet started are skipped (counted in counts.skipped).",
    responses={
        200: {"description": "Cancelled", "content": {JSON: {"model": Model("JobStatusDocument", JOBS)}}},
        404: refused("No such job"),
        409: refused("The job already finished"),
    },
    tags=["jobs"],
)
def cancel_job(job_id: JobId) -> Response[str]:
    return json_response(HTTPStatus.OK, job_service().cancel(job_id).document())
