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
# The formats the API documents; Pillow's other readers (DDS, ICO, PCX, TGA...) are never run on request data.
# JPEG includes MPO, the multi-picture JPEG of many cameras, which Pillow opens through its JPEG reader.
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF"


class PixelBudget:
    """The pixels the images of one request may total (MAX_REQUEST_PIXELS), taken in request order.

    Each image is counted at its full size from its header, before it is decoded, so the memory and time a
    request can take are bounded whatever its images are.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, width: int, height: int) -> None:
        pixels = width * height
        if self.used + pixels > self.limit:
            raise InputError(
                ErrorCode.PIXEL_BUDGET_EXCEEDED,
                f"The image is {width}x{height} = {pixels:,} pixels, and the images before it in this request"
                f" already take {self.used:,} of the {self.limit:,} pixels one request may decode"
                " (MAX_REQUEST_PIXELS). Send this image in another request.",
            )
        self.used += pixels


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, possibly reduced while decoding (JPEG draft)
    width: int  # size of the image as displayed, before any reduction
    height: int
    format: str | None


def decode_image(
    data: bytes,
    max_pixels: int,
    min_size: Callable[[int, int], tuple[int, int]] | None = None,
    budget: PixelBudget | None = None,
) -> DecodedImage:
    """Decode `data` to an RGB image.

    `min_size(width, height)` lets JPEG decoding skip work: the decoder may scale down by 1/2, 1/4 or 1/8 as
    long as the result stays at least that large. Width and height are always those of the full image.
    `budget`, when given, is charged with the image's pixels before any of them is decoded.
    """
    if not data:
        raise InputError(ErrorCode.IMAGE_EMPTY, "The image is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=DECODED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"The image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,}."
                    " Send a smaller image.",
                )
            if budget is not None:
                budget.take(width, height)
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
    except UnidentifiedImageError:
        other_format = _identify(data)
        if other_format is not None:
            raise InputError(
                ErrorCode.IMAGE_UNSUPPORTED_FORMAT,
                f"The image is in {other_format} format, which this API does not read. Convert it to one of"
                f" {FORMAT_NAMES}.",
            ) from None
        raise InputError(ErrorCode.IMAGE_UNDECODABLE, _undecodable_message(data, None)) from None
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a damaged file makes a decoder raise, the image is unreadable
        raise InputError(ErrorCode.IMAGE_UNDECODABLE, _undecodable_message(data, error)) from None
    return DecodedImage(image=rgb, width=width, height=height, format=image.format)


def _identify(data: bytes) -> str | None:
    """The name of the format of `data` among all Pillow knows, from its header only (nothing is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notices of formats refused anyway
            with Image.open(io.BytesIO(data)) as image:
                return image.format
    except Exception:  # noqa: BLE001 - not an image any reader recognises
        return None


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


def _undecodable_message(data: bytes, error: BaseException | None) -> str:
    kind = "a PNG" if data.startswith(b"\x89PNG") else "a JPEG" if data.startswith(b"\xff\xd8") else "an image"
    if error is None:
        return (
            f"The data ({len(data):,} bytes) is not an image format this API reads"
            f" ({FORMAT_NAMES}). Check the file, or that it was not sent as text."
        )
    return f"The data looks like {kind} but could not be decoded ({type(error).__name__}): it may be truncated."
