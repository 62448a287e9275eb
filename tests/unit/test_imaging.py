"""Image decoding: every format a browser or phone sends becomes an upright RGB image, within the pixel limit."""

from __future__ import annotations

import base64
import io
import struct
import time
import tracemalloc
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lambda_vision.errors import ErrorCode, InputError
from lambda_vision.imaging import DecodedImage, PixelBudget, decode_image

LIMIT = 40_000_000
RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(decoded: DecodedImage) -> npt.NDArray[np.int16]:
    return np.asarray(decoded.image, dtype=np.int16)


def red_blue(width: int = 32, height: int = 24) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def marked(width: int, height: int) -> Image.Image:
    """Red, with a blue square in the top-left corner: shows where the top-left corner went."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (0, 0, width // 4, width // 4))
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR for an 8-bit RGB image of any size, an empty IDAT and IEND: 65 bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


def decode_error(data: bytes, max_pixels: int = LIMIT) -> InputError:
    with pytest.raises(InputError) as raised:
        decode_image(data, max_pixels)
    return raised.value


def close_to(actual: Any, expected: tuple[int, int, int], tolerance: int) -> bool:
    return bool(np.all(np.abs(np.asarray(actual, dtype=np.int16) - np.asarray(expected)) <= tolerance))


# --- formats --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("PNG", {}, 0),
        ("JPEG", {"quality": 95}, 8),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 16),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("TIFF", {"compression": "tiff_lzw"}, 0),
    ],
    ids=["png", "jpeg", "webp-lossless", "webp-lossy", "gif", "bmp", "tiff", "tiff-lzw"],
)
def test_each_supported_format_decodes_to_rgb_with_its_size(fmt: str, options: dict[str, Any], tolerance: int) -> None:
    decoded = decode_image(encode(red_blue(32, 24), fmt, **options), LIMIT)
    assert (decoded.width, decoded.height, decoded.format) == (32, 24, fmt)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (32, 24)
    values = pixels(decoded)
    assert close_to(values[:, :14], RED, tolerance)  # away from the edge, where lossy codecs blend
    assert close_to(values[:, 18:], BLUE, tolerance)


def test_grayscale_becomes_three_equal_channels() -> None:
    image = Image.new("L", (4, 1))
    image.putdata([0, 64, 128, 255])
    values = pixels(decode_image(encode(image, "PNG"), LIMIT))
    assert values[0].tolist() == [[0, 0, 0], [64, 64, 64], [128, 128, 128], [255, 255, 255]]


def test_a_bilevel_image_becomes_black_and_white() -> None:
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    assert pixels(decode_image(encode(image, "PNG"), LIMIT))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_a_cmyk_jpeg_becomes_rgb() -> None:
    decoded = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95), LIMIT)
    assert decoded.image.mode == "RGB"
    assert close_to(pixels(decoded), RED, 8)


def test_16_bit_grayscale_keeps_its_high_byte() -> None:
    image = Image.fromarray(np.array([[0, 255, 32768, 65535]], dtype=np.uint16))
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    values = pixels(decode_image(data, LIMIT))
    assert values[0].tolist() == [[0, 0, 0], [0, 0, 0], [128, 128, 128], [255, 255, 255]]


def test_16_bit_big_endian_tiff_keeps_its_high_byte() -> None:
    values = np.array([[0, 255, 32768, 65535]], dtype=">u2")
    image = Image.frombuffer("I;16B", (4, 1), values.tobytes(), "raw", "I;16B", 0, 1)
    data = encode(image, "TIFF")
    assert data.startswith(b"MM") and Image.open(io.BytesIO(data)).mode == "I;16B"
    decoded = pixels(decode_image(data, LIMIT))
    assert decoded[0].tolist() == [[0, 0, 0], [0, 0, 0], [128, 128, 128], [255, 255, 255]]


# --- transparency: transparent areas are white ----------------------------------------------------------------------


def test_rgba_transparent_pixels_become_white_and_translucent_ones_are_blended_over_white() -> None:
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 255), (0, 0, 0, 0), (0, 0, 0, 128)])
    values = pixels(decode_image(encode(image, "PNG"), LIMIT))
    assert values[0, 0].tolist() == [255, 0, 0]
    assert values[0, 1].tolist() == [255, 255, 255]
    assert close_to(values[0, 2], (127, 127, 127), 1)


def test_la_transparent_pixels_become_white() -> None:
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 255), (0, 0)])
    assert pixels(decode_image(encode(image, "PNG"), LIMIT))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_a_palette_image_with_a_transparent_colour_shows_it_white(fmt: str) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.putdata([0, 1])  # index 0 (black) is declared transparent
    decoded = decode_image(encode(image, fmt, transparency=0), LIMIT)
    assert pixels(decoded)[0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_a_palette_image_without_transparency_keeps_its_colours() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    assert pixels(decode_image(encode(image, "PNG"), LIMIT))[0].tolist() == [[0, 0, 0], [255, 0, 0]]


# --- EXIF orientation -----------------------------------------------------------------------------------------------


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif)


def corner_colours(decoded: DecodedImage) -> dict[str, tuple[int, ...]]:
    values = pixels(decoded)
    return {
        "top-left": tuple(values[2, 2]),
        "top-right": tuple(values[2, -3]),
        "bottom-left": tuple(values[-3, 2]),
        "bottom-right": tuple(values[-3, -3]),
    }


def blue_corner(decoded: DecodedImage) -> str:
    blue = [corner for corner, colour in corner_colours(decoded).items() if close_to(colour, BLUE, 40)]
    assert len(blue) == 1, corner_colours(decoded)
    return blue[0]


def test_without_orientation_the_image_is_as_stored() -> None:
    decoded = decode_image(jpeg_with_orientation(marked(40, 20), 1), LIMIT)
    assert (decoded.width, decoded.height) == (40, 20)
    assert blue_corner(decoded) == "top-left"


def test_orientation_6_turns_the_photo_clockwise_and_swaps_width_and_height() -> None:
    decoded = decode_image(jpeg_with_orientation(marked(40, 20), 6), LIMIT)
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)
    assert blue_corner(decoded) == "top-right"


def test_orientation_8_turns_the_photo_counter_clockwise_and_swaps_width_and_height() -> None:
    decoded = decode_image(jpeg_with_orientation(marked(40, 20), 8), LIMIT)
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)
    assert blue_corner(decoded) == "bottom-left"


@pytest.mark.parametrize(
    ("orientation", "corner"), [(5, "top-left"), (6, "top-right"), (7, "bottom-right"), (8, "bottom-left")]
)
def test_every_sideways_orientation_is_applied(orientation: int, corner: str) -> None:
    decoded = decode_image(jpeg_with_orientation(marked(40, 20), orientation), LIMIT)
    assert (decoded.width, decoded.height) == (20, 40)
    assert blue_corner(decoded) == corner


@pytest.mark.parametrize(("orientation", "corner"), [(2, "top-right"), (3, "bottom-right"), (4, "bottom-left")])
def test_orientations_that_keep_the_size_are_applied_too(orientation: int, corner: str) -> None:
    decoded = decode_image(jpeg_with_orientation(marked(40, 20), orientation), LIMIT)
    assert (decoded.width, decoded.height) == (40, 20)
    assert blue_corner(decoded) == corner


# --- JPEG draft decoding --------------------------------------------------------------------------------------------


def test_a_large_jpeg_is_decoded_reduced_but_reports_its_full_size() -> None:
    asked: list[tuple[int, int]] = []

    def at_least(width: int, height: int) -> tuple[int, int]:
        asked.append((width, height))
        return 200, 160

    decoded = decode_image(encode(red_blue(2000, 1600), "JPEG", quality=90), LIMIT, at_least)
    assert asked == [(2000, 1600)]
    assert (decoded.width, decoded.height) == (2000, 1600)
    assert decoded.image.size == (250, 200)  # 1/8, the largest reduction still at least 200x160
    assert close_to(pixels(decoded)[:, :100], RED, 8)


def test_draft_reduction_never_goes_below_the_size_asked_for() -> None:
    decoded = decode_image(encode(red_blue(2000, 1600), "JPEG"), LIMIT, lambda w, h: (300, 240))
    assert decoded.image.size == (500, 400)  # 1/8 would be 250x200, smaller than asked


def test_a_sideways_jpeg_is_reduced_and_reports_its_upright_size() -> None:
    asked: list[tuple[int, int]] = []

    def at_least(width: int, height: int) -> tuple[int, int]:
        asked.append((width, height))
        return 160, 200

    decoded = decode_image(jpeg_with_orientation(marked(2000, 1600), 6), LIMIT, at_least)
    assert asked == [(1600, 2000)]  # the upright size
    assert (decoded.width, decoded.height) == (1600, 2000)
    assert decoded.image.size == (200, 250)
    assert blue_corner(decoded) == "top-right"


def test_other_formats_are_decoded_at_full_size() -> None:
    decoded = decode_image(encode(red_blue(400, 300), "PNG"), LIMIT, lambda w, h: (40, 30))
    assert decoded.image.size == (400, 300)


# --- errors ---------------------------------------------------------------------------------------------------------


def test_empty_data_is_reported_as_empty() -> None:
    error = decode_error(b"")
    assert error.code is ErrorCode.IMAGE_EMPTY
    assert error.message == "The image is empty (0 bytes)."


def test_bytes_that_are_no_image_say_which_formats_are_read() -> None:
    error = decode_error(b"this is a text file, not a picture\n" * 10)
    assert error.code is ErrorCode.IMAGE_UNDECODABLE
    assert error.message == (
        "The data (350 bytes) is not an image format this API reads (JPEG, PNG, WebP, GIF, BMP, TIFF)."
        " Check the file, or that it was not sent as text."
    )


def test_an_image_sent_as_base64_text_is_not_an_image() -> None:
    error = decode_error(base64.b64encode(encode(red_blue(), "PNG")))
    assert error.code is ErrorCode.IMAGE_UNDECODABLE
    assert "not sent as text" in error.message


def noisy(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("fmt", "kind"), [("JPEG", "a JPEG"), ("PNG", "a PNG")])
def test_a_truncated_file_says_it_may_be_truncated(fmt: str, kind: str) -> None:
    data = encode(noisy(64, 64), fmt)
    error = decode_error(data[: len(data) // 2])
    assert error.code is ErrorCode.IMAGE_UNDECODABLE
    assert error.message.startswith(f"The data looks like {kind} but could not be decoded (")
    assert error.message.endswith("): it may be truncated.")


def test_a_png_with_a_header_and_no_pixels_is_undecodable() -> None:
    error = decode_error(png_header_only(10, 10))
    assert error.code is ErrorCode.IMAGE_UNDECODABLE
    assert "looks like a PNG" in error.message


def test_an_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    data = png_header_only(10_000, 5_000)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = decode_error(data)
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert error.code is ErrorCode.IMAGE_TOO_LARGE
    assert error.message == (
        "The image is 10000x5000 = 50,000,000 pixels; the limit is 40,000,000. Send a smaller image."
    )
    assert elapsed < 0.1
    assert peak < 1_000_000  # the 150 MB of pixels were never allocated


def test_the_pixel_limit_is_inclusive() -> None:
    assert decode_error(png_header_only(10, 10), max_pixels=100).code is ErrorCode.IMAGE_UNDECODABLE
    assert decode_error(png_header_only(11, 10), max_pixels=100).code is ErrorCode.IMAGE_TOO_LARGE


def test_a_real_image_over_a_small_limit_is_refused() -> None:
    error = decode_error(encode(red_blue(32, 24), "JPEG"), max_pixels=500)
    assert error.code is ErrorCode.IMAGE_TOO_LARGE
    assert error.message == "The image is 32x24 = 768 pixels; the limit is 500. Send a smaller image."


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (16_000, 16_000)])
def test_a_huge_image_is_too_large_not_undecodable(width: int, height: int) -> None:
    error = decode_error(png_header_only(width, height))
    assert error.code is ErrorCode.IMAGE_TOO_LARGE
    assert error.message.startswith(f"The image is {width}x{height} = {width * height:,} pixels; the limit is")


# --- The request's pixel budget ---------------------------------------------------------------------------------


def test_the_budget_is_charged_from_the_header_before_decoding() -> None:
    budget = PixelBudget(1_000)
    decode_image(encode(red_blue(20, 20), "PNG"), LIMIT, budget=budget)  # 400 pixels
    decode_image(encode(red_blue(20, 30), "PNG"), LIMIT, budget=budget)  # 600: exactly the budget
    assert budget.used == 1_000
    with pytest.raises(InputError) as raised:
        decode_image(png_header_only(1, 1), LIMIT, budget=budget)
    assert raised.value.code is ErrorCode.PIXEL_BUDGET_EXCEEDED
    assert budget.used == 1_000  # a refused image takes nothing


def test_an_image_refused_by_the_budget_is_never_decoded() -> None:
    budget = PixelBudget(1_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as raised:
            decode_image(png_header_only(6_000, 6_000), LIMIT, budget=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.code is ErrorCode.PIXEL_BUDGET_EXCEEDED
    assert peak < 1_000_000


@given(
    sizes=st.lists(st.tuples(st.integers(1, 3_000), st.integers(1, 3_000)), max_size=20), limit=st.integers(1, 10**7)
)
def test_the_budget_admits_images_in_order_while_their_total_stays_within_it(
    sizes: list[tuple[int, int]], limit: int
) -> None:
    budget = PixelBudget(limit)
    admitted = 0
    for width, height in sizes:
        fits = admitted + width * height <= limit
        if fits:
            budget.take(width, height)
            admitted += width * height
        else:
            with pytest.raises(InputError):
                budget.take(width, height)
        assert budget.used == admitted <= limit


# --- Only the documented formats ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["DDS", "ICO", "PCX", "PPM", "QOI", "SGI", "TGA", "IM", "XBM"])
def test_formats_beyond_the_documented_ones_are_named_and_refused(fmt: str) -> None:
    image = red_blue(16, 16).convert("1") if fmt == "XBM" else red_blue(16, 16)
    error = decode_error(encode(image, fmt))
    assert error.code is ErrorCode.IMAGE_UNSUPPORTED_FORMAT
    assert error.message == (
        f"The image is in {fmt} format, which this API does not read. Convert it to one of"
        " JPEG, PNG, WebP, GIF, BMP, TIFF."
    )


def test_a_multi_picture_jpeg_from_a_camera_is_read_as_jpeg() -> None:
    data = encode(red_blue(32, 24), "MPO", save_all=True, append_images=[red_blue(32, 24)])
    decoded = decode_image(data, LIMIT)
    assert (decoded.width, decoded.height) == (32, 24)
