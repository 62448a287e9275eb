"""POST /jobs bodies: checked field by field into a `JobRequest`, or refused with a stable error code."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from lambda_vision.errors import ApiError, ErrorCode, InputError
from lambda_vision.fetch import UrlFetcher
from lambda_vision.jobs.config import JobSettings
from lambda_vision.jobs.locations import LocationError, S3Location
from lambda_vision.jobs.messages import WorkItem
from lambda_vision.registry import ModelRegistry, ModelSpec, Task

FIELDS = ("input", "output", "model", "task", "parameters", "webhook")
PARAMETERS: dict[Task, dict[str, tuple[type[int] | type[float], float, float]]] = {
    Task.CLASSIFICATION: {"top_k": (int, 1, 1000)},
    Task.DETECTION: {"threshold": (float, 0.0, 1.0), "iou": (float, 0.0, 1.0), "max_detections": (int, 1, 1000)},
}


@dataclass(frozen=True)
class JobRequest:
    prefix: S3Location | None  # the input, when it is a prefix
    items: tuple[WorkItem, ...]  # the input, when it is a list of URIs
    output: S3Location
    model: ModelSpec
    parameters: dict[str, Any]
    webhook: str | None

    @property
    def input(self) -> str | list[str]:
        return self.prefix.uri if self.prefix is not None else [item.key for item in self.items]


def invalid(code: ErrorCode, message: str, status: HTTPStatus = HTTPStatus.UNPROCESSABLE_ENTITY) -> ApiError:
    return ApiError(status, code, message)


def parse_job_request(body: Any, settings: JobSettings, registry: ModelRegistry, fetcher: UrlFetcher) -> JobRequest:
    if not isinstance(body, dict):
        raise invalid(ErrorCode.INVALID_JOB, 'A job is a JSON object such as {"input": "s3://bucket/prefix/"}.')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(ErrorCode.INVALID_JOB, f"Unknown job fields: {', '.join(unknown)}. Fields: {', '.join(FIELDS)}.")
    prefix, items = _input(body.get("input"), settings)
    output = _output(body.get("output"), settings)
    model = _model(body.get("model"), body.get("task"), registry)
    return JobRequest(
        prefix=prefix,
        items=items,
        output=output,
        model=model,
        parameters=_parameters(body.get("parameters"), model),
        webhook=_webhook(body.get("webhook"), settings, fetcher),
    )


def _location(uri: Any, field: str) -> S3Location:
    try:
        return S3Location.parse(uri)
    except LocationError as error:
        raise invalid(ErrorCode.INVALID_URI, f"{field}: {error}") from None


def _readable(location: S3Location, settings: JobSettings, field: str) -> S3Location:
    if not settings.policy.may_read(location):
        raise invalid(
            ErrorCode.LOCATION_FORBIDDEN,
            f"{field}: this stack may not read {location.uri}; readable locations: "
            f"{settings.policy.describe(settings.policy.readable)} (the InputBucket parameter adds one)",
            HTTPStatus.FORBIDDEN,
        )
    return location


def _input(value: Any, settings: JobSettings) -> tuple[S3Location | None, tuple[WorkItem, ...]]:
    if value is None:
        raise invalid(ErrorCode.INVALID_JOB, "input is required: an s3:// prefix or a list of s3:// and https:// URIs.")
    if isinstance(value, str):
        return _readable(_location(value, "input"), settings, "input"), ()
    if not isinstance(value, list):
        raise invalid(ErrorCode.INVALID_JOB, "input must be an s3:// prefix or a list of s3:// and https:// URIs.")
    if not value:
        raise invalid(ErrorCode.EMPTY_INPUT, "input is an empty list: give at least one image URI.")
    if len(value) > settings.max_input_uris:
        raise invalid(
            ErrorCode.TOO_MANY_INPUTS,
            f"input lists {len(value)} URIs; at most {settings.max_input_uris} fit a request: put the images "
            "under an S3 prefix and give the prefix instead.",
        )
    items = []
    for index, uri in enumerate(value):
        field = f"input[{index}]"
        if isinstance(uri, str) and uri.startswith(("http://", "https://")):
            items.append(WorkItem(uri, url=uri))
        elif isinstance(uri, str) and uri.startswith("s3://"):
            location = _readable(_location(uri, field), settings, field)
            if not location.key or location.key.endswith("/"):
                raise invalid(ErrorCode.INVALID_URI, f"{field}: {uri} is a prefix; list URIs of images (objects).")
            items.append(WorkItem(uri, s3=location))
        else:
            raise invalid(ErrorCode.INVALID_URI, f"{field}: {uri!r} is neither an s3:// nor an http(s):// URI.")
    return None, tuple(items)


def _output(value: Any, settings: JobSettings) -> S3Location:
    if value is None:
        return settings.default_output
    if not isinstance(value, str):
        raise invalid(ErrorCode.INVALID_JOB, "output must be an s3:// prefix such as s3://bucket/results/.")
    location = _location(value, "output").as_prefix()
    if not settings.policy.may_write(location):
        raise invalid(
            ErrorCode.LOCATION_FORBIDDEN,
            f"output: this stack may not write to {location.uri}; writable locations: "
            f"{settings.policy.describe(settings.policy.writable)} (the OutputBucket parameter adds one)",
            HTTPStatus.FORBIDDEN,
        )
    return location


def _model(name: Any, task_name: Any, registry: ModelRegistry) -> ModelSpec:
    if name is not None and not isinstance(name, str):
        raise invalid(ErrorCode.INVALID_JOB, "model must be the name of a model (GET /models lists them).")
    task: Task | None = None
    if task_name is not None:
        try:
            task = Task(task_name)
        except ValueError:
            tasks = ", ".join(item.value for item in Task)
            raise invalid(ErrorCode.INVALID_PARAMETER, f"task must be one of {tasks}, not {task_name!r}.") from None
    if name is not None:
        spec = registry.get(name)
        if task is not None and spec.task is not task:
            raise invalid(ErrorCode.WRONG_MODEL_TASK, f"Model {name!r} is a {spec.task.value} model, not {task.value}.")
        return spec
    return registry.for_task(task or Task.CLASSIFICATION, None)


def _parameters(value: Any, model: ModelSpec) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid(ErrorCode.INVALID_PARAMETER, "parameters must be a JSON object.")
    allowed = PARAMETERS[model.task]
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise invalid(
            ErrorCode.INVALID_PARAMETER,
            f"{', '.join(unknown)}: not a parameter of {model.task.value} (parameters: {', '.join(allowed)}).",
        )
    checked: dict[str, Any] = {}
    for name, (kind, low, high) in allowed.items():
        if name not in value:
            continue
        number = value[name]
        whole = isinstance(number, int) and not isinstance(number, bool)
        if not (whole or (kind is float and isinstance(number, float))) or not low <= number <= high:
            what = "an integer" if kind is int else "a number"
            raise invalid(ErrorCode.INVALID_PARAMETER, f"parameters.{name} must be {what} from {low} to {high}.")
        checked[name] = kind(number)
    return checked


def _webhook(value: Any, settings: JobSettings, fetcher: UrlFetcher) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(ErrorCode.INVALID_URI, "webhook must be an https:// URL.")
    if not (settings.webhook_secret or settings.webhooks_enabled):
        raise invalid(
            ErrorCode.WEBHOOK_NOT_CONFIGURED,
            "This deployment has no WEBHOOK_SECRET to sign webhooks with: set the WebhookSecret parameter.",
        )
    try:
        fetcher.check(value)
    except InputError as error:
        code = ErrorCode.INVALID_URI if error.code is ErrorCode.URL_INVALID else ErrorCode.WEBHOOK_FORBIDDEN
        raise invalid(code, f"webhook: {error.message}") from None
    return value
