"""Pre-processing: from a decoded image to the network's input tensor, and from network boxes back to the image."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from lambda_vision import preprocess
from lambda_vision.preprocess import Geometry, Preprocessor
from lambda_vision.registry import ModelSpec, parse_model

FloatArray = npt.NDArray[np.float32]

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def spec(**fields: Any) -> ModelSpec:
    """A model entry as models.toml would declare it: 1/255 scale, no mean, unit std unless given."""
    base: dict[str, Any] = {"task": "detection", "file": "m.onnx", "sha256": "0" * 64, "decoder": "yolov8"}
    return parse_model("m", {**base, **fields})


STRETCH = {"resize": "stretch", "size": [64, 32]}
STRETCH_CROP = {"resize": "stretch", "resize_size": [80, 40], "size": [64, 32]}
LETTERBOX = {"resize": "letterbox", "size": [64, 32]}
SHORT_SIDE = {"resize": "short_side", "short_side": 40, "size": [32, 32]}


def boxes(*rows: tuple[float, float, float, float]) -> FloatArray:
    return np.asarray(rows, dtype=np.float32)


def bright_box(plane: FloatArray) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 (exclusive) of the pixels brighter than half the plane's range."""
    threshold = (float(plane.min()) + float(plane.max())) / 2
    ys, xs = np.nonzero(plane > threshold)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def with_white_square(width: int, height: int, square: tuple[int, int, int, int]) -> Image.Image:
    image = Image.new("RGB", (width, height), (0, 0, 0))
    ImageDraw.Draw(image).rectangle((square[0], square[1], square[2] - 1, square[3] - 1), fill=(255, 255, 255))
    return image


# --- tensor shape per resize mode and layout ------------------------------------------------------------------------


@pytest.mark.parametrize("resize", [STRETCH, STRETCH_CROP, LETTERBOX, SHORT_SIDE], ids=lambda r: str(r["resize"]))
@pytest.mark.parametrize("image_size", [(100, 50), (50, 100), (64, 32), (7, 3)])
def test_tensor_shape_is_channels_first_for_nchw(resize: dict[str, Any], image_size: tuple[int, int]) -> None:
    model = spec(layout="NCHW", **resize)
    tensor, _ = Preprocessor(model)(Image.new("RGB", image_size), *image_size)
    width, height = model.size
    assert tensor.shape == (3, height, width)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous


@pytest.mark.parametrize("resize", [STRETCH, STRETCH_CROP, LETTERBOX, SHORT_SIDE], ids=lambda r: str(r["resize"]))
@pytest.mark.parametrize("image_size", [(100, 50), (50, 100), (64, 32), (7, 3)])
def test_tensor_shape_is_channels_last_for_nhwc(resize: dict[str, Any], image_size: tuple[int, int]) -> None:
    model = spec(layout="NHWC", **resize)
    tensor, _ = Preprocessor(model)(Image.new("RGB", image_size), *image_size)
    width, height = model.size
    assert tensor.shape == (height, width, 3)
    assert tensor.flags.c_contiguous


def test_nchw_and_nhwc_hold_the_same_pixels_in_their_own_order() -> None:
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))  # left half red, right half blue
    nchw, _ = Preprocessor(spec(layout="NCHW", **STRETCH))(image, 64, 32)
    nhwc, _ = Preprocessor(spec(layout="NHWC", **STRETCH))(image, 64, 32)
    assert np.array_equal(nchw, nhwc.transpose(2, 0, 1))
    assert np.all(nchw[0, :, :32] == 1.0)
    assert np.all(nchw[0, :, 32:] == 0.0)
    assert np.all(nchw[2, :, :32] == 0.0)
    assert np.all(nchw[2, :, 32:] == 1.0)


# --- normalisation --------------------------------------------------------------------------------------------------


def test_rgb_pixels_are_scaled_then_normalised_with_mean_and_std() -> None:
    model = spec(resize="short_side", short_side=256, size=[224, 224], mean=IMAGENET_MEAN, std=IMAGENET_STD)
    tensor, _ = Preprocessor(model)(Image.new("RGB", (300, 400), (200, 100, 50)), 300, 400)
    for channel, value in enumerate((200, 100, 50)):
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert np.allclose(tensor[channel], expected, rtol=1e-6, atol=1e-6), channel


def test_bgr_models_get_blue_first_and_their_mean_subtracted_in_bgr_order() -> None:
    model = spec(
        layout="NHWC",
        resize="stretch",
        resize_size=[256, 256],
        size=[224, 224],
        color_order="BGR",
        scale=1.0,
        mean=[104.0, 117.0, 123.0],
    )
    tensor, _ = Preprocessor(model)(Image.new("RGB", (640, 480), (200, 100, 50)), 640, 480)
    assert np.all(tensor[..., 0] == 50 - 104)  # blue
    assert np.all(tensor[..., 1] == 100 - 117)  # green
    assert np.all(tensor[..., 2] == 200 - 123)  # red


def test_without_mean_and_std_pixels_are_only_scaled_to_0_1() -> None:
    tensor, _ = Preprocessor(spec(**STRETCH))(Image.new("RGB", (64, 32), (255, 0, 51)), 64, 32)
    assert np.allclose(tensor[0], 1.0)
    assert np.all(tensor[1] == 0.0)
    assert np.allclose(tensor[2], 0.2)


# --- stretch --------------------------------------------------------------------------------------------------------


def test_stretch_maps_the_whole_input_to_the_whole_image() -> None:
    _, geometry = Preprocessor(spec(**STRETCH))(Image.new("RGB", (128, 256)), 128, 256)
    assert geometry == Geometry(scale_x=0.5, scale_y=0.125, offset_x=0.0, offset_y=0.0, width=128, height=256)
    assert np.array_equal(
        geometry.to_original(boxes((0, 0, 64, 32), (16, 8, 48, 24))), boxes((0, 0, 128, 256), (32, 64, 96, 192))
    )


def test_stretch_then_centre_crop_maps_the_input_to_the_centre_of_the_image() -> None:
    """The nsfw model: stretch to 256x256, keep the central 224x224."""
    model = spec(layout="NHWC", resize="stretch", resize_size=[256, 256], size=[224, 224])
    image = Image.new("RGB", (512, 512), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, 256, 512))  # left half black
    tensor, geometry = Preprocessor(model)(image, 512, 512)
    assert geometry.to_original(boxes((0, 0, 224, 224))).tolist() == [[32, 32, 480, 480]]
    # the black/white edge at x=256 of the original is at 256 / 2 - 16 = 112 in the input
    assert np.all(tensor[:, :111] == 0.0)
    assert np.all(tensor[:, 113:] == 1.0)


# --- letterbox ------------------------------------------------------------------------------------------------------


def test_letterbox_pads_above_and_below_a_wide_image_with_pad_value() -> None:
    model = spec(resize="letterbox", size=[64, 64], pad_value=114, scale=1.0)
    tensor, _ = Preprocessor(model)(Image.new("RGB", (128, 64), (10, 20, 30)), 128, 64)
    # 128x64 fits as 64x32, centred: 16 rows of padding above and below
    assert np.all(tensor[:, :16] == 114)
    assert np.all(tensor[:, 48:] == 114)
    assert np.all(tensor[0, 16:48] == 10)
    assert np.all(tensor[1, 16:48] == 20)
    assert np.all(tensor[2, 16:48] == 30)


def test_letterbox_pads_left_and_right_of_a_tall_image() -> None:
    model = spec(resize="letterbox", size=[64, 64], pad_value=0, scale=1.0, layout="NHWC")
    tensor, geometry = Preprocessor(model)(Image.new("RGB", (20, 40), (255, 255, 255)), 20, 40)
    assert bright_box(tensor[..., 0]) == (16, 0, 48, 64)
    assert geometry.to_original(boxes((16, 0, 48, 64))).tolist() == [[0, 0, 20, 40]]


def test_letterbox_padding_is_excluded_when_mapping_back() -> None:
    model = spec(resize="letterbox", size=[64, 64])
    _, geometry = Preprocessor(model)(Image.new("RGB", (128, 64)), 128, 64)
    mapped = geometry.to_original(boxes((0, 0, 64, 64), (0, 16, 64, 48), (32, 32, 32, 32), (0, 0, 64, 10)))
    assert mapped.tolist() == [
        [0, 0, 128, 64],  # the whole input: the whole image, padding clipped away
        [0, 0, 128, 64],  # exactly the visible region
        [64, 32, 64, 32],  # the centre stays the centre
        [0, 0, 128, 0],  # a box inside the top padding collapses onto the image's top edge
    ]


def test_letterbox_of_a_small_image_scales_it_up() -> None:
    model = spec(resize="letterbox", size=[64, 64])
    pre = Preprocessor(model)
    assert pre.resized_size(20, 10) == (64, 32)
    _, geometry = pre(Image.new("RGB", (20, 10)), 20, 10)
    assert geometry.to_original(boxes((0, 16, 64, 48))) == pytest.approx(boxes((0, 0, 20, 10)))


# --- short side -----------------------------------------------------------------------------------------------------


def test_short_side_keeps_the_aspect_ratio() -> None:
    pre = Preprocessor(spec(resize="short_side", short_side=256, size=[224, 224]))
    assert pre.resized_size(400, 300) == (341, 256)
    assert pre.resized_size(300, 400) == (256, 341)
    assert pre.resized_size(256, 256) == (256, 256)


def test_short_side_then_centre_crop_maps_the_input_to_the_centre_of_the_image() -> None:
    """The orientation model: short side to 256 (400x300 -> 341x256), centre crop 224 (offsets 58, 16)."""
    _, geometry = Preprocessor(spec(resize="short_side", short_side=256, size=[224, 224]))(
        Image.new("RGB", (400, 300)), 400, 300
    )
    expected = [58 * 400 / 341, 16 * 300 / 256, 282 * 400 / 341, 240 * 300 / 256]
    assert geometry.to_original(boxes((0, 0, 224, 224)))[0] == pytest.approx(expected, abs=1e-3)


# --- a marker in the image comes back where it was ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resize", "image_size", "square"),
    [
        ({"resize": "stretch", "size": [64, 64]}, (256, 128), (64, 32, 192, 96)),
        ({"resize": "stretch", "resize_size": [128, 128], "size": [64, 64]}, (256, 256), (96, 96, 160, 160)),
        ({"resize": "letterbox", "size": [64, 64]}, (256, 128), (32, 32, 160, 96)),
        ({"resize": "letterbox", "size": [64, 64]}, (96, 192), (0, 24, 96, 72)),
        ({"resize": "short_side", "short_side": 80, "size": [64, 64]}, (320, 160), (120, 40, 200, 120)),
    ],
    ids=["stretch", "stretch-crop", "letterbox-wide", "letterbox-tall", "short-side"],
)
def test_a_white_square_found_in_the_tensor_maps_back_to_where_it_is_in_the_image(
    resize: dict[str, Any], image_size: tuple[int, int], square: tuple[int, int, int, int]
) -> None:
    model = spec(pad_value=0, **resize)
    image = with_white_square(*image_size, square)
    tensor, geometry = Preprocessor(model)(image, *image_size)
    found = boxes(bright_box(tensor[0]))
    assert geometry.to_original(found)[0] == pytest.approx(square, abs=1.0)


def test_geometry_refers_to_the_original_size_when_the_image_was_decoded_smaller() -> None:
    """A JPEG decoded at 1/4 scale (draft) still maps boxes to the full-size original."""
    model = spec(resize="stretch", size=[64, 64])
    reduced = with_white_square(100, 50, (25, 0, 75, 25))  # the 400x200 original, decoded at 1/4
    tensor, geometry = Preprocessor(model)(reduced, 400, 200)
    assert geometry.width == 400
    assert geometry.height == 200
    assert geometry.to_original(boxes(bright_box(tensor[0])))[0] == pytest.approx([100, 0, 300, 100], abs=4)


# --- properties -----------------------------------------------------------------------------------------------------

MODES = {
    "stretch": spec(resize="stretch", size=[64, 48]),
    "stretch-crop": spec(resize="stretch", resize_size=[80, 60], size=[64, 48]),
    "letterbox": spec(resize="letterbox", size=[64, 48]),
    "short-side": spec(resize="short_side", short_side=72, size=[64, 48]),
}


def forward(model: ModelSpec, width: int, height: int, box: tuple[float, float, float, float]) -> FloatArray:
    """Where a box of the original lands in the network input, from the resize mode's definition."""
    target_w, target_h = model.size
    if model.resize.value == "stretch":
        resized_w, resized_h = model.resize_size or model.size
    else:
        ratio = (
            min(target_w / width, target_h / height)
            if model.resize.value == "letterbox"
            else (model.short_side or 0) / min(width, height)
        )
        resized_w, resized_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    if model.resize.value == "letterbox":
        shift_x, shift_y = (target_w - resized_w) // 2, (target_h - resized_h) // 2
    else:
        shift_x, shift_y = -((resized_w - target_w) // 2), -((resized_h - target_h) // 2)
    x1, y1, x2, y2 = box
    sx, sy = resized_w / width, resized_h / height
    return boxes((x1 * sx + shift_x, y1 * sy + shift_y, x2 * sx + shift_x, y2 * sy + shift_y))


def geometry_for(model: ModelSpec, width: int, height: int) -> Geometry:
    pre = Preprocessor(model)
    _, geometry = pre(Image.new("RGB", pre.resized_size(width, height)), width, height)
    return geometry


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[int, int, tuple[float, float, float, float]]:
    width = draw(st.integers(1, 2000))
    # short_side resizing makes the long side up to `ratio` x 72 pixels: keep the test image small
    height = draw(st.integers(max(1, width // 8), min(2000, width * 8)))
    xs = sorted(draw(st.floats(0, width, allow_nan=False)) for _ in range(2))
    ys = sorted(draw(st.floats(0, height, allow_nan=False)) for _ in range(2))
    return width, height, (xs[0], ys[0], xs[1], ys[1])


@settings(max_examples=200, deadline=None)
@given(mode=st.sampled_from(sorted(MODES)), case=image_and_box())
def test_mapping_a_box_to_the_input_and_back_returns_the_box(
    mode: str, case: tuple[int, int, tuple[float, float, float, float]]
) -> None:
    width, height, box = case
    model = MODES[mode]
    mapped = geometry_for(model, width, height).to_original(forward(model, width, height, box))
    assert mapped[0] == pytest.approx(box, abs=1.0)


network_coordinate = st.floats(-1000, 1000, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(sorted(MODES)),
    width=st.integers(1, 2000),
    aspect=st.floats(0.125, 8),
    raw=st.lists(st.tuples(*[network_coordinate] * 4), min_size=1, max_size=5),
)
def test_mapped_boxes_never_leave_the_image(
    mode: str, width: int, aspect: float, raw: list[tuple[float, float, float, float]]
) -> None:
    height = max(1, min(2000, round(width * aspect)))
    mapped = geometry_for(MODES[mode], width, height).to_original(boxes(*raw))
    assert np.all(mapped[:, 0::2] >= 0)
    assert np.all(mapped[:, 0::2] <= width)
    assert np.all(mapped[:, 1::2] >= 0)
    assert np.all(mapped[:, 1::2] <= height)


@pytest.mark.parametrize(
    "fields",
    [
        {"size": [608, 800], "resize": "stretch"},
        {"size": [640, 640], "resize": "letterbox"},
        {"size": [224, 224], "resize": "short_side", "short_side": 256, "layout": "NHWC", "color_order": "BGR"},
    ],
)
def test_a_large_image_resized_in_threaded_bands_matches_one_whole_resize(
    fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, size=(1300, 1700, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    preprocessor = Preprocessor(spec(**fields))

    monkeypatch.setattr(preprocess, "BANDS", 1)
    whole, _ = preprocessor(image, 1700, 1300)
    monkeypatch.setattr(preprocess, "BANDS", 3)
    banded, _ = preprocessor(image, 1700, 1300)

    # The same resampling, up to the rounding of a band's box: at most one grey level, on a few pixels.
    difference = np.abs(banded - whole)
    assert difference.max() <= 1.01 * float(preprocessor._multiplier.max())
    assert np.count_nonzero(difference) <= 0.001 * difference.size
