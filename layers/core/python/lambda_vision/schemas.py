"""Response shapes, for the OpenAPI document (and so for swagger.yaml and API clients)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. `image_undecodable`.")
    message: str = Field(description="What went wrong and what to do about it.")


class RequestErrorDetail(ErrorDetail):
    details: Any | None = None
    request_id: str | None = Field(default=None, description="API Gateway request id, to quote when reporting.")


class ErrorResponse(BaseModel):
    error: RequestErrorDetail


class LabelScore(BaseModel):
    label: str
    score: float


class Box(BaseModel):
    x1: float = Field(description="Left edge in pixels of the original image.")
    y1: float = Field(description="Top edge.")
    x2: float = Field(description="Right edge.")
    y2: float = Field(description="Bottom edge.")


class DetectionResult(BaseModel):
    label: str
    score: float
    box: Box


class ImageResult(BaseModel):
    index: int = Field(description="Position of the image in the request (multipart part order, JSON order).")
    source: str = Field(description="File name, URL, `body`, or `images[i]`.")
    status: Literal["ok", "error"]
    width: int | None = None
    height: int | None = None
    predictions: list[LabelScore] | None = Field(default=None, description="Classification: top-k, best first.")
    detections: list[DetectionResult] | None = Field(default=None, description="Detection: best score first.")
    error: ErrorDetail | None = None
    timings_ms: dict[str, float]


class ModelReference(BaseModel):
    name: str
    version: str
    task: Literal["classification", "detection"]
    sha256: str


class InferenceResponse(BaseModel):
    model: ModelReference
    parameters: dict[str, Any]
    results: list[ImageResult]
    succeeded: int
    failed: int
    timings_ms: dict[str, float]


class ModelIdentity(BaseModel):
    name: str
    task: Literal["classification", "detection"]
    description: str
    version: str
    sha256: str


class ModelSummary(ModelIdentity):
    loaded: bool


class ModelList(BaseModel):
    models: list[ModelSummary]
    defaults: dict[str, str]


class ModelDescription(ModelIdentity):
    input: dict[str, Any]
    labels: list[str]
    decoder: str
    defaults: dict[str, Any]
    batching: bool


class Health(BaseModel):
    status: Literal["ready", "unavailable"]
    models: dict[str, str]
    version: str | None = Field(default=None, description="Version of lambda-vision, when ready.")
    error: ErrorDetail | None = None


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
