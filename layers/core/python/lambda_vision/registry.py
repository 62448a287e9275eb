"""The model registry: models are declared as data in models.toml, validated once at start-up."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from lambda_vision.errors import ApiError, ErrorCode

E = TypeVar("E", bound=StrEnum)


class Task(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"


class Layout(StrEnum):
    NCHW = "NCHW"
    NHWC = "NHWC"


class ResizeMode(StrEnum):
    STRETCH = "stretch"  # ignore the aspect ratio (to resize_size, default size), then centre-crop to size
    LETTERBOX = "letterbox"  # fit inside size keeping the aspect ratio, pad the rest with pad_value
    SHORT_SIDE = "short_side"  # resize the short side to short_side keeping the aspect ratio, then centre-crop


class ColorOrder(StrEnum):
    RGB = "RGB"
    BGR = "BGR"


class ModelConfigError(ValueError):
    """models.toml describes a model that cannot be served; the message names the model and the field."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Task
    file: str  # relative to the models directory, or s3://bucket/key
    sha256: str
    version: str
    decoder: str
    size: tuple[int, int]  # width, height of the network input
    description: str = ""
    input_name: str | None = None
    layout: Layout = Layout.NCHW
    resize: ResizeMode = ResizeMode.STRETCH
    resize_size: tuple[int, int] | None = None
    short_side: int | None = None
    pad_value: int = 114
    color_order: ColorOrder = ColorOrder.RGB
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    labels: tuple[str, ...] | None = None
    labels_file: str | None = None
    labels_metadata: str | None = None
    decoder_options: Mapping[str, Any] = field(default_factory=dict)
    top_k: int = 5
    score_threshold: float = 0.5
    iou_threshold: float = 0.5
    max_detections: int = 100
    embedding_output: str | None = None  # graph output served by POST /embed
    keypoints: tuple[str, ...] = ()  # names of the points each detection carries, in the decoder's order

    @property
    def is_remote(self) -> bool:
        return self.file.startswith("s3://")

    def describe(self) -> dict[str, Any]:
        """The public description served by GET /models/{name} (without labels, which need the model)."""
        width, height = self.size
        shape = [None, 3, height, width] if self.layout is Layout.NCHW else [None, height, width, 3]
        description: dict[str, Any] = {
            "name": self.name,
            "task": self.task.value,
            "description": self.description,
            "version": self.version,
            "sha256": self.sha256,
            "input": {
                "name": self.input_name,
                "layout": self.layout.value,
                "shape": shape,
                "resize": self.resize.value,
                "color_order": self.color_order.value,
                "scale": self.scale,
                "mean": list(self.mean),
                "std": list(self.std),
            },
            "decoder": self.decoder,
        }
        if self.keypoints:
            description["keypoints"] = list(self.keypoints)
        if self.task is Task.CLASSIFICATION:
            description["defaults"] = {"top_k": self.top_k}
        else:
            description["defaults"] = {
                "threshold": self.score_threshold,
                "iou": self.iou_threshold,
                "max_detections": self.max_detections,
            }
        return description


def _pair(name: str, key: str, value: Any) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise ModelConfigError(f"model {name!r}: {key} must be [width, height] in pixels, got {value!r}")
    return (value[0], value[1])


def _triple(name: str, key: str, value: Any) -> tuple[float, float, float]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int | float) for v in value)):
        raise ModelConfigError(f"model {name!r}: {key} must be three numbers (one per channel), got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _enum(name: str, key: str, value: Any, enum: type[E]) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ModelConfigError(f"model {name!r}: {key} must be one of {allowed}, got {value!r}") from None


def _fraction(name: str, key: str, value: Any) -> float:
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ModelConfigError(f"model {name!r}: {key} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelConfigError(f"model {name!r}: {key} must be a number, got {value!r}")
    return float(value)


def _pad_value(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ModelConfigError(f"model {name!r}: pad_value must be a whole number from 0 to 255, got {value!r}")
    return value


def _positive_int(name: str, key: str, value: Any) -> int:
    if not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"model {name!r}: {key} must be a positive whole number, got {value!r}")
    return value


_KNOWN_KEYS = {
    "task", "file", "sha256", "version", "decoder", "size", "description", "input_name", "layout", "resize",
    "resize_size", "short_side", "pad_value", "color_order", "scale", "mean", "std", "labels", "labels_file",
    "labels_metadata", "decoder_options", "top_k", "score_threshold", "iou_threshold", "max_detections", "source",
    "embedding_output", "keypoints",
}  # fmt: skip


def parse_model(name: str, entry: Mapping[str, Any]) -> ModelSpec:
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise ModelConfigError(f"model {name!r}: unknown field(s) {', '.join(unknown)}")
    for required in ("task", "file", "sha256", "decoder", "size"):
        if required not in entry:
            raise ModelConfigError(f"model {name!r}: {required} is required")
    sha256 = str(entry["sha256"]).lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ModelConfigError(f"model {name!r}: sha256 must be 64 hexadecimal digits")
    resize = _enum(name, "resize", entry.get("resize", "stretch"), ResizeMode)
    short_side = entry.get("short_side")
    if resize is ResizeMode.SHORT_SIDE:
        short_side = _positive_int(name, "short_side", short_side)
    std = _triple(name, "std", entry.get("std", [1.0, 1.0, 1.0]))
    if any(s == 0.0 for s in std):
        raise ModelConfigError(f"model {name!r}: std must not contain 0")
    label_sources = [key for key in ("labels", "labels_file", "labels_metadata") if key in entry]
    if len(label_sources) > 1:
        raise ModelConfigError(f"model {name!r}: give only one of labels, labels_file, labels_metadata")
    labels = entry.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(label, str) for label in labels)):
        raise ModelConfigError(f"model {name!r}: labels must be a list of strings")
    embedding_output = entry.get("embedding_output")
    if embedding_output is not None and (not isinstance(embedding_output, str) or not embedding_output):
        raise ModelConfigError(f"model {name!r}: embedding_output must be the name of a graph output")
    keypoints = entry.get("keypoints", [])
    if not (isinstance(keypoints, list) and all(isinstance(point, str) and point for point in keypoints)):
        raise ModelConfigError(f"model {name!r}: keypoints must be a list of names, got {keypoints!r}")
    if len(set(keypoints)) != len(keypoints):
        raise ModelConfigError(f"model {name!r}: keypoints has a name twice")
    if keypoints and entry.get("task") != Task.DETECTION.value:
        raise ModelConfigError(f"model {name!r}: keypoints belong to detection models")
    options = entry.get("decoder_options", {})
    if not isinstance(options, Mapping):
        raise ModelConfigError(f"model {name!r}: decoder_options must be a table")
    return ModelSpec(
        name=name,
        task=_enum(name, "task", entry["task"], Task),
        file=str(entry["file"]),
        sha256=sha256,
        version=str(entry.get("version", sha256[:12])),
        decoder=str(entry["decoder"]),
        size=_pair(name, "size", entry["size"]),
        description=str(entry.get("description", "")),
        input_name=entry.get("input_name"),
        layout=_enum(name, "layout", entry.get("layout", "NCHW"), Layout),
        resize=resize,
        resize_size=_pair(name, "resize_size", entry["resize_size"]) if "resize_size" in entry else None,
        short_side=short_side,
        pad_value=_pad_value(name, entry.get("pad_value", 114)),
        color_order=_enum(name, "color_order", entry.get("color_order", "RGB"), ColorOrder),
        scale=_number(name, "scale", entry.get("scale", 1.0 / 255.0)),
        mean=_triple(name, "mean", entry.get("mean", [0.0, 0.0, 0.0])),
        std=std,
        labels=tuple(labels) if labels is not None else None,
        labels_file=entry.get("labels_file"),
        labels_metadata=entry.get("labels_metadata"),
        decoder_options=dict(options),
        top_k=_positive_int(name, "top_k", entry.get("top_k", 5)),
        score_threshold=_fraction(name, "score_threshold", entry.get("score_threshold", 0.5)),
        iou_threshold=_fraction(name, "iou_threshold", entry.get("iou_threshold", 0.5)),
        max_detections=_positive_int(name, "max_detections", entry.get("max_detections", 100)),
        embedding_output=embedding_output,
        keypoints=tuple(keypoints),
    )


@dataclass(frozen=True)
class ModelRegistry:
    base_dir: Path
    specs: Mapping[str, ModelSpec]
    defaults: Mapping[Task, str]

    @classmethod
    def load(cls, path: Path) -> ModelRegistry:
        try:
            config = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ModelConfigError(f"model registry {path} not found: run `make models` or set MODELS_DIR") from None
        except tomllib.TOMLDecodeError as error:
            raise ModelConfigError(f"model registry {path} is not valid TOML: {error}") from None
        return cls.from_mapping(config, path.parent)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], base_dir: Path) -> ModelRegistry:
        models = config.get("models", {})
        if not models:
            raise ModelConfigError("the model registry declares no [models.<name>] entry")
        specs = {name: parse_model(name, entry) for name, entry in models.items()}
        defaults: dict[Task, str] = {}
        for task_name, model_name in config.get("defaults", {}).items():
            task = _enum("defaults", task_name, task_name, Task)
            if model_name not in specs:
                raise ModelConfigError(f"defaults.{task_name} names {model_name!r}, which is not declared")
            if specs[model_name].task is not task:
                raise ModelConfigError(f"defaults.{task_name} names {model_name!r}, a {specs[model_name].task} model")
            defaults[task] = model_name
        for task in Task:
            if task not in defaults:
                candidates = [spec.name for spec in specs.values() if spec.task is task]
                if candidates:
                    defaults[task] = candidates[0]
        return cls(base_dir=base_dir, specs=specs, defaults=defaults)

    def get(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise ApiError(
                HTTPStatus.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND, f"No model named {name!r}. Models: {known}."
            ) from None

    def for_task(self, task: Task, name: str | None) -> ModelSpec:
        """The model a route should use: the one asked for (checked against the route's task) or the default."""
        if name is None:
            if task not in self.defaults:
                raise ApiError(HTTPStatus.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND, f"No {task.value} model is configured.")
            return self.specs[self.defaults[task]]
        spec = self.get(name)
        if spec.task is not task:
            route = "/predict" if spec.task is Task.CLASSIFICATION else "/object_detection"
            raise ApiError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                ErrorCode.WRONG_MODEL_TASK,
                f"Model {name!r} is a {spec.task.value} model: send it to POST {route}.",
            )
        return spec

    def for_embedding(self, name: str | None) -> ModelSpec:
        """The model POST /embed should use: the one asked for (it must name an embedding output), else the
        default classifier when it has one, else the first model that has one."""
        if name is not None:
            spec = self.get(name)
            if spec.embedding_output is None:
                with_embeddings = ", ".join(s.name for s in self.specs.values() if s.embedding_output) or "none"
                raise ApiError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    ErrorCode.NO_EMBEDDING,
                    f"Model {name!r} has no embedding output. Models with embeddings: {with_embeddings}.",
                )
            return spec
        default = self.specs.get(self.defaults.get(Task.CLASSIFICATION, ""))
        if default is not None and default.embedding_output is not None:
            return default
        for spec in self.specs.values():
            if spec.embedding_output is not None:
                return spec
        raise ApiError(
            HTTPStatus.NOT_FOUND,
            ErrorCode.MODEL_NOT_FOUND,
            "No model with an embedding output is configured (models.toml `embedding_output`).",
        )
