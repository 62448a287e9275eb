"""From request inputs to results: fetch, decode, pre-process, run the network (batched), decode outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lambda_vision.decoders import ClassificationDecoder, DetectionDecoder
from lambda_vision.decoders.base import Classification, Detection, Detections, FloatArray
from lambda_vision.decoders.boxes import batched_nms
from lambda_vision.errors import InputError
from lambda_vision.fetch import UrlFetcher
from lambda_vision.imaging import DecodedImage, PixelBudget, decode_image
from lambda_vision.inputs import ImageInput
from lambda_vision.models import LoadedModel
from lambda_vision.preprocess import Geometry
from lambda_vision.regions import Box, check_inside

MAX_PARALLEL_FETCHES = 8


@dataclass(frozen=True)
class DetectionParameters:
    threshold: float
    iou: float
    max_detections: int


@dataclass
class RegionResult:
    """One box of an image, classified on its own: given by the request, or found by a detector."""

    box: Box
    classifications: list[Classification] = field(default_factory=list)
    detection: Detection | None = None

    def to_json(self, keypoint_names: Sequence[str] = ()) -> dict[str, Any]:
        region: dict[str, Any] = {"box": _box_json(self.box)}
        if self.detection is not None:
            region["label"] = self.detection.label
            region["score"] = round(self.detection.score, 6)
            if self.detection.keypoints:
                region["keypoints"] = _points_json(self.detection.keypoints, keypoint_names)
        region["predictions"] = [{"label": c.label, "score": round(c.score, 6)} for c in self.classifications]
        return region


def _box_json(box: Sequence[float]) -> dict[str, float]:
    return dict(zip(("x1", "y1", "x2", "y2"), (round(v, 1) for v in box), strict=True))


def _points_json(points: Sequence[tuple[float, float]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Points in original pixels, each with its name (its position when the model names none)."""
    names = names or [str(position) for position in range(len(points))]
    return [{"name": name, "x": round(x, 1), "y": round(y, 1)} for name, (x, y) in zip(names, points, strict=True)]


@dataclass(frozen=True)
class Crop:
    result: ImageResult
    region: RegionResult
    tensor: FloatArray


@dataclass
class ImageResult:
    input: ImageInput
    width: int | None = None  # of the image as displayed, once its header was read
    height: int | None = None
    decoded: DecodedImage | None = None  # kept only when asked for (keep_images): else released once in the tensor
    error: InputError | None = None
    classifications: list[Classification] | None = None
    detections: list[Detection] | None = None
    embedding: list[float] | None = None
    regions: list[RegionResult] | None = None
    keypoint_names: tuple[str, ...] = ()
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
        elif self.regions is not None:
            result["regions"] = [region.to_json(self.keypoint_names) for region in self.regions]
        elif self.classifications is not None:
            result["predictions"] = [{"label": c.label, "score": round(c.score, 6)} for c in self.classifications]
        elif self.detections is not None:
            result["detections"] = [self._detection_json(d) for d in self.detections]
        elif self.embedding is not None:
            result["dimension"] = len(self.embedding)
            result["embedding"] = [round(value, 7) for value in self.embedding]
        result["timings_ms"] = {stage: round(ms, 3) for stage, ms in self.timings_ms.items()}
        return result

    def _detection_json(self, detection: Detection) -> dict[str, Any]:
        body: dict[str, Any] = {
            "label": detection.label,
            "score": round(detection.score, 6),
            "box": _box_json(detection.box),
        }
        if detection.keypoints:
            body["keypoints"] = _points_json(detection.keypoints, self.keypoint_names)
        return body


def _has_area(box: Box) -> bool:
    return box[2] - box[0] >= 1.0 and box[3] - box[1] >= 1.0


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
            points: list[list[list[float]]] = [[] for _ in range(len(boxes))]
            if kept.keypoints is not None:
                points = result._geometry.points_to_original(kept.keypoints).tolist()
            result.keypoint_names = model.spec.keypoints
            result.detections = [
                Detection(
                    decoder.label(int(class_id)),
                    float(score),
                    (box[0], box[1], box[2], box[3]),
                    tuple((point[0], point[1]) for point in image_points),
                )
                for box, score, class_id, image_points in zip(
                    boxes.tolist(), kept.scores.tolist(), kept.class_ids, points, strict=True
                )
            ]

        return self._run(model, inputs, decode, deadline, keep_images)

    def embed(
        self, model: LoadedModel, inputs: Sequence[ImageInput], *, deadline: float | None = None
    ) -> list[ImageResult]:
        """The model's embedding output of each image, scaled to unit length (cosine = dot product)."""
        index = model.embedding_index
        assert index is not None

        def decode(result: ImageResult, outputs: list[FloatArray]) -> None:
            vector = np.asarray(outputs[index], dtype=np.float64).reshape(-1)
            norm = float(np.linalg.norm(vector))
            result.embedding = (vector / norm if norm > 0 else vector).tolist()

        return self._run(model, inputs, decode, deadline, False)

    def classify_regions(
        self,
        model: LoadedModel,
        inputs: Sequence[ImageInput],
        top_k: int,
        max_batch: int,
        *,
        deadline: float | None = None,
    ) -> list[ImageResult]:
        """Classify the regions each image names (images without regions are classified whole). Raises 422
        when a region reaches outside its image."""
        whole = [item for item in inputs if item.regions is None]
        classified = self.classify(model, whole, top_k, deadline=deadline) if whole else []
        by_index = {result.input.index: result for result in classified}
        boxed = [ImageResult(input=item) for item in inputs if item.regions is not None]
        self._load(boxed, deadline)
        budget = PixelBudget(self.max_request_pixels) if self.max_request_pixels is not None else None
        crops: list[Crop] = []
        for result in boxed:
            if not result.ok:
                continue
            self._decode_full(result, budget)
            if result.decoded is None:
                continue
            regions = result.input.regions or ()
            check_inside(regions, result.decoded.width, result.decoded.height, f"images[{result.input.index}].regions")
            result.regions = [RegionResult(box) for box in regions]
            crops.extend(self._crops(model, result, result.regions))
            result.decoded, result._fetched = None, None  # the crops' tensors hold what is needed
        self._classify_crops(model, crops, top_k, max_batch)
        by_index.update({result.input.index: result for result in boxed})
        return [by_index[item.index] for item in inputs]

    def detect_then_classify(
        self,
        detector: LoadedModel,
        classifier: LoadedModel,
        inputs: Sequence[ImageInput],
        parameters: DetectionParameters,
        *,
        top_k: int,
        max_batch: int,
        deadline: float | None = None,
    ) -> list[ImageResult]:
        """Detect in each image, then classify each detected box: the answer is one region per detection."""
        results = self.detect(detector, inputs, parameters, deadline=deadline, keep_images=True)
        crops: list[Crop] = []
        for result in results:
            if not result.ok or result.detections is None:
                continue
            detections, result.detections = result.detections, None
            result.regions = [RegionResult(d.box, detection=d) for d in detections if _has_area(d.box)]
            decoded = result.decoded
            if result.regions and decoded is not None and decoded.image.size != (decoded.width, decoded.height):
                self._decode_full(result, None)  # the detector's decode was reduced: crops need every pixel
            if result.decoded is not None:
                crops.extend(self._crops(classifier, result, result.regions))
            result.decoded, result._fetched = None, None  # the crops' tensors hold what is needed
        self._classify_crops(classifier, crops, top_k, max_batch)
        return results

    def _decode_full(self, result: ImageResult, budget: PixelBudget | None) -> None:
        """The whole image at full size (crops need every pixel), counted against the request's budget."""
        start = time.perf_counter()
        try:
            result.decoded = decode_image(self.image_bytes(result), self.max_image_pixels, None, budget)
            result.width, result.height = result.decoded.width, result.decoded.height
        except InputError as error:
            result.error = error
        finally:
            result.timings_ms["decode"] = result.timings_ms.get("decode", 0.0) + _elapsed_ms(start)

    @staticmethod
    def _crops(model: LoadedModel, result: ImageResult, regions: Sequence[RegionResult]) -> Iterator[Crop]:
        """Each region cut from the decoded image, then pre-processed as the model would a whole image."""
        assert result.decoded is not None
        start = time.perf_counter()
        image = result.decoded.image
        for region in regions:
            x1, y1, x2, y2 = region.box
            crop = image.crop((int(x1), int(y1), max(int(x1) + 1, round(x2)), max(int(y1) + 1, round(y2))))
            tensor, _ = model.preprocessor(crop, crop.width, crop.height)
            yield Crop(result, region, tensor)
        result.timings_ms["preprocess"] = result.timings_ms.get("preprocess", 0.0) + _elapsed_ms(start)

    @staticmethod
    def _classify_crops(model: LoadedModel, crops: Sequence[Crop], top_k: int, max_batch: int) -> None:
        """Every crop of the request through the classifier: one batch when the model takes batches and the
        crops fit max_batch (memory stays bounded by it), else batches of max_batch."""
        decoder = model.decoder
        assert isinstance(decoder, ClassificationDecoder)
        for start in range(0, len(crops), max(1, max_batch)):
            chunk = crops[start : start + max(1, max_batch)]
            began = time.perf_counter()
            outputs = model.run([crop.tensor for crop in chunk])
            share = _elapsed_ms(began) / len(chunk)
            for crop, region_outputs in zip(chunk, outputs, strict=True):
                crop.region.classifications = decoder.decode(region_outputs, top_k)[0]
                timings = crop.result.timings_ms
                timings["inference"] = timings.get("inference", 0.0) + share

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
