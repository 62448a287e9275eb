"""Response shapes, for the OpenAPI document (and so for swagger.yaml and API clients)."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field


class Document(BaseModel):
    """A shape that only documents the API: its validator is built when first used (swagger.yaml generation), not
    at import, which would add to every cold start."""

    model_config = ConfigDict(defer_build=True)


class ErrorDetail(Document):
    code: str = Field(description="Stable machine-readable error code, e.g. `image_undecodable`.")
    message: str = Field(description="What went wrong and what to do about it.")


class RequestErrorDetail(ErrorDetail):
    details: Any | None = None
    request_id: str | None = Field(default=None, description="API Gateway request id, to quote when reporting.")


class ErrorResponse(Document):
    error: RequestErrorDetail


class LabelScore(Document):
    label: str
    score: float


class Box(Document):
    x1: float = Field(description="Left edge in pixels of the original image.")
    y1: float = Field(description="Top edge.")
    x2: float = Field(description="Right edge.")
    y2: float = Field(description="Bottom edge.")


class Keypoint(Document):
    name: str = Field(description="What the point is (models.toml `keypoints`), e.g. `left_eye`.")
    x: float = Field(description="In pixels of the original image (may lie outside it).")
    y: float


class DetectionResult(Document):
    label: str
    score: float
    box: Box
    keypoints: list[Keypoint] | None = Field(default=None, description="Landmarks, for models that have them.")


class RegionResult(Document):
    box: Box = Field(description="The region, in pixels of the original image.")
    label: str | None = Field(default=None, description="With `detector`: the detection's label.")
    score: float | None = Field(default=None, description="With `detector`: the detection's score.")
    keypoints: list[Keypoint] | None = None
    predictions: list[LabelScore] = Field(description="The classifier's top-k for this region, best first.")


class ImageResult(Document):
    index: int = Field(description="Position of the image in the request (multipart part order, JSON order).")
    source: str = Field(description="File name, URL, `body`, or `images[i]`.")
    status: Literal["ok", "error"]
    width: int | None = None
    height: int | None = None
    predictions: list[LabelScore] | None = Field(default=None, description="Classification: top-k, best first.")
    detections: list[DetectionResult] | None = Field(default=None, description="Detection: best score first.")
    regions: list[RegionResult] | None = Field(
        default=None, description="Classification of regions (given, or found by `detector`), in order."
    )
    dimension: int | None = Field(default=None, description="POST /embed: length of the embedding.")
    embedding: list[float] | None = Field(default=None, description="POST /embed: a unit-length vector.")
    error: ErrorDetail | None = None
    timings_ms: dict[str, float]


class ModelReference(Document):
    name: str
    version: str
    task: Literal["classification", "detection"]
    sha256: str


class InferenceResponse(Document):
    model: ModelReference
    parameters: dict[str, Any]
    results: list[ImageResult]
    succeeded: int
    failed: int
    timings_ms: dict[str, float]


class ModelIdentity(Document):
    name: str
    task: Literal["classification", "detection"]
    description: str
    version: str
    sha256: str


class ModelSummary(ModelIdentity):
    loaded: bool


class ModelList(Document):
    models: list[ModelSummary]
    defaults: dict[str, str]


class Embedding(Document):
    output: str = Field(description="Graph output POST /embed returns.")
    dimension: int | None = Field(description="Length of the embedding.")


class ModelDescription(ModelIdentity):
    input: dict[str, Any]
    labels: list[str]
    decoder: str
    defaults: dict[str, Any]
    batching: bool
    embedding: Embedding | None = Field(default=None, description="Models that POST /embed can use.")
    keypoints: list[str] | None = Field(default=None, description="Names of the landmarks of each detection.")


class Health(Document):
    status: Literal["ready", "unavailable"]
    models: dict[str, str]
    version: str | None = Field(default=None, description="Version of lambda-vision, when ready.")
    error: ErrorDetail | None = None


JSON = "application/json"
PER_IMAGE_CODES = (
    "`image_empty`, `image_undecodable`, `image_unsupported_format`, `image_too_large`, `pixel_budget_exceeded`,"
    " `url_invalid`, `url_forbidden`, `url_unreachable`, `url_timeout`, `url_too_large`, `url_http_error`,"
    " `url_too_many_redirects`"
)
# Every error status an inference route answers, with its codes (README "Errors" has the same table).
INFERENCE_ERRORS: dict[int, str] = {
    400: "The body cannot be read (`invalid_multipart`, `invalid_json`, `invalid_base64`) or has no image"
    " (`no_images`).",
    404: "`model_not_found`: `model` names no configured model.",
    406: "`not_acceptable`: the Accept header allows nothing this route answers with.",
    413: "`body_too_large`: the body is over MAX_BODY_BYTES.",
    415: "`unsupported_media_type`: a Content-Type other than multipart/form-data, application/json, image/*,"
    " application/octet-stream.",
    422: "`invalid_parameter` (a query parameter or JSON field is invalid, or a query parameter is repeated),"
    " `too_many_images`, `wrong_model_task`; regions (POST /predict): `invalid_region`, `region_empty`,"
    " `region_outside_image`, `too_many_regions`; POST /embed: `no_embedding`.",
    500: "`internal_error`: an unexpected failure; quote the request id.",
    503: "`model_unavailable`: the model cannot be loaded.",
}
ANNOTATED_ERRORS: dict[int, str] = {
    406: "`not_acceptable`: the Accept header allows nothing this route answers with, or an image was asked for"
    " several images; `response_too_large`: the annotated image cannot fit in Lambda's 6 MB response.",
    422: f"{INFERENCE_ERRORS[422]} With an image Accept type, the image's own error: {PER_IMAGE_CODES}.",
}


def error_responses(descriptions: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses for error statuses: the JSON error body, with the codes each status carries."""
    return {
        status: {"description": description, "content": {JSON: {"model": ErrorResponse}}}
        for status, description in descriptions.items()
    }


# Request bodies are read by lambda_vision.inputs, not by the validation middleware; documented here.
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "One or more images: multipart parts (in order), a JSON list, or the image itself.",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "url": {"type": "array", "items": {"type": "string", "format": "uri"}},
                    "regions": {
                        "type": "array",
                        "description": "POST /predict: JSON boxes for the image or URL part just before.",
                        "items": {"type": "string"},
                    },
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["images"],
                "properties": {
                    "images": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "url": {"type": "string", "format": "uri"},
                                "base64": {"type": "string", "format": "byte"},
                                "name": {"type": "string"},
                                "regions": {
                                    "type": "array",
                                    "description": "POST /predict: boxes [x1, y1, x2, y2] in image pixels.",
                                    "items": {
                                        "type": "array",
                                        "items": {"type": "number"},
                                        "minItems": 4,
                                        "maxItems": 4,
                                    },
                                },
                            },
                        },
                    }
                },
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
