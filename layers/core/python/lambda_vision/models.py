"""ONNX Runtime sessions: created once per container, lazily per model, and reused by every request."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state

from lambda_vision.checksums import sha256_of
from lambda_vision.decoders import ClassificationDecoder, DetectionDecoder, create_decoder
from lambda_vision.decoders.base import FloatArray
from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.preprocess import Preprocessor
from lambda_vision.registry import ModelConfigError, ModelRegistry, ModelSpec, Task
from lambda_vision.settings import Settings

# ONNX Runtime's errors (InvalidProtobuf, NoSuchFile, Fail, ...) share no base class but Exception.
ONNXRUNTIME_ERRORS = tuple(
    value
    for value in vars(onnxruntime_pybind11_state).values()
    if isinstance(value, type) and issubclass(value, Exception)
)

MODEL_LOAD_ERRORS: tuple[type[Exception], ...] = (ModelConfigError, ValueError, OSError, *ONNXRUNTIME_ERRORS)


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    session: ort.InferenceSession
    input_name: str
    labels: tuple[str, ...]
    dynamic_batch: bool
    preprocessor: Preprocessor
    decoder: ClassificationDecoder | DetectionDecoder
    embedding_index: int | None = None  # position of the embedding output among the graph's outputs
    embedding_dimension: int | None = None

    def run(self, tensors: Sequence[FloatArray]) -> list[list[FloatArray]]:
        """Run the network on a list of input tensors; one list of outputs per tensor, in order.

        With a dynamic batch dimension the tensors run as one batch; otherwise one at a time.
        """
        if not tensors:
            return []
        if self.dynamic_batch:
            outputs = self.session.run(None, {self.input_name: np.stack(tensors)})
            return [[output[i : i + 1] for output in outputs] for i in range(len(tensors))]
        return [self.session.run(None, {self.input_name: tensor[np.newaxis]}) for tensor in tensors]

    def describe(self) -> dict[str, Any]:
        description = self.spec.describe()
        description["input"]["name"] = self.input_name
        description["labels"] = list(self.labels)
        description["batching"] = self.dynamic_batch
        if self.embedding_index is not None:
            description["embedding"] = {"output": self.spec.embedding_output, "dimension": self.embedding_dimension}
        return description


class ModelStore:
    """Loads models on first use (thread-safe) and keeps them for the life of the container."""

    def __init__(self, registry: ModelRegistry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def get(self, spec: ModelSpec) -> LoadedModel:
        model = self._loaded.get(spec.name)
        if model is None:
            with self._lock:
                model = self._loaded.get(spec.name)
                if model is None:
                    model = self._load(spec)
                    self._loaded[spec.name] = model
        return model

    def get_for_task(self, task: Task, name: str | None) -> LoadedModel:
        return self.get(self.registry.for_task(task, name))

    def _load(self, spec: ModelSpec) -> LoadedModel:
        try:
            path = self._model_file(spec)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = self.settings.inference_threads
            options.log_severity_level = 3
            spinning = "1" if self.settings.inference_spinning else "0"
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            inputs = {item.name: item for item in session.get_inputs()}
            input_name = spec.input_name or next(iter(inputs))
            if input_name not in inputs:
                raise ModelConfigError(f"model {spec.name!r}: the graph has no input {input_name!r} ({list(inputs)})")
            batch_dimension = inputs[input_name].shape[0]
            labels = self._labels(spec, session)
            decoder = create_decoder(spec.decoder, labels, spec.decoder_options)
            if decoder.task is not spec.task:
                raise ModelConfigError(f"model {spec.name!r}: decoder {spec.decoder!r} is for {decoder.task} models")
            points = decoder.keypoint_count if isinstance(decoder, DetectionDecoder) else 0
            if spec.keypoints and len(spec.keypoints) != points:
                names = len(spec.keypoints)
                raise ModelConfigError(f"model {spec.name!r}: {names} keypoint names, its decoder gives {points}")
            embedding_index, embedding_dimension = self._embedding(spec, session)
        except MODEL_LOAD_ERRORS as error:
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                ErrorCode.MODEL_UNAVAILABLE,
                f"Model {spec.name!r} could not be loaded: {error}",
            ) from error
        return LoadedModel(
            spec=spec,
            session=session,
            input_name=input_name,
            labels=labels,
            dynamic_batch=not isinstance(batch_dimension, int),
            preprocessor=Preprocessor(spec),
            decoder=decoder,
            embedding_index=embedding_index,
            embedding_dimension=embedding_dimension,
        )

    @staticmethod
    def _embedding(spec: ModelSpec, session: ort.InferenceSession) -> tuple[int | None, int | None]:
        if spec.embedding_output is None:
            return None, None
        outputs = [output.name for output in session.get_outputs()]
        if spec.embedding_output not in outputs:
            raise ModelConfigError(
                f"model {spec.name!r}: embedding_output {spec.embedding_output!r} is not an output ({outputs})"
            )
        index = outputs.index(spec.embedding_output)
        shape = session.get_outputs()[index].shape
        dimension = shape[-1] if shape and isinstance(shape[-1], int) else None
        return index, dimension

    def _model_file(self, spec: ModelSpec) -> Path:
        if spec.is_remote:
            return self._download(spec)
        path = self.registry.base_dir / spec.file
        if not path.exists():
            raise ModelConfigError(f"model {spec.name!r}: {path} does not exist (run `make models`?)")
        if (digest := sha256_of(path)) != spec.sha256:
            raise ModelConfigError(f"model {spec.name!r}: {path.name} has sha256 {digest}, expected {spec.sha256}")
        return path

    def _download(self, spec: ModelSpec) -> Path:
        """Models too large for the layer live in S3 and are cached in /tmp, keyed by their checksum."""
        target = self.settings.model_cache_dir / f"{spec.sha256}.onnx"
        if target.exists() and sha256_of(target) == spec.sha256:
            return target
        import boto3  # noqa: PLC0415 - provided by the Lambda runtime; only needed for S3 models
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        bucket, _, key = spec.file.removeprefix("s3://").partition("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        try:
            boto3.client("s3").download_file(bucket, key, str(partial))
        except (BotoCoreError, ClientError) as error:
            partial.unlink(missing_ok=True)
            raise ModelConfigError(f"model {spec.name!r}: {spec.file} could not be downloaded: {error}") from None
        if (digest := sha256_of(partial)) != spec.sha256:
            partial.unlink()
            raise ModelConfigError(f"model {spec.name!r}: {spec.file} has sha256 {digest}, expected {spec.sha256}")
        partial.replace(target)
        return target

    def _labels(self, spec: ModelSpec, session: ort.InferenceSession) -> tuple[str, ...]:
        if spec.labels is not None:
            return spec.labels
        if spec.labels_file is not None:
            lines = (self.registry.base_dir / spec.labels_file).read_text().splitlines()
            return tuple(line.strip() for line in lines if line.strip())
        if spec.labels_metadata is not None:
            metadata = session.get_modelmeta().custom_metadata_map
            if spec.labels_metadata not in metadata:
                raise ModelConfigError(f"model {spec.name!r}: no metadata key {spec.labels_metadata!r} in the graph")
            return tuple(line for line in metadata[spec.labels_metadata].splitlines() if line)
        return ()
