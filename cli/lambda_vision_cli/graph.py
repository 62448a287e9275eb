"""What an ONNX graph is: its input layout and size, batching, output format (which decoder reads it) and labels.

The output format is recognised from the outputs of one run on a blank input, so symbolic dimensions do not
hide it:
- softmax classification: an output [N, classes] (probabilities when the graph ends with a Softmax);
- YOLOv8: one output [N, 4 + classes, anchors] (or transposed), anchors = cells of strides 8, 16 and 32;
- PicoDet: class scores [N, cells, classes] per stride, then box distributions [N, cells, 4 * bins] per stride;
- CenterFace: heatmap [N, 1, h, w], scale [N, 2, h, w], offset [N, 2, h, w], landmarks [N, 10, h, w] at stride 4.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

DEFAULT_SIZES = {"classification": (224, 224), "detection": (640, 640)}
LABEL_KEYS_FIRST = ("names", "labels", "classes", "character")


class GraphError(Exception):
    """The graph cannot be served as it is; the message says what was found."""


@dataclass(frozen=True)
class Recognised:
    decoder: str
    task: str
    classes: int
    options: Mapping[str, Any] = field(default_factory=dict)
    evidence: str = ""


@dataclass(frozen=True)
class GraphInfo:
    input_name: str
    input_shape: tuple[Any, ...]
    layout: str
    fixed_size: tuple[int, int] | None  # width, height when the graph fixes them
    dynamic_batch: bool
    outputs: tuple[tuple[str, tuple[Any, ...]], ...]
    metadata: Mapping[str, str]

    def describe_outputs(self, shapes: Sequence[tuple[int, ...]] | None = None) -> str:
        shown = shapes or [shape for _, shape in self.outputs]
        return ", ".join(f"{name} {list(shape)}" for (name, _), shape in zip(self.outputs, shown, strict=True))


def open_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors share no base class
        raise GraphError(f"{path} is not a graph ONNX Runtime can load: {error}") from None


def inspect(session: ort.InferenceSession) -> GraphInfo:
    images = [item for item in session.get_inputs() if len(item.shape) == 4]
    if len(images) != 1:
        found = ", ".join(f"{item.name} {item.shape}" for item in session.get_inputs())
        raise GraphError(f"expected one image input of rank 4 ([N, 3, H, W] or [N, H, W, 3]); the graph has {found}")
    image = images[0]
    shape = tuple(image.shape)
    if shape[1] == 3 and shape[3] != 3:
        layout, height, width = "NCHW", shape[2], shape[3]
    elif shape[3] == 3:
        layout, height, width = "NHWC", shape[1], shape[2]
    else:
        raise GraphError(f"input {image.name} {list(shape)} has no axis of 3 colour channels at position 1 or 3")
    fixed = (width, height) if isinstance(width, int) and isinstance(height, int) else None
    return GraphInfo(
        input_name=image.name,
        input_shape=shape,
        layout=layout,
        fixed_size=fixed,
        dynamic_batch=not isinstance(shape[0], int),
        outputs=tuple((item.name, tuple(item.shape)) for item in session.get_outputs()),
        metadata=dict(session.get_modelmeta().custom_metadata_map),
    )


def blank_run(session: ort.InferenceSession, info: GraphInfo, size: tuple[int, int]) -> list[np.ndarray[Any, Any]]:
    width, height = size
    shape = (1, 3, height, width) if info.layout == "NCHW" else (1, height, width, 3)
    rng = np.random.default_rng(0)
    tensor = rng.random(shape, dtype=np.float32)
    outputs: list[np.ndarray[Any, Any]] = session.run(None, {info.input_name: tensor})
    return outputs


def _ends_with_softmax(path: Path, output_name: str) -> bool | None:
    try:
        import onnx  # noqa: PLC0415 - optional: the graph's last operator, when onnx is installed
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {name: node.op_type for node in graph.node for name in node.output}
    return bool(producers.get(output_name) == "Softmax")


class Probe(NamedTuple):
    """One run of a graph: what the recognisers look at."""

    path: Path
    info: GraphInfo
    shapes: Sequence[tuple[int, ...]]
    values: Sequence[Any]
    size: tuple[int, int]  # width, height of the input


def recognise(
    path: Path, info: GraphInfo, shapes: Sequence[tuple[int, ...]], values: Sequence[Any], size: tuple[int, int]
) -> Recognised:
    probe = Probe(path, info, shapes, values, size)
    for check in (_centerface, _picodet, _yolov8, _softmax):
        found = check(probe)
        if found is not None:
            return found
    raise GraphError(
        f"the outputs ({info.describe_outputs(shapes)}) match no decoder of lambda-vision: softmax classification "
        "needs an output [N, classes]; YOLOv8 one output [N, 4 + classes, anchors]; PicoDet class scores and box "
        "distributions per stride; CenterFace heatmap, scale, offset and landmarks at stride 4. A new output "
        "format needs a new decoder (layers/core/python/lambda_vision/decoders)."
    )


def _cells(width: int, height: int, stride: int) -> int:
    return math.ceil(height / stride) * math.ceil(width / stride)


def _centerface(probe: Probe) -> Recognised | None:
    shapes, (width, height) = probe.shapes, probe.size
    if len(shapes) != 4 or any(len(shape) != 4 for shape in shapes):
        return None
    channels = [shape[1] for shape in shapes]
    grids = {shape[2:] for shape in shapes}
    if channels == [1, 2, 2, 10] and grids == {(math.ceil(height / 4), math.ceil(width / 4))}:
        return Recognised("centerface", "detection", 1, {}, "heatmap, scale, offset and 5 landmarks at stride 4")
    return None


def _picodet(probe: Probe) -> Recognised | None:
    shapes, (width, height) = probe.shapes, probe.size
    if len(shapes) < 2 or len(shapes) % 2 or any(len(shape) != 3 for shape in shapes):
        return None
    half = len(shapes) // 2
    scores, boxes = shapes[:half], shapes[half:]
    classes = {shape[2] for shape in scores}
    sides = {shape[2] for shape in boxes}
    if len(classes) != 1 or len(sides) != 1 or next(iter(sides)) % 4:
        return None
    strides = []
    for score, box in zip(scores, boxes, strict=True):
        if score[1] != box[1]:
            return None
        stride = next((s for s in (8, 16, 32, 64, 128) if _cells(width, height, s) == score[1]), None)
        if stride is None:
            return None
        strides.append(stride)
    bins = next(iter(sides)) // 4
    count = next(iter(classes))
    evidence = f"class scores and {bins}-bin box distributions for strides {strides}"
    return Recognised("picodet", "detection", count, {"strides": strides, "bins": bins}, evidence)


def _yolov8(probe: Probe) -> Recognised | None:
    shapes, (width, height) = probe.shapes, probe.size
    if len(shapes) != 1 or len(shapes[0]) != 3:
        return None
    anchors = sum(_cells(width, height, stride) for stride in (8, 16, 32))
    _, first, second = shapes[0]
    if second == anchors and first > 4:
        return Recognised("yolov8", "detection", first - 4, {}, f"[N, 4 + {first - 4}, {anchors} anchors]")
    if first == anchors and second > 4:
        return Recognised("yolov8", "detection", second - 4, {}, f"[N, {anchors} anchors, 4 + {second - 4}]")
    return None


def _softmax(probe: Probe) -> Recognised | None:
    path, info, shapes, values, _ = probe
    flat = [i for i, shape in enumerate(shapes) if len(shape) >= 2 and math.prod(shape[2:]) == 1 and shape[1] > 1]
    if not flat:
        return None
    names = [name for name, _ in info.outputs]
    preferred = [i for i in flat if any(word in names[i].lower() for word in ("logit", "prob", "score", "output"))]
    index = (preferred or flat)[0]
    row = np.asarray(values[index], dtype=np.float64).reshape(shapes[index][0], -1)[0]
    probabilities = _ends_with_softmax(path, names[index])
    if probabilities is None:
        probabilities = bool(np.all(row >= 0) and abs(float(row.sum()) - 1.0) < 1e-3)
    options: dict[str, Any] = {"probabilities": probabilities}
    if index:
        options["output"] = index
    kind = "probabilities" if probabilities else "logits (a softmax is applied)"
    return Recognised("softmax", "classification", int(shapes[index][1]), options, f"{names[index]}: {kind}")


def find_labels(metadata: Mapping[str, str], classes: int) -> tuple[str, list[str]] | None:
    """A metadata value that splits into exactly `classes` names: (key, names)."""
    ordered = sorted(metadata, key=lambda key: (key not in LABEL_KEYS_FIRST, key))
    for key in ordered:
        names = split_labels(metadata[key])
        if names is not None and len(names) == classes:
            return key, names
    return None


def split_labels(value: str) -> list[str] | None:
    text = value.strip()
    if text[:1] in "{[":
        try:
            literal = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            literal = None
        if isinstance(literal, dict):
            return [str(literal[key]) for key in sorted(literal)]
        if isinstance(literal, list):
            return [str(item) for item in literal]
    for separator in ("\n", ",", ";"):
        if separator in text:
            return [item.strip() for item in text.split(separator) if item.strip()]
    return None
