"""From request inputs to results: fetch, decode, pre-process, run the network (batched), decode outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lambda_vision.decoders import ClassificationDecoder, DetectionDecoder
from lambda_vision.decoders.base import Classification, Detection, Detections, FloatArray
from lambda_vision.decoders.boxes import batched_nms
from lambda_vision.errors import InputError
from lambda_vision.fetch import UrlFetcher
from lambda_vision.imaging import DecodedImage, PixelBudget, decode_image
from lambda_vision.inputs import ImageInput
from lambda_vision.models import LoadedModel
from lambda_vision.preprocess import Geometry

MAX_PARALLEL_FETCHES = 8


@dataclass(frozen=True)
class DetectionParameters:
    threshold: float
    iou: float
    max_detections: int


@dataclass
class ImageResult:
    input: ImageInput
    width: int | None = None  # of the image as displayed, once its header was read
    height: int | None = None
    decoded: DecodedImage | None = None  # kept only when asked for (keep_images): else released once in the tensor
    error: InputError | None = None
    classifications: list[Classification] | None = None
    detections: list[Detection] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    _fetched: bytes | None = None
    _tensor: FloatArray | None = None
    _geometry: Geometry | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "index": self.input.index,
            "source": self.input.source,
            "status": "ok" if self.error is None else "error",
        }
        if self.width is not None:
            result["width"], result["height"] = self.width, self.height
        if self.error is not None:
            result["error"] = self.error.to_body()
        elif self.classifications is not None:
            result["predictions"] = [{"label": c.label, "score": round(c.score, 6)} for c in self.classifications]
        elif self.detections is not None:
            result["detections"] = [
                {
                    "label": d.label,
                    "score": round(d.score, 6),
                    "box": dict(zip(("x1", "y1", "x2", "y2"), (round(v, 1) for v in d.box), strict=True)),
                }
                for d in self.detections
            ]
        result["timings_ms"] = {stage: round(ms, 3) for stage, ms in self.timings_ms.items()}
        return result


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Pipeline:
    """Runs a request's images through a model.

    Memory stays bounded whatever the images: each is charged to the request's pixel budget from its header
    before it is decoded, images are decoded one at a time, and a decoded image (and a downloaded file) is
    released as soon as its input tensor exists, unless `keep_images` asks for it (one annotated image).
    """

    def __init__(self, fetcher: UrlFetcher, max_image_pixels: int, max_request_pixels: int | None = None) -> None:
        self.fetcher = fetcher
        self.max_image_pixels = max_image_pixels
        self.max_request_pixels = max_request_pixels

    def classify(
        self,
        model: LoadedModel,
        inputs: Sequence[ImageInput],
        top_k: int,
        *,
        deadline: float | None = None,
        keep_images: bool = False,
    ) -> list[ImageResult]:
        """`deadline` (time.monotonic()) is when every URL download of the request must have ended."""
        decoder = model.decoder
        assert isinstance(decoder, ClassificationDecoder)

        def decode(result: ImageResult, outputs: list[FloatArray]) -> None:
            result.classifications = decoder.decode(outputs, top_k)[0]

        return self._run(model, inputs, decode, deadline, keep_images)

    def detect(
        self,
        model: LoadedModel,
        inputs: Sequence[ImageInput],
        parameters: DetectionParameters,
        *,
        deadline: float | None = None,
        keep_images: bool = False,
    ) -> list[ImageResult]:
        decoder = model.decoder
        assert isinstance(decoder, DetectionDecoder)

        def decode(result: ImageResult, outputs: list[FloatArray]) -> None:
            assert result._geometry is not None
            candidates: Detections = decoder.decode(outputs, model.spec.size, parameters.threshold)[0]
            kept = batched_nms(candidates, parameters.iou, parameters.max_detections)
            boxes = result._geometry.to_original(kept.boxes)
            result.detections = [
                Detection(decoder.label(int(class_id)), float(score), (box[0], box[1], box[2], box[3]))
                for box, score, class_id in zip(boxes.tolist(), kept.scores.tolist(), kept.class_ids, strict=True)
            ]

        return self._run(model, inputs, decode, deadline, keep_images)

    @staticmethod
    def image_bytes(result: ImageResult) -> bytes:
        """The encoded image of a result, as uploaded or fetched."""
        return (result.input.data if result.input.url is None else result._fetched) or b""

    def _run(
        self,
        model: LoadedModel,
        inputs: Sequence[ImageInput],
        decode_outputs: Callable[[ImageResult, list[FloatArray]], None],
        deadline: float | None,
        keep_images: bool,
    ) -> list[ImageResult]:
        results = [ImageResult(input=item) for item in inputs]
        self._load(results, deadline)
        budget = PixelBudget(self.max_request_pixels) if self.max_request_pixels is not None else None
        for result in results:
            if result.ok:
                self._prepare(model, result, budget, keep_images)
        ready = [result for result in results if result.ok]
        start = time.perf_counter()
        outputs = model.run([result._tensor for result in ready if result._tensor is not None])
        inference_ms = _elapsed_ms(start) / max(1, len(ready))
        for result, image_outputs in zip(ready, outputs, strict=True):
            result.timings_ms["inference"] = inference_ms
            start = time.perf_counter()
            decode_outputs(result, image_outputs)
            result.timings_ms["postprocess"] = _elapsed_ms(start)
            result._tensor = None
        return results

    def _load(self, results: Sequence[ImageResult], deadline: float | None) -> None:
        """Fetch URL inputs, several at a time, each within its own time limit and the request's deadline."""
        remote = [result for result in results if result.input.url is not None]
        if not remote:
            return

        def fetch(result: ImageResult) -> None:
            start = time.perf_counter()
            try:
                assert result.input.url is not None
                result._fetched = self.fetcher.fetch(result.input.url, deadline).data
            except InputError as error:
                result.error = error
            result.timings_ms["fetch"] = _elapsed_ms(start)

        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_FETCHES, len(remote))) as pool:
            list(pool.map(fetch, remote))

    def _prepare(self, model: LoadedModel, result: ImageResult, budget: PixelBudget | None, keep_image: bool) -> None:
        start = time.perf_counter()
        try:
            decoded = decode_image(
                self.image_bytes(result), self.max_image_pixels, model.preprocessor.resized_size, budget
            )
        except InputError as error:
            result.error = error
            result._fetched = None
            return
        finally:
            result.timings_ms["decode"] = _elapsed_ms(start)
        result.width, result.height = decoded.width, decoded.height
        start = time.perf_counter()
        result._tensor, result._geometry = model.preprocessor(decoded.image, decoded.width, decoded.height)
        result.timings_ms["preprocess"] = _elapsed_ms(start)
        if keep_image:
            result.decoded = decoded
        else:
            result._fetched = None
