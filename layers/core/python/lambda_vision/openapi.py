"""The API's OpenAPI document, which swagger.yaml and API clients are generated from: what the routes declare,
and the shapes they answer with.

Routes name their response shapes with `Model("InferenceResponse")` rather than the pydantic classes of
`lambda_vision.schemas`, and declare their parameters with `lambda_vision.parameters`: nothing of this module
imports pydantic or Powertools' OpenAPI parameters until `document` is called (by scripts/generate_swagger.py,
`lambda-vision openapi` and the tests), so neither is part of the function's cold start.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambda_vision.parameters import Param, Path, Query

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import CORSConfig
    from aws_lambda_powertools.event_handler.api_gateway import Router
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse


@dataclass(frozen=True)
class Model:
    """A response shape by name: a pydantic model of `module`, imported when the document is generated."""

    name: str
    module: str = "lambda_vision.schemas"

    def resolve(self) -> type:
        shape: type = getattr(importlib.import_module(self.module), self.name)
        return shape


ERROR = Model("ErrorResponse")


def response(description: str, shape: Model) -> OpenAPIResponse:
    """An OpenAPI response with a JSON body of this shape."""
    return {"description": description, "content": {JSON: {"model": shape}}}


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
    return {status: response(description, ERROR) for status, description in descriptions.items()}


# Request bodies are read by lambda_vision.inputs and lambda_vision.jobs; documented here.
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
JOB_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}},
}


def document(
    routers: Iterable[Router], cors: CORSConfig | None, *, title: str, version: str, summary: str
) -> dict[str, Any]:
    """The OpenAPI document of these routers' routes, by Powertools' generator."""
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver  # noqa: PLC0415

    resolver = APIGatewayRestResolver(enable_validation=True, cors=cors)
    for router in routers:
        resolver.include_router(router)
    # The resolver's own copies of the routes (Powertools keeps them in these two lists): what the generator reads.
    for route in resolver._static_routes + resolver._dynamic_routes:
        route.func = _with_powertools_parameters(route.func)
        if route.responses:
            route.responses = _resolved(route.responses)
    schema: dict[str, Any] = json.loads(resolver.get_openapi_json_schema(title=title, version=version, summary=summary))
    return schema


def _powertools_param(declared: Param, kinds: dict[type[Param], Callable[..., Any]]) -> Any:
    bounds = {key: value for key, value in (("ge", declared.ge), ("le", declared.le)) if value is not None}
    return kinds[type(declared)](description=declared.description, **bounds)


def _resolved(value: Any) -> Any:
    if isinstance(value, Model):
        return value.resolve()
    if isinstance(value, dict):
        return {key: _resolved(item) for key, item in value.items()}
    return value


def _with_powertools_parameters(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The handler with a signature whose `Query` and `Path` are Powertools' own, which its generator reads."""
    from aws_lambda_powertools.event_handler.openapi import params  # noqa: PLC0415

    kinds: dict[type[Param], Callable[..., Any]] = {Query: params.Query, Path: params.Path}
    hints = typing.get_type_hints(handler, include_extras=True)
    signature = inspect.signature(handler)
    parameters = []
    for name, parameter in signature.parameters.items():
        annotation = hints.get(name, parameter.annotation)
        if typing.get_origin(annotation) is typing.Annotated:
            base, *extras = typing.get_args(annotation)
            converted = [_powertools_param(extra, kinds) if isinstance(extra, Param) else extra for extra in extras]
            annotation = typing.Annotated[(base, *converted)]
        parameters.append(parameter.replace(annotation=annotation))

    @functools.wraps(handler)
    def documented(*args: Any, **kwargs: Any) -> Any:
        return handler(*args, **kwargs)

    documented.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    return documented
