"""The CenterFace decoder on maps whose answer is known, keypoints through NMS and back to original pixels,
and the parsing and checking of regions (property-based where the input space is large)."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_vision.decoders import create_decoder
from lambda_vision.decoders.base import Detections, FloatArray
from lambda_vision.decoders.boxes import batched_nms
from lambda_vision.decoders.centerface import CenterFaceDecoder
from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.inputs import read_images
from lambda_vision.preprocess import Geometry
from lambda_vision.regions import check_count, check_inside, parse_regions, parse_regions_text
from lambda_vision.registry import ModelConfigError, parse_model

STRIDE = 4

# -- CenterFace --------------------------------------------------------------------------------------------------


def face_maps(
    faces: list[tuple[float, float, float, float, float]],
    points: FloatArray | None = None,
    size: tuple[int, int] = (64, 48),
) -> list[FloatArray]:
    """The four outputs for faces given as (centre x, centre y, width, height, score) in input pixels; landmarks
    at the given fractions of each box (y, x per point), or the box centre."""
    width, height = size
    rows, cols = height // STRIDE, width // STRIDE
    heatmap = np.zeros((1, 1, rows, cols), np.float32)
    scale = np.zeros((1, 2, rows, cols), np.float32)
    offset = np.zeros((1, 2, rows, cols), np.float32)
    landmarks = np.full((1, 10, rows, cols), 0.5, np.float32)
    for cx, cy, w, h, score in faces:
        col, row = int(cx / STRIDE - 0.5), int(cy / STRIDE - 0.5)
        heatmap[0, 0, row, col] = score
        scale[0, :, row, col] = (math.log(h / STRIDE), math.log(w / STRIDE))
        offset[0, :, row, col] = (cy / STRIDE - 0.5 - row, cx / STRIDE - 0.5 - col)
        if points is not None:
            landmarks[0, :, row, col] = points.reshape(-1)
    return [heatmap, scale, offset, landmarks]


def test_a_face_decodes_to_its_box_score_and_landmarks() -> None:
    fractions = np.array([[0.3, 0.25], [0.3, 0.75], [0.55, 0.5], [0.8, 0.3], [0.8, 0.7]], np.float32)  # y, x
    decoder = CenterFaceDecoder(["face"], {})
    (found,) = decoder.decode(face_maps([(30.0, 22.0, 16.0, 20.0, 0.9)], fractions), (64, 48), 0.5)

    np.testing.assert_allclose(found.boxes, [[22.0, 12.0, 38.0, 32.0]], atol=1e-4)
    np.testing.assert_allclose(found.scores, [0.9])
    assert found.class_ids.tolist() == [0]
    assert found.keypoints is not None
    expected = [[22 + 16 * fx, 12 + 20 * fy] for fy, fx in fractions]
    np.testing.assert_allclose(found.keypoints[0], expected, atol=1e-4)


def test_cells_under_the_threshold_are_not_faces_and_an_empty_answer_has_room_for_points() -> None:
    decoder = CenterFaceDecoder(["face"], {})
    (found,) = decoder.decode(face_maps([(30.0, 22.0, 16.0, 20.0, 0.4)]), (64, 48), 0.5)

    assert found.boxes.shape == (0, 4)
    assert found.keypoints is not None and found.keypoints.shape == (0, 5, 2)


def test_boxes_are_clipped_to_the_input_but_landmarks_are_not() -> None:
    decoder = CenterFaceDecoder(["face"], {})
    points = np.array([[0.5, -0.2]] * 5, np.float32)  # left of the box, which starts left of the image
    (found,) = decoder.decode(face_maps([(6.0, 22.0, 20.0, 20.0, 0.9)], points), (64, 48), 0.5)

    assert found.boxes[0, 0] == 0.0
    assert found.keypoints is not None and found.keypoints[0, 0, 0] < 0


def test_the_decoder_is_registered_with_five_keypoints_and_needs_four_outputs() -> None:
    decoder = create_decoder("centerface", ["face"], {"stride": 4})
    assert isinstance(decoder, CenterFaceDecoder)
    assert decoder.keypoint_count == 5
    with pytest.raises(ValueError, match="CenterFace has 4 outputs"):
        decoder.decode(face_maps([])[:3], (64, 48), 0.5)


@settings(max_examples=60, deadline=None)
@given(
    cx=st.floats(8, 56),
    cy=st.floats(8, 40),
    w=st.floats(4, 30),
    h=st.floats(4, 30),
    score=st.floats(0.51, 1.0),
)
def test_any_face_inside_the_input_decodes_to_the_box_it_was_made_from(
    cx: float, cy: float, w: float, h: float, score: float
) -> None:
    (found,) = CenterFaceDecoder(["face"], {}).decode(face_maps([(cx, cy, w, h, score)]), (64, 48), 0.5)

    expected = np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0, [64, 48, 64, 48])
    np.testing.assert_allclose(found.boxes[0], expected, atol=1e-3)
    assert found.keypoints is not None
    np.testing.assert_allclose(found.keypoints[0], [[cx, cy]] * 5, atol=1e-3)  # landmarks at the box centre


def test_nms_keeps_each_survivors_own_keypoints() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]], np.float32)
    points = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2)
    found = Detections(boxes, np.array([0.6, 0.9, 0.7], np.float32), np.zeros(3, np.int64), points)

    kept = batched_nms(found, 0.3, 10)

    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])
    assert kept.keypoints is not None
    np.testing.assert_array_equal(kept.keypoints, points[[1, 2]])


@settings(max_examples=100, deadline=None)
@given(
    width=st.integers(1, 4000),
    height=st.integers(1, 4000),
    x=st.floats(0, 1),
    y=st.floats(0, 1),
    target=st.sampled_from([(640, 480), (224, 224)]),
)
def test_points_map_back_like_boxes(width: int, height: int, x: float, y: float, target: tuple[int, int]) -> None:
    # a letterbox geometry: resized to fit, pasted centred
    ratio = min(target[0] / width, target[1] / height)
    resized = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    geometry = Geometry(
        resized[0] / width,
        resized[1] / height,
        -float((target[0] - resized[0]) // 2),
        -float((target[1] - resized[1]) // 2),
        width,
        height,
    )
    point = np.array([[x * target[0], y * target[1]]], np.float32)
    box = np.array([[point[0, 0], point[0, 1], point[0, 0], point[0, 1]]], np.float32)

    mapped = geometry.points_to_original(point)[0]
    expected = geometry.to_original(box)[0, :2]
    if 0 <= mapped[0] <= width and 0 <= mapped[1] <= height:  # boxes are clipped, points are not
        np.testing.assert_allclose(mapped, expected, rtol=1e-5, atol=1e-3)


# -- Registry entries ------------------------------------------------------------------------------------------


BASE: dict[str, Any] = {
    "task": "detection",
    "file": "f.onnx",
    "sha256": "0" * 64,
    "decoder": "centerface",
    "size": [64, 64],
}


def test_keypoints_and_embedding_output_are_declared_as_data() -> None:
    spec = parse_model("faces", {**BASE, "keypoints": ["a", "b", "c", "d", "e"]})
    assert spec.keypoints == ("a", "b", "c", "d", "e")
    assert spec.describe()["keypoints"] == ["a", "b", "c", "d", "e"]
    classifier = parse_model("c", {**BASE, "task": "classification", "decoder": "softmax", "embedding_output": "emb"})
    assert classifier.embedding_output == "emb"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keypoints": "eyes"}, "keypoints must be a list of names"),
        ({"keypoints": ["a", "a"]}, "keypoints has a name twice"),
        ({"task": "classification", "decoder": "softmax", "keypoints": ["a"]}, "keypoints belong to detection models"),
        ({"embedding_output": ""}, "embedding_output must be the name of a graph output"),
    ],
)
def test_bad_keypoints_or_embedding_outputs_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        parse_model("m", {**BASE, **changes})


# -- Regions -----------------------------------------------------------------------------------------------------

coordinate = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(coordinate, coordinate, st.floats(0.01, 1e5), st.floats(0.01, 1e5)), min_size=1, max_size=8))
def test_any_list_of_non_empty_boxes_parses_in_order(boxes: list[tuple[float, float, float, float]]) -> None:
    value = [[x, y, x + w, y + h] for x, y, w, h in boxes]
    value = [box for box in value if box[2] > box[0] and box[3] > box[1]]  # x + w can round back to x
    if not value:
        return
    assert parse_regions(value, "images[0].regions") == tuple(tuple(box) for box in value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(), st.integers(), st.lists(st.one_of(st.text(), st.booleans(), st.none()))))
def test_anything_else_is_a_422_with_a_stable_code(value: Any) -> None:
    with pytest.raises(ApiError) as raised:
        parse_regions(value, "images[0].regions")
    assert raised.value.status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert raised.value.code in {ErrorCode.INVALID_REGION, ErrorCode.REGION_EMPTY}


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ([[0, 0, 10]], ErrorCode.INVALID_REGION, "images[0].regions[0] must be four numbers [x1, y1, x2, y2]"),
        ([[0, 0, 10, True]], ErrorCode.INVALID_REGION, "got [0, 0, 10, true]"),
        ([[0, 0, 10, 10], [5, 5, 5, 9]], ErrorCode.REGION_EMPTY, "images[0].regions[1] [5, 5, 5, 9] is empty"),
        ([[0, 9, 10, 3]], ErrorCode.REGION_EMPTY, "y2 greater than y1"),
        ([], ErrorCode.INVALID_REGION, "images[0].regions is empty"),
        ({"x1": 0}, ErrorCode.INVALID_REGION, "must be a list of boxes"),
    ],
)
def test_bad_regions_say_which_and_why(value: Any, code: ErrorCode, message: str) -> None:
    with pytest.raises(ApiError) as raised:
        parse_regions(value, "images[0].regions")
    assert raised.value.code is code
    assert message in raised.value.message


def test_the_multipart_text_must_be_json() -> None:
    assert parse_regions_text("[[1, 2, 3, 4.5]]", "part 2 (regions)") == ((1.0, 2.0, 3.0, 4.5),)
    with pytest.raises(ApiError, match=r"part 2 \(regions\) must be JSON such as"):
        parse_regions_text("1,2,3,4", "part 2 (regions)")


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 5000),
    height=st.integers(1, 5000),
    box=st.tuples(coordinate, coordinate, coordinate, coordinate),
)
def test_a_region_is_inside_exactly_when_its_corners_are(
    width: int, height: int, box: tuple[float, float, float, float]
) -> None:
    inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
    if inside:
        check_inside([box], width, height, "images[0].regions")
        return
    with pytest.raises(ApiError) as raised:
        check_inside([box], width, height, "images[0].regions")
    assert raised.value.code is ErrorCode.REGION_OUTSIDE_IMAGE
    assert f"which is {width}x{height} pixels" in raised.value.message


def test_the_region_count_is_for_the_whole_request() -> None:
    check_count([16, 16], 32)
    with pytest.raises(ApiError) as raised:
        check_count([16, 10, 7], 32)
    assert raised.value.code is ErrorCode.TOO_MANY_REGIONS
    assert raised.value.details == {"limit": 32, "received": 33}


def test_regions_ride_along_with_json_images_and_multipart_parts() -> None:
    document = b'{"images": [{"url": "https://example.com/a.jpg", "regions": [[0, 0, 5, 5]]}, {"base64": "AAAA"}]}'
    first, second = read_images(
        {"Content-Type": "application/json"}, document.decode(), False, max_body_bytes=10_000, max_images=4
    )
    assert first.regions == ((0.0, 0.0, 5.0, 5.0),)
    assert second.regions is None

    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://example.com/a.jpg\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="regions"\r\n\r\n[[1, 1, 2, 2]]\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="regions"\r\n\r\n[[3, 3, 4, 4]]\r\n'
        f"--{boundary}--\r\n"
    )
    with pytest.raises(ApiError, match=r"part 3 \(regions\) follows no image"):
        read_images(
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            body,
            False,
            max_body_bytes=10_000,
            max_images=4,
        )
