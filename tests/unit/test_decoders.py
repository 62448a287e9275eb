"""Output decoders: given a network's raw outputs, these labels, scores and boxes.

The YOLOv8 tests run a small ONNX graph through ONNX Runtime, built here with the `onnx` package, and then the
whole detection path (registry entry, model store, pipeline) on real PNG images.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from lambda_vision.decoders import create_decoder
from lambda_vision.decoders.base import Classification, Detections
from lambda_vision.decoders.boxes import batched_nms, iou, non_max_suppression
from lambda_vision.decoders.classification import SoftmaxDecoder
from lambda_vision.decoders.picodet import PicoDetDecoder
from lambda_vision.decoders.yolov8 import YoloV8Decoder
from lambda_vision.errors import ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.inputs import ImageInput
from lambda_vision.models import LoadedModel, ModelStore
from lambda_vision.pipeline import DetectionParameters, ImageResult, Pipeline
from lambda_vision.registry import ModelRegistry
from lambda_vision.settings import Settings

FloatArray = npt.NDArray[np.float32]


def array(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float32)


def detections(boxes: Any, scores: Any, class_ids: Sequence[int]) -> Detections:
    return Detections(array(boxes).reshape(-1, 4), array(scores), np.asarray(class_ids, dtype=np.int64))


def as_rows(found: Detections) -> list[tuple[int, float, list[float]]]:
    """(class id, score, box) per detection, scores rounded to 4 places."""
    return [
        (int(class_id), round(float(score), 4), [round(v, 3) for v in box])
        for box, score, class_id in zip(found.boxes.tolist(), found.scores.tolist(), found.class_ids, strict=True)
    ]


# --- softmax classifier ---------------------------------------------------------------------------------------------


def top(decoded: list[Classification]) -> list[tuple[str, float]]:
    return [(c.label, round(c.score, 4)) for c in decoded]


def test_logits_are_turned_into_probabilities_best_first() -> None:
    decoder = SoftmaxDecoder(["cat", "dog", "fox"], {})
    [result] = decoder.decode([array([[1.0, 3.0, 2.0]])], top_k=3)
    exp = np.exp([1.0, 3.0, 2.0])
    expected = exp / exp.sum()
    assert top(result) == [
        ("dog", round(expected[1], 4)),
        ("fox", round(expected[2], 4)),
        ("cat", round(expected[0], 4)),
    ]
    assert sum(c.score for c in result) == pytest.approx(1.0)


def test_very_large_logits_do_not_overflow() -> None:
    [result] = SoftmaxDecoder(["a", "b"], {}).decode([array([[1000.0, 0.0]])], top_k=2)
    assert top(result) == [("a", 1.0), ("b", 0.0)]


def test_probabilities_are_reported_as_the_model_gives_them() -> None:
    decoder = SoftmaxDecoder(["0", "90", "180", "270"], {"probabilities": True})
    [result] = decoder.decode([array([[0.1, 0.2, 0.6, 0.1]])], top_k=2)
    assert top(result) == [("180", 0.6), ("90", 0.2)]


def test_tied_scores_keep_the_label_order() -> None:
    decoder = SoftmaxDecoder(["a", "b", "c", "d"], {"probabilities": True})
    [result] = decoder.decode([array([[0.1, 0.3, 0.3, 0.3]])], top_k=4)
    assert [c.label for c in result] == ["b", "c", "d", "a"]


def test_top_k_larger_than_the_class_count_gives_every_class() -> None:
    [result] = SoftmaxDecoder(["sfw", "nsfw"], {"probabilities": True}).decode([array([[0.3, 0.7]])], top_k=5)
    assert top(result) == [("nsfw", 0.7), ("sfw", 0.3)]


def test_each_image_of_a_batch_gets_its_own_list() -> None:
    decoder = SoftmaxDecoder(["a", "b"], {"probabilities": True})
    results = decoder.decode([array([[0.9, 0.1], [0.2, 0.8]])], top_k=1)
    assert [top(r) for r in results] == [[("a", 0.9)], [("b", 0.8)]]


def test_outputs_shaped_n_c_1_1_are_flattened() -> None:
    [result] = SoftmaxDecoder(["a", "b"], {"probabilities": True}).decode([array([[[[0.4]], [[0.6]]]])], top_k=1)
    assert top(result) == [("b", 0.6)]


def test_the_output_option_picks_which_output_holds_the_scores() -> None:
    decoder = SoftmaxDecoder(["a", "b"], {"probabilities": True, "output": 1})
    [result] = decoder.decode([array([[0.9, 0.1]]), array([[0.25, 0.75]])], top_k=1)
    assert top(result) == [("b", 0.75)]


def test_classes_without_a_label_are_named_by_their_index() -> None:
    [result] = SoftmaxDecoder(["a"], {"probabilities": True}).decode([array([[0.2, 0.8]])], top_k=2)
    assert top(result) == [("1", 0.8), ("a", 0.2)]


def test_create_decoder_names_the_known_decoders_for_an_unknown_one() -> None:
    known = "centerface, picodet, softmax, yolov8"
    with pytest.raises(ValueError, match=rf"^unknown decoder 'ssd'; known decoders: {known}$"):
        create_decoder("ssd", [], {})


def test_an_unknown_decoder_option_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^SoftmaxDecoder does not take option\(s\) stride, top$"):
        create_decoder("softmax", [], {"top": 1, "stride": 8})


# --- box overlap and non-maximum suppression ------------------------------------------------------------------------


def test_iou_of_identical_half_overlapping_and_disjoint_boxes() -> None:
    box = array([0, 0, 10, 10])
    others = array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 5], [20, 20, 30, 30], [10, 0, 20, 10]])
    assert iou(box, others).tolist() == pytest.approx([1.0, 1 / 3, 0.5, 0.0, 0.0])


def test_nms_drops_a_box_overlapping_a_better_one() -> None:
    boxes = array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    keep = non_max_suppression(boxes, array([0.8, 0.9, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [1, 2]


def test_nms_keeps_a_box_overlapping_exactly_at_the_threshold() -> None:
    boxes = array([[0, 0, 10, 10], [0, 0, 10, 5]])  # IoU 0.5
    assert non_max_suppression(boxes, array([0.9, 0.8]), iou_threshold=0.5).tolist() == [0, 1]
    assert non_max_suppression(boxes, array([0.9, 0.8]), iou_threshold=0.49).tolist() == [0]


def test_nms_orders_by_score_and_stops_at_the_limit() -> None:
    boxes = array([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5], [6, 6, 7, 7]])
    scores = array([0.6, 0.9, 0.7, 0.8])
    assert non_max_suppression(boxes, scores, 0.5).tolist() == [1, 3, 2, 0]
    assert non_max_suppression(boxes, scores, 0.5, limit=2).tolist() == [1, 3]


def test_batched_nms_suppresses_within_a_class_only() -> None:
    found = detections(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]],
        [0.7, 0.9, 0.8, 0.6],
        [0, 0, 1, 0],
    )
    kept = batched_nms(found, iou_threshold=0.5, max_detections=10)
    assert as_rows(kept) == [
        (0, 0.9, [1, 1, 11, 11]),
        (1, 0.8, [0, 0, 10, 10]),  # same place as the dropped 0.7, but another class
        (0, 0.6, [50, 50, 60, 60]),
    ]


def test_batched_nms_keeps_at_most_max_detections() -> None:
    found = detections([[i * 10, 0, i * 10 + 5, 5] for i in range(5)], [0.1, 0.5, 0.3, 0.9, 0.7], [0, 1, 0, 1, 0])
    assert [score for _, score, _ in as_rows(batched_nms(found, 0.5, max_detections=3))] == [0.9, 0.7, 0.5]


def test_batched_nms_of_nothing_is_nothing() -> None:
    assert batched_nms(Detections.empty(), 0.5, 10).boxes.shape == (0, 4)


# --- PicoDet --------------------------------------------------------------------------------------------------------

BINS = 8


def peaked(left: int, top: int, right: int, bottom: int) -> FloatArray:
    """Box-side distributions (4 x BINS logits) certain of these bin indexes."""
    logits = np.zeros((4, BINS), dtype=np.float32)
    for side, index in enumerate((left, top, right, bottom)):
        logits[side, index] = 50.0
    return logits.reshape(-1)


def picodet_outputs(cells: Sequence[int], classes: int, batch: int = 1) -> list[FloatArray]:
    """All-zero PicoDet outputs: scores per stride, then distributions per stride."""
    scores = [np.zeros((batch, n, classes), np.float32) for n in cells]
    distributions = [np.zeros((batch, n, 4 * BINS), np.float32) for n in cells]
    return scores + distributions


def test_picodet_box_is_the_cell_centre_plus_the_expected_side_distances() -> None:
    """Input 64x32, strides 8 and 16: grids of 8x4 and 4x2 cells."""
    decoder = PicoDetDecoder(["text", "title", "figure"], {"strides": [8, 16], "bins": BINS})
    outputs = picodet_outputs([32, 8], classes=3)
    # stride 8, row 1, column 2: centre (20, 12); sides 1, 1, 3, 0 bins of 8 pixels
    outputs[0][0, 1 * 8 + 2] = [0.1, 0.2, 0.9]
    outputs[2][0, 1 * 8 + 2] = peaked(1, 1, 3, 0)
    # stride 16, row 1, column 3: centre (56, 24); sides 2, 1, 2, 1 bins of 16 pixels, clipped to 64x32
    outputs[1][0, 1 * 4 + 3] = [0.6, 0.0, 0.0]
    outputs[3][0, 1 * 4 + 3] = peaked(2, 1, 2, 1)
    [found] = decoder.decode(outputs, (64, 32), score_threshold=0.5)
    assert as_rows(found) == [(2, 0.9, [12, 4, 44, 12]), (0, 0.6, [24, 8, 64, 32])]


def test_picodet_flat_distribution_means_three_and_a_half_bins() -> None:
    decoder = PicoDetDecoder(["text"], {"strides": [8], "bins": BINS})
    outputs = picodet_outputs([64], classes=1)  # input 64x64: 8x8 cells
    outputs[0][0, 3 * 8 + 3] = [0.8]  # row 3, column 3: centre (28, 28); every side 3.5 x 8 = 28
    [found] = decoder.decode(outputs, (64, 64), score_threshold=0.5)
    assert as_rows(found) == [(0, 0.8, [0, 0, 56, 56])]


def test_picodet_scores_at_or_below_the_threshold_are_not_detections() -> None:
    decoder = PicoDetDecoder(["text"], {"strides": [8], "bins": BINS})
    outputs = picodet_outputs([16], classes=1)
    outputs[0][0, :3] = [[0.5], [0.49], [0.0]]
    [found] = decoder.decode(outputs, (32, 32), score_threshold=0.5)
    assert found.boxes.shape == (0, 4)
    assert found.scores.shape == (0,)


def test_picodet_decodes_each_image_of_a_batch() -> None:
    decoder = PicoDetDecoder(["text"], {"strides": [8], "bins": BINS})
    outputs = picodet_outputs([16], classes=1, batch=2)
    outputs[0][1, 0] = [0.7]
    outputs[1][1, 0] = peaked(0, 0, 1, 1)
    first, second = decoder.decode(outputs, (32, 32), score_threshold=0.5)
    assert as_rows(first) == []
    assert as_rows(second) == [(0, 0.7, [4, 4, 12, 12])]


def test_picodet_for_a_608x800_input_has_7600_1900_475_and_130_cells() -> None:
    decoder = PicoDetDecoder([], {"strides": [8, 16, 32, 64], "bins": BINS})
    cells = [7600, 1900, 475, 130]
    outputs = picodet_outputs(cells, classes=1)
    for level in range(4):
        outputs[level][0, [0, -1]] = 0.9  # the first and the last cell of each grid
        outputs[4 + level][0, :] = peaked(0, 0, 0, 0)
    [found] = decoder.decode(outputs, (608, 800), score_threshold=0.5)
    centres = [box[:2] for _, _, box in as_rows(found)]
    assert centres == [
        [4, 4], [604, 796],  # stride 8: 76 x 100 cells
        [8, 8], [600, 792],  # stride 16: 38 x 50
        [16, 16], [592, 784],  # stride 32: 19 x 25
        [32, 32], [608, 800],  # stride 64: 10 x 13, the last centre on the corner
    ]  # fmt: skip


def test_the_shipped_layout_model_has_the_cell_counts_the_decoder_expects(models_dir: Path) -> None:
    session = ort.InferenceSession(str(models_dir / "layout.onnx"), providers=["CPUExecutionProvider"])
    shapes = [output.shape for output in session.get_outputs()]
    assert shapes == [[1, n, 10] for n in (7600, 1900, 475, 130)] + [[1, n, 4 * BINS] for n in (7600, 1900, 475, 130)]


def test_picodet_wants_two_outputs_per_stride() -> None:
    decoder = PicoDetDecoder([], {"strides": [8, 16], "bins": BINS})
    with pytest.raises(ValueError, match=r"^PicoDet expects 4 outputs for strides \(8, 16\), got 2$"):
        decoder.decode(picodet_outputs([32], classes=1), (64, 32), 0.5)


# --- YOLOv8, through a real ONNX graph ------------------------------------------------------------------------------

LABELS = ["a", "b"]
SIZE = 64


def yolo_model(*, batch: int | str, transposed: bool) -> bytes:
    """A detector for 64x64 inputs with 2 classes and 3 anchors, output [N, 6, 3] (or [N, 3, 6] transposed).

    Anchor 0: box cx, cy, w, h = 32, 32, 32, 32; class `a` scores the image's mean value, class `b` one minus it.
    Anchor 1: box 8, 8, 8, 8, scores 0.1 (never a detection).
    Anchor 2: box 60, 60, 16, 16 (crossing the bottom-right corner), class `b` scores 0.9.
    """
    base = np.zeros((1, 6, 3), np.float32)
    per_mean = np.zeros((1, 6, 3), np.float32)
    base[0, :, 0] = [32, 32, 32, 32, 0, 1]
    per_mean[0, 4:, 0] = [1, -1]
    base[0, :, 1] = [8, 8, 8, 8, 0.1, 0.1]
    base[0, :, 2] = [60, 60, 16, 16, 0, 0.9]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean4d"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4d", "column"], ["mean"]),
        helper.make_node("Mul", ["mean", "per_mean"], ["varying"]),
        helper.make_node("Add", ["base", "varying"], ["channels_first" if transposed else "output0"]),
    ]
    if transposed:
        nodes.append(helper.make_node("Transpose", ["channels_first"], ["output0"], perm=[0, 2, 1]))
    graph = helper.make_graph(
        nodes,
        "toy_yolov8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 3, 6] if transposed else [batch, 6, 3])],
        initializer=[
            numpy_helper.from_array(base, "base"),
            numpy_helper.from_array(per_mean, "per_mean"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "column"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    serialized: bytes = model.SerializeToString()
    return serialized


def run_graph(model: bytes, images: FloatArray) -> list[FloatArray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return [np.asarray(output, dtype=np.float32) for output in session.run(None, {"images": images})]


BLACK_AND_WHITE = np.stack([np.zeros((3, SIZE, SIZE), np.float32), np.ones((3, SIZE, SIZE), np.float32)])

# What the toy detector finds in a black and in a white image, in network-input pixels.
IN_BLACK = [(1, 1.0, [16, 16, 48, 48]), (1, 0.9, [52, 52, 64, 64])]
IN_WHITE = [(0, 1.0, [16, 16, 48, 48]), (1, 0.9, [52, 52, 64, 64])]


@pytest.mark.parametrize("transposed", [False, True], ids=["N,4+C,A", "N,A,4+C"])
def test_yolov8_output_becomes_corner_boxes_in_either_layout(transposed: bool) -> None:
    outputs = run_graph(yolo_model(batch="N", transposed=transposed), BLACK_AND_WHITE)
    assert outputs[0].shape == ((2, 3, 6) if transposed else (2, 6, 3))
    black, white = YoloV8Decoder(LABELS, {}).decode(outputs, (SIZE, SIZE), score_threshold=0.5)
    assert as_rows(black) == IN_BLACK
    assert as_rows(white) == IN_WHITE


def test_yolov8_score_equal_to_the_threshold_is_not_a_detection() -> None:
    grey = np.full((1, 3, SIZE, SIZE), 0.5, np.float32)  # anchor 0 scores 0.5 for both classes
    [found] = YoloV8Decoder(LABELS, {}).decode(run_graph(yolo_model(batch=1, transposed=False), grey), (64, 64), 0.5)
    assert as_rows(found) == [(1, 0.9, [52, 52, 64, 64])]


def test_yolov8_with_nothing_above_the_threshold_gives_no_detection() -> None:
    outputs = run_graph(yolo_model(batch=1, transposed=False), BLACK_AND_WHITE[1:])
    [found] = YoloV8Decoder(LABELS, {}).decode(outputs, (SIZE, SIZE), score_threshold=0.95)
    assert as_rows(found) == [(0, 1.0, [16, 16, 48, 48])]
    [none] = YoloV8Decoder(LABELS, {}).decode(outputs, (SIZE, SIZE), score_threshold=1.0)
    assert none.boxes.shape == (0, 4)


def test_yolov8_without_labels_takes_the_longer_axis_as_the_anchors() -> None:
    prediction = np.zeros((1, 5, 8), np.float32)  # 1 class, 8 anchors
    prediction[0, :, 3] = [10, 10, 4, 4, 0.8]
    for layout in (prediction, prediction.transpose(0, 2, 1)):
        [found] = YoloV8Decoder([], {}).decode([layout], (SIZE, SIZE), 0.5)
        assert as_rows(found) == [(0, 0.8, [8, 8, 12, 12])]


def test_yolov8_output_that_does_not_match_the_labels_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^YOLOv8 output of shape \(1, 6, 3\) does not match 3 labels$"):
        YoloV8Decoder(["a", "b", "c"], {}).decode([np.zeros((1, 6, 3), np.float32)], (SIZE, SIZE), 0.5)


# --- YOLOv8 end to end: registry entry -> model store -> pipeline ---------------------------------------------------


def png(colour: int, width: int = 128, height: int = 256) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (colour,) * 3).save(buffer, "PNG")
    return buffer.getvalue()


def load_toy(tmp_path: Path, *, batch: int | str) -> LoadedModel:
    data = yolo_model(batch=batch, transposed=False)
    (tmp_path / "toy.onnx").write_bytes(data)
    entry = {
        "task": "detection",
        "file": "toy.onnx",
        "sha256": hashlib.sha256(data).hexdigest(),
        "decoder": "yolov8",
        "size": [SIZE, SIZE],
        "resize": "stretch",
        "labels": LABELS,
    }
    registry = ModelRegistry.from_mapping({"models": {"toy": entry}}, tmp_path)
    return ModelStore(registry, Settings(model_cache_dir=tmp_path / "cache")).get_for_task(
        registry.specs["toy"].task, None
    )


def pipeline(max_image_pixels: int = 1_000_000, max_request_pixels: int | None = None) -> Pipeline:
    unused = UrlFetcher(FetchPolicy(connect_timeout=1.0, read_timeout=1.0, max_bytes=1, max_redirects=0))
    return Pipeline(unused, max_image_pixels=max_image_pixels, max_request_pixels=max_request_pixels)


def found_in(result: ImageResult) -> list[tuple[str, float, list[float]]]:
    assert result.ok, result.error
    assert result.detections is not None
    return [(d.label, round(d.score, 4), [round(v, 2) for v in d.box]) for d in result.detections]


PARAMETERS = DetectionParameters(threshold=0.5, iou=0.5, max_detections=100)


def test_detect_returns_boxes_in_original_image_pixels(tmp_path: Path) -> None:
    """The 128x256 image is stretched to 64x64: network x times 2, y times 4."""
    model = load_toy(tmp_path, batch="N")
    [result] = pipeline().detect(model, [ImageInput(index=0, source="white.png", data=png(255))], PARAMETERS)
    assert found_in(result) == [("a", 1.0, [32, 64, 96, 192]), ("b", 0.9, [104, 208, 128, 256])]
    body = result.to_json()
    assert (body["index"], body["source"], body["status"]) == (0, "white.png", "ok")
    assert (body["width"], body["height"]) == (128, 256)
    assert body["detections"][0] == {
        "label": "a",
        "score": 1.0,
        "box": {"x1": 32.0, "y1": 64.0, "x2": 96.0, "y2": 192.0},
    }


def test_a_large_jpeg_decoded_reduced_still_gives_boxes_in_full_size_pixels(tmp_path: Path) -> None:
    model = load_toy(tmp_path, batch="N")
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 2560), (255, 255, 255)).save(buffer, "JPEG")
    inputs = [ImageInput(index=0, source="big.jpg", data=buffer.getvalue())]
    [result] = pipeline(max_image_pixels=4_000_000).detect(model, inputs, PARAMETERS, keep_images=True)
    assert result.decoded is not None
    assert result.decoded.image.size == (160, 320)  # decoded at 1/8, still at least 64x64
    assert (result.decoded.width, result.decoded.height) == (1280, 2560)
    assert found_in(result)[0] == ("a", 1.0, [320, 640, 960, 1920])


def test_decoded_images_are_released_once_in_the_tensor_unless_kept(tmp_path: Path) -> None:
    model = load_toy(tmp_path, batch="N")
    inputs = [ImageInput(index=i, source=f"{i}.png", data=png(255)) for i in range(3)]
    released = pipeline().detect(model, inputs, PARAMETERS)
    assert [(r.decoded, r.width, r.height) for r in released] == [(None, 128, 256)] * 3
    assert [r.to_json()["width"] for r in released] == [128] * 3
    [kept] = pipeline().detect(model, inputs[:1], PARAMETERS, keep_images=True)
    assert kept.decoded is not None
    assert kept.decoded.image.size == (128, 256)


def test_images_over_the_request_pixel_budget_fail_alone_and_the_others_are_answered(tmp_path: Path) -> None:
    """128x256 = 32,768 pixels each: a budget of 70,000 admits two; the third, over it, gets its own error."""
    model = load_toy(tmp_path, batch="N")
    inputs = [ImageInput(index=i, source=f"{i}.png", data=png(255)) for i in range(3)]
    inputs.append(ImageInput(index=3, source="broken.png", data=b"not an image"))
    results = pipeline(max_request_pixels=70_000).detect(model, inputs, PARAMETERS)
    assert [r.ok for r in results] == [True, True, False, False]
    assert found_in(results[1])[0] == ("a", 1.0, [32, 64, 96, 192])
    error = results[2].error
    assert error is not None
    assert error.code is ErrorCode.PIXEL_BUDGET_EXCEEDED
    assert error.message == (
        "The image is 128x256 = 32,768 pixels, and the images before it in this request already take 65,536 of"
        " the 70,000 pixels one request may decode (MAX_REQUEST_PIXELS). Send this image in another request."
    )
    assert "width" not in results[2].to_json()  # refused from its header: never decoded
    assert results[3].error is not None
    assert results[3].error.code is ErrorCode.IMAGE_UNDECODABLE


def test_detect_applies_the_requested_threshold_and_limit(tmp_path: Path) -> None:
    model = load_toy(tmp_path, batch="N")
    inputs = [ImageInput(index=0, source="white.png", data=png(255))]
    [strict] = pipeline().detect(model, inputs, DetectionParameters(threshold=0.95, iou=0.5, max_detections=100))
    assert [label for label, _, _ in found_in(strict)] == ["a"]
    [limited] = pipeline().detect(model, inputs, DetectionParameters(threshold=0.5, iou=0.5, max_detections=1))
    assert [label for label, _, _ in found_in(limited)] == ["a"]


def spy_on_batches(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record the input shape of every ONNX Runtime call the model makes."""
    shapes: list[tuple[int, ...]] = []
    run = model.session.run

    def recording_run(output_names: Any, feeds: dict[str, FloatArray], *args: Any) -> Any:
        shapes.append(tuple(feeds[model.input_name].shape))
        return run(output_names, feeds, *args)

    monkeypatch.setattr(model.session, "run", recording_run)
    return shapes


def test_images_of_one_request_run_as_one_batch_when_the_batch_is_dynamic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_toy(tmp_path, batch="N")
    assert model.dynamic_batch
    shapes = spy_on_batches(model, monkeypatch)
    black = ImageInput(index=0, source="black.png", data=png(0))
    white = ImageInput(index=1, source="white.png", data=png(255, width=64, height=64))
    results = pipeline().detect(model, [black, white], PARAMETERS)
    assert shapes == [(2, 3, SIZE, SIZE)]
    assert [r.input.source for r in results] == ["black.png", "white.png"]
    assert found_in(results[0]) == [("b", 1.0, [32, 64, 96, 192]), ("b", 0.9, [104, 208, 128, 256])]
    assert found_in(results[1]) == [("a", 1.0, [16, 16, 48, 48]), ("b", 0.9, [52, 52, 64, 64])]


def test_images_run_one_at_a_time_when_the_batch_is_fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_toy(tmp_path, batch=1)
    assert not model.dynamic_batch
    shapes = spy_on_batches(model, monkeypatch)
    inputs = [ImageInput(index=i, source=f"{i}.png", data=png(colour)) for i, colour in enumerate((0, 255, 0))]
    results = pipeline().detect(model, inputs, PARAMETERS)
    assert shapes == [(1, 3, SIZE, SIZE)] * 3
    assert [found_in(r)[0][0] for r in results] == ["b", "a", "b"]


def test_an_undecodable_image_fails_alone_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_toy(tmp_path, batch="N")
    shapes = spy_on_batches(model, monkeypatch)
    inputs = [
        ImageInput(index=0, source="white.png", data=png(255)),
        ImageInput(index=1, source="notes.txt", data=b"not an image"),
        ImageInput(index=2, source="black.png", data=png(0)),
    ]
    results = pipeline().detect(model, inputs, PARAMETERS)
    assert shapes == [(2, 3, SIZE, SIZE)]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].to_json()["error"]["code"] == "image_undecodable"
    assert "detections" not in results[1].to_json()
    assert found_in(results[0])[0][0] == "a"
    assert found_in(results[2])[0][0] == "b"
