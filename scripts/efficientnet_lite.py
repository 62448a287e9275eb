"""EfficientNet-Lite0 as an ONNX graph, built from its PyTorch state dict with numpy and onnx only.

The network (Tan & Le, "EfficientNet", Lite variant): a 3x3/2 stem, seven stages of inverted-residual
(MBConv) blocks without squeeze-and-excitation, a 1x1 head to 1280 channels, global average pooling (the
image embedding) and a fully connected layer to the 1000 ImageNet logits. Activations are ReLU6, padding is
TensorFlow's "same", and every batch norm (eps 1e-3) is folded into the convolution before it. Weights can
be stored as float16 (half the file, the same answers) and are cast back to float32 inside the graph.

The output is deterministic: the same state dict and labels give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

BATCH_NORM_EPS = 1e-3
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "input"
LOGITS = "logits"
EMBEDDING = "embedding"
EMBEDDING_SIZE = 1280


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int


# (repeats, kernel, stride, expand ratio, in, out) of EfficientNet-Lite0's seven stages
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)

Array = npt.NDArray[Any]


class GraphBuilder:
    """Collects nodes and initializers; names are sequential, so the same network gives the same graph."""

    def __init__(self, weights: Mapping[str, Array], weight_type: type[np.floating[Any]]) -> None:
        self.weights = weights
        self.weight_type = weight_type
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, value: Array) -> str:
        """A float32 weight, stored as weight_type (with a Cast back to float32 when that is narrower)."""
        stored = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value.astype(self.weight_type), stored))
        if self.weight_type is np.float32:
            return stored
        cast = self.name(f"{prefix}_f32")
        self.nodes.append(helper.make_node("Cast", [stored], [cast], to=TensorProto.FLOAT, name=cast))
        return cast

    def conv_bn(self, source: str, conv: str, bn: str, *, stride: int = 1, groups: int = 1, relu6: bool = True) -> str:
        """Convolution with the batch norm folded in, then ReLU6 unless told otherwise."""
        kernel = self.weights[f"{conv}.weight"].astype(np.float64)
        gamma, beta = self.weights[f"{bn}.weight"], self.weights[f"{bn}.bias"]
        mean, var = self.weights[f"{bn}.running_mean"], self.weights[f"{bn}.running_var"]
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BATCH_NORM_EPS)
        folded_kernel = (kernel * scale[:, None, None, None]).astype(np.float32)
        folded_bias = (beta - mean * scale).astype(np.float32)
        size = int(kernel.shape[-1])
        output = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [source, self.constant("w", folded_kernel), self.constant("b", folded_bias)],
                [output],
                name=output,
                kernel_shape=[size, size],
                strides=[stride, stride],
                group=groups,
                auto_pad="SAME_UPPER",
            )
        )
        if not relu6:
            return output
        return self.relu6(output)

    def relu6(self, source: str) -> str:
        low = self.name("zero")
        high = self.name("six")
        self.initializers.append(numpy_helper.from_array(np.array(0.0, np.float32), low))
        self.initializers.append(numpy_helper.from_array(np.array(6.0, np.float32), high))
        output = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [source, low, high], [output], name=output))
        return output

    def add(self, left: str, right: str) -> str:
        output = self.name("add")
        self.nodes.append(helper.make_node("Add", [left, right], [output], name=output))
        return output


def _block(builder: GraphBuilder, source: str, index: int, stage: Stage, first: bool) -> str:
    prefix = f"_blocks.{index}"
    channels_in = stage.channels_in if first else stage.channels_out
    stride = stage.stride if first else 1
    hidden = source
    if stage.expand != 1:
        hidden = builder.conv_bn(hidden, f"{prefix}._expand_conv", f"{prefix}._bn0")
    groups = channels_in * stage.expand
    hidden = builder.conv_bn(hidden, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride=stride, groups=groups)
    hidden = builder.conv_bn(hidden, f"{prefix}._project_conv", f"{prefix}._bn2", relu6=False)
    if stride == 1 and channels_in == stage.channels_out:
        hidden = builder.add(hidden, source)
    return hidden


def build_model(
    weights: Mapping[str, Array],
    labels: Sequence[str],
    *,
    weight_type: type[np.floating[Any]] = np.float16,
    resolution: int = 224,
) -> onnx.ModelProto:
    """EfficientNet-Lite0: input `input` [N, 3, resolution, resolution], outputs `logits` [N, 1000] and
    `embedding` [N, 1280]; the labels go in the metadata key `labels`, one per line."""
    builder = GraphBuilder(weights, weight_type)
    hidden = builder.conv_bn(INPUT_NAME, "_conv_stem", "_bn0", stride=2)
    index = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            hidden = _block(builder, hidden, index, stage, first=repeat == 0)
            index += 1
    hidden = builder.conv_bn(hidden, "_conv_head", "_bn1")
    pooled = builder.name("pool")
    builder.nodes.append(helper.make_node("GlobalAveragePool", [hidden], [pooled], name=pooled))
    builder.nodes.append(helper.make_node("Flatten", [pooled], [EMBEDDING], name="flatten_embedding", axis=1))
    fc_weight = builder.constant("fc_w", weights["_fc.weight"].astype(np.float32))
    fc_bias = builder.constant("fc_b", weights["_fc.bias"].astype(np.float32))
    builder.nodes.append(helper.make_node("Gemm", [EMBEDDING, fc_weight, fc_bias], [LOGITS], name="fc", transB=1))
    classes = int(weights["_fc.weight"].shape[0])
    if len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for {classes} classes")
    graph = helper.make_graph(
        builder.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, resolution, resolution])],
        [
            helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["N", EMBEDDING_SIZE]),
        ],
        builder.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lambda-vision",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, {"labels": "\n".join(labels)})
    onnx.checker.check_model(model)
    return model


def imagenet_labels(synsets: str, lemmas: str) -> list[str]:
    """Class names in class-index order: the first lemma of each synset; the full lemma list for the few
    names two classes share (ImageNet has two `crane`s and two `maillot`s)."""
    names = dict(line.split("\t", 1) for line in lemmas.splitlines() if "\t" in line)
    order = [line.strip() for line in synsets.splitlines() if line.strip()]
    full = [names[synset].strip() for synset in order]
    first = [name.split(",")[0].strip() for name in full]
    return [short if first.count(short) == 1 else long for short, long in zip(first, full, strict=True)]
