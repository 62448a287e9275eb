"""`lambda-vision predict`: the API's per-image answers for files, folders and URLs, as JSON Lines or CSV.

Images run through the same library as the function (`lambda_vision.pipeline`), in batches of the model's
choosing; each answer is one line with the API's per-image fields and the `source` it came from, in the order
the sources were given (folders walked recursively, in name order). A file that cannot be read or decoded is an
error line and the run goes on.

Exit status: 0 when every image was answered, 1 when at least one image failed, 2 for a usage error (an
unknown model, nothing to read, bad options).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lambda_vision.errors import ApiError, ErrorCode, InputError
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.inputs import ImageInput
from lambda_vision.models import LoadedModel, ModelStore
from lambda_vision.pipeline import DetectionParameters, ImageResult, Pipeline
from lambda_vision.registry import ModelConfigError, ModelRegistry, Task
from lambda_vision.settings import Settings
from lambda_vision_cli.project import UsageError, settings

# What a folder walk picks up; a file named on the command line is always tried.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
URL_SCHEMES = ("http://", "https://")
CSV_FIELDS = ("index", "source", "status", "width", "height", "label", "score", "count", "error_code", "error_message")


@dataclass(frozen=True)
class Source:
    index: int
    name: str  # the path or URL as it will be reported
    path: Path | None = None
    url: str | None = None


def collect_sources(arguments: Sequence[str]) -> Iterator[Source]:
    """Each argument in order: a URL, a file, or a folder walked recursively (image files, in name order)."""
    index = 0
    for argument in arguments:
        if argument.lower().startswith(URL_SCHEMES):
            yield Source(index, argument, url=argument)
            index += 1
            continue
        path = Path(argument)
        if path.is_dir():
            files = sorted(
                file
                for file in path.rglob("*")
                if file.suffix.lower() in IMAGE_SUFFIXES
                and file.is_file()
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
            )
            for file in files:
                yield Source(index, str(file), path=file)
                index += 1
        else:
            yield Source(index, argument, path=path)
            index += 1


def batched(items: Iterable[Source], size: int) -> Iterator[list[Source]]:
    batch: list[Source] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(source: Source) -> tuple[ImageInput, InputError | None]:
    if source.url is not None:
        return ImageInput(index=source.index, source=source.name, url=source.url), None
    assert source.path is not None
    try:
        data = source.path.read_bytes()
    except OSError as error:
        problem = InputError(ErrorCode.IMAGE_UNDECODABLE, f"The file cannot be read: {error.strerror or error}.")
        return ImageInput(index=source.index, source=source.name, data=b""), problem
    return ImageInput(index=source.index, source=source.name, data=data), None


@dataclass(frozen=True)
class Request:
    """What every image of a run is asked: a model and the parameters of its task."""

    model: LoadedModel
    top_k: int | None
    detection: DetectionParameters | None

    @property
    def parameters(self) -> dict[str, Any]:
        if self.detection is not None:
            return dict(self.detection.__dict__)
        return {"top_k": self.top_k}


def resolve_request(
    store: ModelStore,
    *,
    model: str | None,
    task: str | None,
    top_k: int | None,
    threshold: float | None,
    iou: float | None,
    max_detections: int | None,
) -> Request:
    registry = store.registry
    detection_options = threshold is not None or iou is not None or max_detections is not None
    if model is not None:
        if model not in registry.specs:
            raise UsageError(f"no model named {model!r}; models: {', '.join(sorted(registry.specs))}")
        spec = registry.specs[model]
    else:
        wanted = Task(task) if task else (Task.DETECTION if detection_options else Task.CLASSIFICATION)
        if wanted not in registry.defaults:
            raise UsageError(f"no {wanted.value} model in the registry")
        spec = registry.specs[registry.defaults[wanted]]
    if spec.task is Task.CLASSIFICATION and detection_options:
        raise UsageError(f"{spec.name} is a classification model: --threshold, --iou and --max-detections do not apply")
    if spec.task is Task.DETECTION and top_k is not None:
        raise UsageError(f"{spec.name} is a detection model: --top-k does not apply")
    try:
        loaded = store.get(spec)
    except ApiError as error:
        raise UsageError(error.message) from None
    if spec.task is Task.CLASSIFICATION:
        return Request(loaded, top_k or spec.top_k, None)
    parameters = DetectionParameters(
        threshold=spec.score_threshold if threshold is None else threshold,
        iou=spec.iou_threshold if iou is None else iou,
        max_detections=max_detections or spec.max_detections,
    )
    return Request(loaded, None, parameters)


class Predictor:
    def __init__(self, request: Request, pipeline: Pipeline) -> None:
        self.request = request
        self.pipeline = pipeline

    def __call__(self, batch: list[Source]) -> list[dict[str, Any]]:
        read = [_read(source) for source in batch]
        inputs = [image for image, problem in read if problem is None]
        answered = iter(self._run(inputs))
        lines = []
        for (image, problem), source in zip(read, batch, strict=True):
            if problem is not None:
                line = ImageResult(input=image, error=problem).to_json()
            else:
                line = next(answered).to_json()
            line["index"], line["source"] = source.index, source.name
            lines.append(line)
        return lines

    def _run(self, inputs: list[ImageInput]) -> list[ImageResult]:
        if not inputs:
            return []
        request = self.request
        if request.detection is not None:
            return self.pipeline.detect(request.model, inputs, request.detection)
        assert request.top_k is not None
        return self.pipeline.classify(request.model, inputs, request.top_k)


class Progress:
    """A one-line progress report on a terminal's stderr; silent otherwise."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0

    def update(self, lines: Sequence[dict[str, Any]]) -> None:
        self.done += len(lines)
        self.failed += sum(1 for line in lines if line["status"] != "ok")
        if self.enabled:
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            self.stream.write(f"\r{self.done} images, {self.failed} failed, {rate:.1f} images/s")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _csv_row(line: dict[str, Any]) -> dict[str, Any]:
    row = {key: line.get(key, "") for key in ("index", "source", "status", "width", "height")}
    error = line.get("error") or {}
    row["error_code"], row["error_message"] = error.get("code", ""), error.get("message", "")
    if line.get("predictions"):
        row["label"], row["score"] = line["predictions"][0]["label"], line["predictions"][0]["score"]
        row["count"] = len(line["predictions"])
    if "detections" in line:
        row["count"] = len(line["detections"])
        if line["detections"]:
            best = max(line["detections"], key=lambda detection: detection["score"])
            row["label"], row["score"] = best["label"], best["score"]
    return row


def writer_for(output: IO[str], as_csv: bool) -> Callable[[dict[str, Any]], None]:
    if as_csv:
        table = csv.DictWriter(output, fieldnames=CSV_FIELDS, extrasaction="ignore")
        table.writeheader()

        def write_row(line: dict[str, Any]) -> None:
            table.writerow(_csv_row(line))

        return write_row

    def write_line(line: dict[str, Any]) -> None:
        output.write(json.dumps(line, separators=(",", ":")) + "\n")

    return write_line


def load_store(config: Settings) -> ModelStore:
    try:
        registry = ModelRegistry.load(config.models_config_path)
    except ModelConfigError as error:
        raise UsageError(str(error)) from None
    return ModelStore(registry, config)


def run(
    sources: Iterable[Source],
    predictor: Callable[[list[Source]], list[dict[str, Any]]],
    write: Callable[[dict[str, Any]], None],
    progress: Progress,
    *,
    batch_size: int,
    workers: int,
) -> tuple[int, int]:
    """Answers every source in order; (images, failed)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # map() keeps the order; at most `workers` batches are read and decoded at once beyond the one written.
        pending: list[Any] = []
        batches = iter(batched(sources, batch_size))
        for batch in batches:
            pending.append(pool.submit(predictor, batch))
            if len(pending) > workers:
                lines = pending.pop(0).result()
                _emit(lines, write, progress)
        for future in pending:
            _emit(future.result(), write, progress)
    progress.close()
    return progress.done, progress.failed


def _emit(lines: list[dict[str, Any]], write: Callable[[dict[str, Any]], None], progress: Progress) -> None:
    for line in lines:
        write(line)
    progress.update(lines)


def predict_command(
    arguments: Sequence[str],
    *,
    model: str | None,
    task: str | None,
    top_k: int | None,
    threshold: float | None,
    iou: float | None,
    max_detections: int | None,
    output: Path | None,
    workers: int,
    batch_size: int | None,
) -> int:
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    config = settings()
    store = load_store(config)
    request = resolve_request(
        store, model=model, task=task, top_k=top_k, threshold=threshold, iou=iou, max_detections=max_detections
    )
    size = batch_size or (config.max_images_per_request if request.model.dynamic_batch else 1)
    pipeline = Pipeline(UrlFetcher(FetchPolicy.from_settings(config)), config.max_image_pixels)
    sources = list(collect_sources(arguments))
    if not sources:
        raise UsageError("no image to read: give files, folders with image files, or http(s) URLs")
    progress = Progress(sys.stderr, sys.stderr.isatty())
    started = time.perf_counter()
    target: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        write = writer_for(target, as_csv=output is not None and output.suffix.lower() == ".csv")
        images, failed = run(sources, Predictor(request, pipeline), write, progress, batch_size=size, workers=workers)
    finally:
        if output:
            target.close()
    elapsed = time.perf_counter() - started
    spec = request.model.spec
    print(
        f"{images} images, {images - failed} answered, {failed} failed; model {spec.name} ({spec.version}), "
        f"parameters {json.dumps(request.parameters)}; {elapsed:.2f} s after loading the model, "
        f"{images / max(elapsed, 1e-9):.1f} images/s",
        file=sys.stderr,
    )
    return 1 if failed else 0
