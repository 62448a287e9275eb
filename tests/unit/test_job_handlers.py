"""The job routes of the API and the worker and planner handlers, called with API Gateway and SQS events
against moto's server (`aws_endpoint`): status codes, error codes, status URLs and partial batch responses."""

from __future__ import annotations

import copy
import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

import app
import jobs
from sample_images import rotated_page
from support import LambdaContext, load_event
from webhook_receiver import webhook_receiver

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, aws_endpoint: str) -> dict[str, str]:
    """Moto's S3, SQS and DynamoDB with the template's batch resources; the functions' variables set."""
    boto3.client("s3").create_bucket(Bucket="jobs-bucket")
    sqs = boto3.client("sqs")
    boto3.client("dynamodb").create_table(
        TableName="jobs",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    env = {
        "JOBS_TABLE": "jobs",
        "JOBS_BUCKET": "jobs-bucket",
        "WORK_QUEUE_URL": sqs.create_queue(QueueName="work")["QueueUrl"],
        "PLAN_QUEUE_URL": sqs.create_queue(QueueName="plan")["QueueUrl"],
        "WEBHOOK_SECRET": "s3cret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def api(aws: dict[str, str]) -> Iterator[Callable[..., dict[str, Any]]]:
    jobs.job_service.cache_clear()

    def call(method: str, path: str, body: Any = None, raw: str | None = None) -> dict[str, Any]:
        event = copy.deepcopy(load_event("health"))
        event.update(httpMethod=method, path=path, resource="/jobs" if path == "/jobs" else "/jobs/{job_id}")
        event["pathParameters"] = None if path == "/jobs" else {"job_id": path.rsplit("/", 1)[1]}
        event["requestContext"].update(httpMethod=method, path=f"/v1{path}", resourcePath=event["resource"])
        event["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
        event["headers"]["Content-Type"] = "application/json"
        response: dict[str, Any] = app.lambda_handler(event, LambdaContext())
        return response

    yield call
    jobs.job_service.cache_clear()


@pytest.fixture(autouse=True)
def library_logging_restored() -> Iterator[None]:
    """The worker module routes the library's loggers to its own JSON handler at import (Powertools'
    copy_config_to_registered_loggers); later tests of this process must find them as they were."""
    library = logging.getLogger("lambda_vision")
    saved = (list(library.handlers), library.propagate, library.level)
    yield
    library.handlers[:], library.propagate, library.level = saved


def load_function(name: str) -> ModuleType:
    """A function module (functions/<name>/<name>.py), imported fresh under the current environment."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": f"r-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1795305600000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795305600001"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:work",
                "awsRegion": REGION,
            }
            for index, body in enumerate(bodies)
        ]
    }  # fmt: skip


def test_post_jobs_answers_202_with_the_status_url(api: Callable[..., dict[str, Any]]) -> None:
    boto3.client("s3").put_object(Bucket="jobs-bucket", Key="in/a.jpg", Body=b"x")
    response = api("POST", "/jobs", {"input": "s3://jobs-bucket/in/"})
    assert response["statusCode"] == 202, response["body"]
    body = json.loads(response["body"])
    assert body["status"] == "queued"
    url = f"https://abcdef1234.execute-api.us-east-1.amazonaws.com/v1/jobs/{body['job_id']}"
    assert body["status_url"] == url
    assert response["multiValueHeaders"]["Location"] == [url]
    described = api("GET", f"/jobs/{body['job_id']}")
    assert described["statusCode"] == 200
    document = json.loads(described["body"])
    assert (document["status"], document["model"], document["task"]) == ("queued", "imagenet", "classification")
    assert document["output"] == f"s3://jobs-bucket/results/{body['job_id']}/"


@pytest.mark.parametrize(
    ("body", "raw", "status", "code"),
    [
        (None, "{not json", 400, "invalid_json"),
        (None, "", 400, "invalid_json"),
        ({"input": "s3://jobs-bucket/nothing/"}, None, 422, "empty_input"),
        ({"input": "s3://private-bucket/in/"}, None, 403, "location_forbidden"),
        ({"input": "s3://jobs-bucket/in/", "model": "nope"}, None, 404, "model_not_found"),
        ({"input": ["s3:/broken"]}, None, 422, "invalid_uri"),
        ({"input": "s3://jobs-bucket/in/", "webhook": "http://10.0.0.1/"}, None, 422, "webhook_forbidden"),
    ],
)
def test_bad_jobs_answer_the_api_error_shape(
    api: Callable[..., dict[str, Any]], body: Any, raw: str | None, status: int, code: str
) -> None:
    response = api("POST", "/jobs", body, raw)
    assert response["statusCode"] == status, response["body"]
    error = json.loads(response["body"])["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == "9b10a1a5-0c11-505b-aefa-ecbbaf75f6a2"


def test_unknown_jobs_are_404_and_finished_jobs_cannot_be_cancelled(api: Callable[..., dict[str, Any]]) -> None:
    missing = api("GET", "/jobs/" + "f" * 32)
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"] == "job_not_found"
    assert json.loads(api("DELETE", "/jobs/nope")["body"])["error"]["code"] == "job_not_found"
    boto3.client("s3").put_object(Bucket="jobs-bucket", Key="in/a.jpg", Body=b"x")
    job_id = json.loads(api("POST", "/jobs", {"input": "s3://jobs-bucket/in/"})["body"])["job_id"]
    cancelled = api("DELETE", f"/jobs/{job_id}")
    assert cancelled["statusCode"] == 200
    assert json.loads(cancelled["body"])["status"] == "cancelled"
    again = api("DELETE", f"/jobs/{job_id}")
    assert again["statusCode"] == 409
    assert json.loads(again["body"])["error"]["code"] == "job_finished"


def test_jobs_answer_503_where_they_are_not_configured(
    api: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBS_TABLE")
    response = api("GET", "/jobs/" + "0" * 32)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"]["code"] == "jobs_unavailable"


def test_the_planner_and_worker_handlers_run_a_job_and_report_failed_records(
    api: Callable[..., dict[str, Any]], aws: dict[str, str], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    for index in range(3):
        s3.put_object(Bucket="jobs-bucket", Key=f"in/{index}.jpg", Body=rotated_page(90, "JPEG"))
    job_id = json.loads(api("POST", "/jobs", {"input": "s3://jobs-bucket/in/"})["body"])["job_id"]
    planner, worker = load_function("planner"), load_function("worker")

    (plan,) = sqs.receive_message(QueueUrl=aws["PLAN_QUEUE_URL"])["Messages"]
    assert planner.lambda_handler(sqs_event(plan["Body"], "garbage"), LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    work = sqs.receive_message(QueueUrl=aws["WORK_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    bodies = [message["Body"] for message in work]
    answer = worker.lambda_handler(sqs_event(*bodies, '{"kind": "chunk"}'), LambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"m-{len(bodies)}"}]}
    document = json.loads(api("GET", f"/jobs/{job_id}")["body"])
    assert document["status"] == "succeeded"
    assert document["counts"] == {"total": 3, "succeeded": 3, "failed": 0, "skipped": 0}
    listing = s3.list_objects_v2(Bucket="jobs-bucket", Prefix=f"results/{job_id}/")["Contents"]
    assert sorted(entry["Key"].rsplit("/", 1)[1] for entry in listing) == ["part-p000000-c0000.jsonl", "summary.json"]
    # A dead letter the worker cannot read is dropped (logged), not retried forever.
    assert worker.dead_letter_handler(sqs_event("garbage"), LambdaContext()) == {"batchItemFailures": []}


def test_a_chunk_whose_results_cannot_be_written_is_reported_failed_and_counted_nowhere(
    api: Callable[..., dict[str, Any]], aws: dict[str, str], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    monkeypatch.setenv("JOBS_OUTPUT_LOCATIONS", "doomed-output")
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="doomed-output")
    s3.put_object(Bucket="jobs-bucket", Key="in/a.jpg", Body=rotated_page(0, "JPEG"))
    response = api("POST", "/jobs", {"input": ["s3://jobs-bucket/in/a.jpg"], "output": "s3://doomed-output/r/"})
    job_id = json.loads(response["body"])["job_id"]
    s3.delete_bucket(Bucket="doomed-output")  # S3 now refuses the results
    worker = load_function("worker")
    (work,) = sqs.receive_message(QueueUrl=aws["WORK_QUEUE_URL"])["Messages"]
    answer = worker.lambda_handler(
        sqs_event(work["Body"], json.dumps({"kind": "finish", "job_id": job_id})), LambdaContext()
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    document = json.loads(api("GET", f"/jobs/{job_id}")["body"])
    assert document["status"] == "queued"
    assert document["counts"] == {"total": 1, "succeeded": 0, "failed": 0, "skipped": 0}


class ShortContext(LambdaContext):
    """An invocation with 10 s left: time for one webhook POST (5 s, and 2 to record it), not a backoff of 5 s too."""

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def test_the_message_that_finished_a_job_comes_back_while_its_webhook_has_attempts_left(
    api: Callable[..., dict[str, Any]], aws: dict[str, str], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"MODELS_DIR": str(models_dir), "URL_ALLOWED_NETWORKS": "127.0.0.0/8",
                        "WEBHOOK_BACKOFF_SECONDS": "5"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    boto3.client("s3").put_object(Bucket="jobs-bucket", Key="in/a.jpg", Body=rotated_page(0, "JPEG"))
    with webhook_receiver(failures=1) as hooks:
        response = api("POST", "/jobs", {"input": ["s3://jobs-bucket/in/a.jpg"], "webhook": hooks.url})
        job_id = json.loads(response["body"])["job_id"]
        worker = load_function("worker")
        (work,) = boto3.client("sqs").receive_message(QueueUrl=aws["WORK_QUEUE_URL"])["Messages"]
        # The job is finished and its first POST answered 503: the message is reported failed, not deleted.
        answer = worker.lambda_handler(sqs_event(work["Body"]), ShortContext())
        assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
        document = json.loads(api("GET", f"/jobs/{job_id}")["body"])
        assert document["status"] == "succeeded"
        assert (document["webhook"]["state"], document["webhook"]["attempts"]) == ("sending", 1)
        # Delivered again, it goes on with the webhook at once, and is done.
        answer = worker.lambda_handler(sqs_event(work["Body"], receive_count=2), LambdaContext())
        assert answer == {"batchItemFailures": []}
    assert hooks.attempts == 2 and len(hooks.deliveries) == 1
    assert hooks.deliveries[0].headers["X-Webhook-Id"] == job_id
    document = json.loads(api("GET", f"/jobs/{job_id}")["body"])
    assert (document["webhook"]["state"], document["webhook"]["attempts"]) == ("delivered", 2)
