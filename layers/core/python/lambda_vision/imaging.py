"""Image decoding with limits: size is checked from the header before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from lambda_vision.errors import ErrorCode, InputError

# decode_image checks the pixel count (MAX_IMAGE_PIXELS) from the header before decoding; Pillow's own check
# would refuse the largest images at open time with a less helpful error.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, possibly reduced while decoding (JPEG draft)
    width: int  # size of the image as displayed, before any reduction
    height: int
    format: str | None


def decode_image(
    data: bytes, max_pixels: int, min_size: Callable[[int, int], tuple[int, int]] | None = None
) -> DecodedImage:
    """Decode `data` to an RGB image.

    `min_size(width, height)` lets JPEG decoding skip work: the decoder may scale down by 1/2, 1/4 or 1/8 as
    long as the result stays at least that large. Width and height are always those of the full image.
    """
    if not data:
        raise InputError(ErrorCode.IMAGE_EMPTY, "The image is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}."
                    " Send a smaller image.",
                )
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            transposed = orientation in (5, 6, 7, 8)  # a quarter turn: width and height swap
            if min_size is not None and image.format == "JPEG":
                shown_w, shown_h = (height, width) if transposed else (width, height)
                wanted_w, wanted_h = min_size(shown_w, shown_h)
                image.draft("RGB", (wanted_h, wanted_w) if transposed else (wanted_w, wanted_h))
            image.load()
            upright: Image.Image = image
            if orientation in (2, 3, 4, 5, 6, 7, 8):
                upright = ImageOps.exif_transpose(image)
            if transposed:
                width, height = height, width
            rgb = _to_rgb(upright)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise InputError(ErrorCode.IMAGE_UNDECODABLE, _undecodable_message(data, error)) from None
    return DecodedImage(image=rgb, width=width, height=height, format=image.format)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a page or a photo on screen would show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I"):  # 16- and 32-bit grey: keep the top 8 bits of 16
        return image.convert("I").point(lambda value: value / 256).convert("L").convert("RGB")
    return image.convert("RGB")


def _undecodable_message(data: bytes, error: BaseException) -> str:
    kind = "a PNG" if data.startswith(b"\x89PNG") else "a JPEG" if data.startswith(b"\xff\xd8") else "an image"
    if isinstance(error, UnidentifiedImageError):
        return (
            f"The data ({len(data):,} bytes) is not an image format this API reads"
            " (JPEG, PNG, WebP, GIF, BMP, TIFF). Check the file, or that it was not sent as text."
        )
    return f"The data looks like {kind} but could not be decoded ({type(error).__name__}): it may be truncated."
