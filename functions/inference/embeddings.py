"""POST /embed: an L2-normalised embedding per image, from a model whose registry entry names an embedding
output. The same inputs, limits and errors as the other inference routes."""

from __future__ import annotations

import time
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from lambda_vision import openapi
from lambda_vision.inputs import header
from lambda_vision.openapi import Model
from lambda_vision.parameters import Query
from lambda_vision.regions import refuse_regions
from lambda_vision.responses import JSON, negotiate

router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is untyped


@router.post(
    "/embed",
    summary="Embed images",
    description=(
        "A vector per image, scaled to unit length so that the dot product of two is their cosine similarity"
        " (near 1: alike). Models with an embedding output show its dimension in GET /models/{name}."
    ),
    responses={
        200: {"description": "One embedding per image", "content": {JSON: {"model": Model("InferenceResponse")}}},
        **openapi.error_responses(openapi.INFERENCE_ERRORS),
    },
    tags=["inference"],
)
def embed(
    model: Annotated[
        str | None,
        Query(description="Model with an embedding output; the default classifier when omitted (if it has one)."),
    ] = None,
) -> Response[str]:
    # The function's shared state lives in app, which has finished loading by the time a request arrives.
    import app  # noqa: PLC0415

    start = time.perf_counter()
    negotiate(header(router.current_event.headers, "accept"), [JSON])
    models = app.model_store()
    loaded = models.get(models.registry.for_embedding(model or None))
    inputs = app.request_images()
    refuse_regions([len(item.regions or ()) for item in inputs], "POST /embed")
    results = app.pipeline.embed(loaded, inputs, deadline=app.download_deadline())
    return app.answer(loaded, {"output": loaded.spec.embedding_output}, results, start)
