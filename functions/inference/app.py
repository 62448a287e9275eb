"""The inference API: POST /predict, POST /object_detection, GET /models, GET /models/{name}, GET /health.

Routes are declared on `app`, a Powertools `Router` (`@app.get(...)`, `@app.post(...)`, `@app.exception_handler`),
and served to REST (v1), HTTP API (v2) and Function URL events alike by `resolvers` (lambda_vision.resolvers).

Everything that lasts across requests (settings, the model registry, ONNX Runtime sessions) is created once
per container, at start-up; the default models are loaded during the init phase unless PRELOAD_MODELS=false,
in a background thread started before anything else is imported (init_phase.py). With SnapStart, the
snapshot is taken after one warm-up inference per default model (`before_snapshot`).
"""

from __future__ import annotations

# First of all: the default models start loading while the imports below run.
import init_phase

# isort: split

import base64
import os
import random
import time
import warnings
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import CORSConfig, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

import embeddings
import page
from jobs import router as jobs_router
from lambda_vision import __version__, openapi
from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.imaging import decode_image
from lambda_vision.inputs import ImageInput, header, read_images
from lambda_vision.models import LoadedModel, ModelStore
from lambda_vision.openapi import Model
from lambda_vision.parameters import Path, Query
from lambda_vision.pipeline import DetectionParameters, ImageResult, Pipeline
from lambda_vision.regions import check_count, refuse_regions
from lambda_vision.registry import ModelRegistry, Task
from lambda_vision.render import IMAGE_FORMATS, ImageTooLargeError, draw_detections, encode, encode_to_fit
from lambda_vision.resolvers import ProxyResolvers
from lambda_vision.responses import JSON, acceptable, delivered_as_binary, error_response, json_response, negotiate
from lambda_vision.settings import LAMBDA_PAYLOAD_LIMIT

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-vision")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LambdaVision")

# Requests that record no metric (GET /models, refused requests) are normal, not worth a warning each.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

settings = init_phase.settings
logger = Logger()
metrics = Metrics()
cors = (
    CORSConfig(
        allow_origin=settings.cors_allow_origin,
        allow_headers=list(settings.cors_allow_headers),
        max_age=settings.cors_max_age,
    )
    if settings.cors_allow_origin
    else None
)
# The application's routes; every event shape is resolved against them (a new route is declared on `app`).
app = Router()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ unannotated
resolvers = ProxyResolvers(app, cors=cors)
pipeline = Pipeline(
    UrlFetcher(FetchPolicy.from_settings(settings)), settings.max_image_pixels, settings.max_request_pixels
)

registry: ModelRegistry | None = init_phase.registry
registry_error: str | None = init_phase.registry_error
if registry_error is not None:
    logger.error("model registry could not be loaded", extra={"reason": registry_error})
store: ModelStore | None = init_phase.store


def model_store() -> ModelStore:
    if store is None:
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.MODEL_UNAVAILABLE, f"No models: {registry_error}")
    return store


def load_default_models() -> dict[str, str]:
    """Load every default model; the state of each, by name. Raises the first failure."""
    models = model_store()
    for name in models.registry.defaults.values():
        models.get(models.registry.get(name))
    return dict.fromkeys(models.registry.defaults.values(), "loaded")


def request_id() -> str | None:
    # requestContext.requestId in v1, v2 and Function URL events alike
    context = app.current_event.get("requestContext") or {}
    value = context.get("requestId")
    return value if isinstance(value, str) else None


def model_reference(model: LoadedModel) -> dict[str, str]:
    spec = model.spec
    return {"name": spec.name, "version": spec.version, "task": spec.task.value, "sha256": spec.sha256}


def record(model: LoadedModel, results: list[ImageResult]) -> list[ImageResult]:
    """Metrics and one log line per inference request (never image data or URLs); the failed results."""
    failed = [result for result in results if not result.ok]
    metrics.add_dimension("Model", model.spec.name)
    metrics.add_metric("Images", MetricUnit.Count, len(results))
    metrics.add_metric("FailedImages", MetricUnit.Count, len(failed))
    inference_ms = sum(result.timings_ms.get("inference", 0.0) for result in results)
    metrics.add_metric("InferenceMilliseconds", MetricUnit.Milliseconds, inference_ms)
    logger.info(
        "inference",
        extra={
            "model": model.spec.name,
            "images": len(results),
            "failed": len(failed),
            "error_codes": sorted({result.error.code.value for result in failed if result.error}),
            "inference_ms": round(inference_ms, 2),
        },
    )
    return failed


def answer(model: LoadedModel, parameters: dict[str, Any], results: list[ImageResult], start: float) -> Response[str]:
    failed = record(model, results)
    body = {
        "model": model_reference(model),
        "parameters": parameters,
        "results": [result.to_json() for result in results],
        "succeeded": len(results) - len(failed),
        "failed": len(failed),
        "timings_ms": {"total": round((time.perf_counter() - start) * 1000.0, 3)},
    }
    return json_response(HTTPStatus.OK, body)


def request_images() -> list[ImageInput]:
    event = app.current_event
    return read_images(
        event.headers,
        event.body,
        bool(event.is_base64_encoded),
        max_body_bytes=settings.max_body_bytes,
        max_images=settings.max_images_per_request,
    )


def download_deadline() -> float:
    """When the request's URL downloads must end (time.monotonic()): the function's time left, less the
    time kept to decode, run the model and answer."""
    left = app.lambda_context.get_remaining_time_in_millis() / 1000.0
    return time.monotonic() + left - settings.answer_time_reserve


ModelName = Annotated[
    str | None, Query(description="Model to use (GET /models lists them); the task's default when omitted or empty.")
]


@app.post(
    "/predict",
    summary="Classify images",
    description=(
        "Top-k labels for each image of the request, in the order the images were sent. An image that names"
        " `regions` (boxes in its pixels) is answered per region; with `detector`, each box that detection"
        " model finds is classified, and answered as a region with the detection's label and score."
    ),
    responses={
        200: {"description": "One result per image", "content": {JSON: {"model": Model("InferenceResponse")}}},
        **openapi.error_responses(openapi.INFERENCE_ERRORS),
    },
    tags=["inference"],
)
def predict(
    model: ModelName = None,
    top_k: Annotated[int | None, Query(ge=1, le=1000, description="How many labels to return per image.")] = None,
    detector: Annotated[
        str | None, Query(description="Detection model to run first: each box it finds is then classified.")
    ] = None,
) -> Response[str]:
    start = time.perf_counter()
    negotiate(header(app.current_event.headers, "accept"), [JSON])
    loaded = model_store().get_for_task(Task.CLASSIFICATION, model or None)
    detection_model = model_store().get_for_task(Task.DETECTION, detector) if detector else None
    inputs = request_images()
    k = top_k or loaded.spec.top_k
    regions = [len(item.regions or ()) for item in inputs]
    if detection_model is not None:
        refuse_regions(regions, "POST /predict?detector=")
        spec = detection_model.spec
        found = DetectionParameters(spec.score_threshold, spec.iou_threshold, spec.max_detections)
        results = pipeline.detect_then_classify(
            detection_model,
            loaded,
            inputs,
            found,
            top_k=k,
            max_batch=settings.max_regions,
            deadline=download_deadline(),
        )
        return answer(loaded, {"top_k": k, "detector": spec.name, **found.__dict__}, results, start)
    check_count(regions, settings.max_regions)
    results = pipeline.classify_regions(loaded, inputs, k, settings.max_regions, deadline=download_deadline())
    return answer(loaded, {"top_k": k}, results, start)


@app.post(
    "/object_detection",
    summary="Detect objects in images",
    description=(
        "Boxes (x1, y1, x2, y2 in pixels of the original image) with label and score for each image. "
        "When the first type of the Accept header is image/jpeg, image/png or image/* (what API Gateway delivers "
        "as binary) and the request has exactly one image, the answer is that image with its boxes drawn, "
        "within Lambda's 6 MB response: at lower JPEG quality, in another accepted type, or scaled down "
        "(header X-Image-Scale)."
    ),
    responses={
        200: {
            "description": "One result per image, or the annotated image",
            "content": {
                JSON: {"model": Model("InferenceResponse")},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **openapi.error_responses({**openapi.INFERENCE_ERRORS, **openapi.ANNOTATED_ERRORS}),
    },
    tags=["inference"],
)
def object_detection(
    model: ModelName = None,
    threshold: Annotated[float | None, Query(ge=0.0, le=1.0, description="Minimum score of a detection.")] = None,
    iou: Annotated[float | None, Query(ge=0.0, le=1.0, description="Overlap above which NMS drops a box.")] = None,
    max_detections: Annotated[int | None, Query(ge=1, le=1000, description="Most detections per image.")] = None,
) -> Response[str]:
    start = time.perf_counter()
    accept = header(app.current_event.headers, "accept")
    media_type = negotiate(accept, [JSON, *IMAGE_FORMATS])
    if not delivered_as_binary(accept):
        media_type = JSON  # API Gateway would hand the client an image as base64 text: answer what it can read
    loaded = model_store().get_for_task(Task.DETECTION, model or None)
    inputs = request_images()
    refuse_regions([len(item.regions or ()) for item in inputs], "POST /object_detection")
    if media_type != JSON and len(inputs) != 1:
        raise ApiError(
            HTTPStatus.NOT_ACCEPTABLE,
            ErrorCode.NOT_ACCEPTABLE,
            f"An annotated image ({media_type}) is drawn for exactly one image; this request has {len(inputs)}."
            " Ask for application/json to get results for several images.",
        )
    spec = loaded.spec
    parameters = DetectionParameters(
        threshold=spec.score_threshold if threshold is None else threshold,
        iou=spec.iou_threshold if iou is None else iou,
        max_detections=max_detections or spec.max_detections,
    )
    results = pipeline.detect(loaded, inputs, parameters, deadline=download_deadline(), keep_images=media_type != JSON)
    if media_type == JSON:
        return answer(loaded, parameters.__dict__, results, start)
    record(loaded, results)
    image_types = [media_type, *(other for other in acceptable(accept, list(IMAGE_FORMATS)) if other != media_type)]
    return annotated_image(loaded, results[0], image_types)


# What an annotated image may take of Lambda's 6 MB response once base64-encoded: the rest is for the
# status, the headers and the JSON around the body.
ANNOTATED_IMAGE_MAX_BYTES = (LAMBDA_PAYLOAD_LIMIT - 16 * 1024) // 4 * 3


def annotated_image(model: LoadedModel, result: ImageResult, media_types: list[str]) -> Response[str]:
    """The image with its boxes drawn, in the first of `media_types` that fits in a Lambda response (or
    another acceptable one, or scaled down: the X-Image-Scale header then says by how much)."""
    if result.error is not None or result.detections is None or result.decoded is None:
        error = result.error
        code, message = (error.code, error.message) if error else (ErrorCode.IMAGE_UNDECODABLE, "No image")
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, code, message)
    decoded = result.decoded
    result.decoded = None
    if decoded.image.size != (decoded.width, decoded.height):  # a reduced JPEG decode: the boxes need full size
        decoded = decode_image(pipeline.image_bytes(result), settings.max_image_pixels)
    picture = draw_detections(decoded.image, result.detections, model.labels)
    del decoded
    try:
        encoded = encode_to_fit(picture, media_types, ANNOTATED_IMAGE_MAX_BYTES)
    except ImageTooLargeError:
        raise ApiError(
            HTTPStatus.NOT_ACCEPTABLE,
            ErrorCode.RESPONSE_TOO_LARGE,
            f"The annotated image does not fit in Lambda's 6 MB response as {' or '.join(media_types)}, even"
            " scaled down. Ask for "
            + ("image/jpeg, or for " if "image/jpeg" not in media_types else "")
            + "application/json to get the boxes.",
        ) from None
    headers = {"X-Detections": str(len(result.detections))}
    if encoded.scale < 1.0:
        headers["X-Image-Scale"] = f"{encoded.scale:.4f}"
    # Encoded here rather than returned as bytes, which response validation would try to read as text.
    response = Response(
        status_code=int(HTTPStatus.OK),
        content_type=encoded.media_type,
        body=base64.b64encode(encoded.data).decode("ascii"),
        headers=headers,
    )
    response.base64_encoded = True
    return response


@app.get(
    "/models",
    summary="List the models",
    responses={
        200: {
            "description": "The models and the default of each task",
            "content": {JSON: {"model": Model("ModelList")}},
        }
    },
    tags=["models"],
)
def list_models() -> Response[str]:
    models = model_store()
    summaries = [
        {
            "name": spec.name,
            "task": spec.task.value,
            "description": spec.description,
            "version": spec.version,
            "sha256": spec.sha256,
            "loaded": models.is_loaded(spec.name),
        }
        for spec in models.registry.specs.values()
    ]
    defaults = {task.value: name for task, name in models.registry.defaults.items()}
    return json_response(HTTPStatus.OK, {"models": summaries, "defaults": defaults})


@app.get(
    "/models/<name>",
    summary="Describe a model",
    description="Task, input specification, labels, version and sha256 of one model (loads it if needed).",
    responses={
        200: {"description": "The model", "content": {JSON: {"model": Model("ModelDescription")}}},
        404: {"description": "No such model", "content": {JSON: {"model": Model("ErrorResponse")}}},
    },
    tags=["models"],
)
def describe_model(name: Annotated[str, Path(description="Model name, as listed by GET /models.")]) -> Response[str]:
    models = model_store()
    return json_response(HTTPStatus.OK, models.get(models.registry.get(name)).describe())


@app.get(
    "/health",
    summary="Readiness",
    description="200 when every default model is loaded and ready, 503 otherwise.",
    responses={
        200: {"description": "Ready", "content": {JSON: {"model": Model("Health")}}},
        503: {"description": "Not ready", "content": {JSON: {"model": Model("Health")}}},
    },
    tags=["operations"],
)
def health() -> Response[str]:
    try:
        loaded = load_default_models()
    except ApiError as error:
        body = {"status": "unavailable", "models": {}, "error": {"code": error.code.value, "message": error.message}}
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, body)
    return json_response(HTTPStatus.OK, {"status": "ready", "models": loaded, "version": __version__})


resolvers.include(jobs_router)
resolvers.include(embeddings.router)
resolvers.include(page.router)


@app.exception_handler(ApiError)
def handle_api_error(error: ApiError) -> Response[str]:
    return refuse(error)


def refuse(error: ApiError) -> Response[str]:
    logger.info("request refused", extra={"status": int(error.status), "code": error.code.value})
    metrics.add_dimension("ErrorCode", error.code.value)
    metrics.add_metric("RejectedRequests", MetricUnit.Count, 1)
    return error_response(error, request_id())


@app.exception_handler(NotFoundError)
def handle_not_found(_: Exception) -> Response[str]:
    event = app.current_event
    return error_response(
        ApiError(HTTPStatus.NOT_FOUND, ErrorCode.ROUTE_NOT_FOUND, f"No route {event.http_method} {event.path}."),
        request_id(),
    )


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return error_response(
        ApiError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            ErrorCode.INTERNAL_ERROR,
            "The request failed unexpectedly. Quote the request id when reporting it.",
        ),
        request_id(),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolvers.resolve(event, context)


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI 3 document of this API, request bodies included (swagger.yaml is generated from it)."""
    from lambda_vision.jobs import schemas as job_schemas  # noqa: PLC0415 - pydantic: for the document only

    document = resolvers.openapi(
        title="lambda-vision",
        version=__version__,
        summary="Image classification and object detection with ONNX Runtime on AWS Lambda",
    )
    for route in ("/predict", "/object_detection", "/embed"):
        document["paths"][route]["post"]["requestBody"] = openapi.REQUEST_BODY
    document["paths"]["/jobs"]["post"]["requestBody"] = openapi.JOB_REQUEST_BODY
    job_request = job_schemas.JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    document["components"]["schemas"].update({**job_request.pop("$defs", {}), "JobRequest": job_request})
    return document


# The end of the init phase: every default model loaded (in the background since the first import).
if (preload_error := init_phase.finish()) is not None:
    logger.error("default models could not be loaded", extra={"reason": preload_error.message})


def warm_up_image(width: int, height: int) -> bytes:
    """A JPEG with edges and colours (a flat image would skip work a real one does), at a model's input size."""
    from PIL import Image  # noqa: PLC0415 - only when a snapshot is taken

    pixels = bytes((x * 7 + y * 3) % 256 for y in range(height) for x in range(width))
    grey = Image.frombytes("L", (width, height), pixels)
    picture = Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grey.rotate(180)))
    return encode(picture, "image/jpeg")


def before_snapshot() -> dict[str, int]:
    """SnapStart: the snapshot holds every default model's session, each warmed by one inference through the
    whole pipeline (decode, pre-process, run, decode the outputs). Results per model name: labels or boxes."""
    models = model_store()
    warmed: dict[str, int] = {}
    for task, name in models.registry.defaults.items():
        model = models.get(models.registry.get(name))
        width, height = model.spec.size
        image = ImageInput(index=0, source="warm-up", data=warm_up_image(width, height))
        if task is Task.CLASSIFICATION:
            (result,) = pipeline.classify(model, [image], model.spec.top_k)
            count = len(result.classifications or [])
        else:
            parameters = DetectionParameters(
                model.spec.score_threshold, model.spec.iou_threshold, model.spec.max_detections
            )
            (result,) = pipeline.detect(model, [image], parameters)
            count = len(result.detections or [])
        if result.error is not None:
            raise RuntimeError(f"warm-up inference of {name!r} failed: {result.error.message}")
        warmed[name] = count
    logger.info("snapshot ready", extra={"warmed": warmed})
    return warmed


def after_restore() -> None:
    """SnapStart: every environment restored from one snapshot starts with the same memory. What must differ
    between them is re-seeded from the operating system (Python's and NumPy's global random generators)."""
    import numpy  # noqa: PLC0415 - already loaded with ONNX Runtime

    random.seed()
    numpy.random.seed()
    logger.info("restored from snapshot")


try:
    # Lambda's managed runtime (and awslambdaric) provide this module; it runs the hooks only with SnapStart.
    from snapshot_restore_py import register_after_restore, register_before_snapshot  # type: ignore[import-untyped]
except ImportError:
    pass
else:
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
