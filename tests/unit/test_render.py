"""Annotated images: drawn boxes, and an encoding that always fits in a Lambda response."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lambda_vision.render import ImageTooLargeError, encode_to_fit


def noisy(width: int, height: int) -> Image.Image:
    """An image that compresses badly, as a grainy photo does."""
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_an_image_that_fits_is_encoded_at_full_size_in_the_preferred_type() -> None:
    encoded = encode_to_fit(Image.new("RGB", (300, 200), "white"), ["image/png", "image/jpeg"], 100_000)
    assert (encoded.media_type, encoded.scale) == ("image/png", 1.0)
    assert Image.open(io.BytesIO(encoded.data)).size == (300, 200)


def test_jpeg_quality_is_lowered_before_anything_else() -> None:
    image = noisy(200, 200)
    full = len(encode_to_fit(image, ["image/jpeg"], 10**9).data)
    encoded = encode_to_fit(image, ["image/jpeg"], full - 1)
    assert (encoded.media_type, encoded.scale) == ("image/jpeg", 1.0)
    assert len(encoded.data) < full
    assert Image.open(io.BytesIO(encoded.data)).size == (200, 200)


def test_another_accepted_type_at_full_size_comes_before_scaling_down() -> None:
    encoded = encode_to_fit(noisy(300, 300), ["image/png", "image/jpeg"], 150_000)
    assert (encoded.media_type, encoded.scale) == ("image/jpeg", 1.0)


@pytest.mark.parametrize("media_type", ["image/png", "image/jpeg"])
def test_an_image_too_large_in_every_accepted_type_is_scaled_down_to_fit(media_type: str) -> None:
    limit = 40_000
    encoded = encode_to_fit(noisy(400, 300), [media_type], limit)
    assert encoded.media_type == media_type
    assert len(encoded.data) <= limit
    assert 0.0 < encoded.scale < 1.0
    picture = Image.open(io.BytesIO(encoded.data))
    assert abs(picture.width - 400 * encoded.scale) <= 1
    assert abs(picture.height / picture.width - 0.75) < 0.02  # the same shape


def test_a_limit_nothing_can_meet_is_an_error() -> None:
    with pytest.raises(ImageTooLargeError):
        encode_to_fit(noisy(100, 100), ["image/png"], 10)
