"""Response shapes, for the OpenAPI document (and so for swagger.yaml and API clients). Only the document's
generation imports this module (routes name these shapes with `lambda_vision.openapi.Model`): pydantic is not
part of the function's cold start."""

from __future__ import annotations

from typing import Any, Literal

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
