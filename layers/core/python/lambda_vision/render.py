"""Drawing detections onto the image, for clients that ask for a picture (Accept: image/jpeg or image/png)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from lambda_vision.decoders.base import Detection

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40),
)  # fmt: skip

IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
KEYPOINT_COLOR = (255, 225, 25)  # landmarks: yellow dots with a dark rim, visible on any box colour
JPEG_QUALITIES = (90, 75, 60)  # tried in turn before an image is scaled down
SMALLEST_SIDE = 64  # an annotated image is never scaled below this many pixels on its longer side
DOWNSCALE_STEP = 0.8  # each try at a smaller size keeps this much of the width and height (64% of the pixels)


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    media_type: str
    scale: float  # 1.0, or the factor the picture was scaled down by to fit


class ImageTooLargeError(Exception):
    """No acceptable encoding of the picture fits, even scaled down to the smallest size."""


def draw_detections(image: Image.Image, detections: Sequence[Detection], labels: Sequence[str]) -> Image.Image:
    """A copy of `image` (already at its original size) with each box, its label and its keypoints drawn."""
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(max(canvas.size) / 400))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 60)))
    for detection in detections:
        color = PALETTE[(labels.index(detection.label) if detection.label in labels else 0) % len(PALETTE)]
        x1, y1, x2, y2 = detection.box
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        caption = f"{detection.label} {detection.score:.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), caption, font=font)
        lift = bottom - top + 2 * line
        text_y = y1 - lift if y1 - lift >= 0 else y1
        draw.rectangle((x1, text_y, x1 + right - left + 2 * line, text_y + lift), fill=color)
        draw.text((x1 + line, text_y + line - (top - y1)), caption, fill=(255, 255, 255), font=font)
        radius = max(2, round(line * 1.5))
        for x, y in detection.keypoints:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=KEYPOINT_COLOR, outline=(0, 0, 0))
    return canvas


def encode(image: Image.Image, media_type: str, quality: int = JPEG_QUALITIES[0]) -> bytes:
    buffer = io.BytesIO()
    _save(image, buffer, media_type, quality)
    return buffer.getvalue()


def encode_to_fit(image: Image.Image, media_types: Sequence[str], max_bytes: int) -> EncodedImage:
    """`image` in at most `max_bytes`: in the first of `media_types` (the client's order) that fits at full
    size, JPEG quality lowered step by step; else scaled down, in the first type, until it fits.

    An encoding stops as soon as it passes `max_bytes`, so a try that cannot fit costs only part of the work.
    """
    if not media_types:
        raise ImageTooLargeError("no media type to encode the picture in")
    for media_type in media_types:
        for quality in JPEG_QUALITIES if media_type == "image/jpeg" else JPEG_QUALITIES[:1]:
            data = _encode_within(image, media_type, quality, max_bytes)
            if data is not None:
                return EncodedImage(data, media_type, 1.0)
    media_type = media_types[0]
    # A first guess from a sample band: the encoded size grows about with the pixel count.
    scale = min(1.0, math.sqrt(max_bytes / _estimated_size(image, media_type)) * 0.9 / DOWNSCALE_STEP)
    while True:
        scale *= DOWNSCALE_STEP
        width, height = round(image.width * scale), round(image.height * scale)
        if max(width, height) < SMALLEST_SIDE:
            raise ImageTooLargeError(f"the picture does not fit in {max_bytes:,} bytes as {media_type}")
        smaller = image.resize((max(1, width), max(1, height)), Image.Resampling.BICUBIC)
        data = _encode_within(smaller, media_type, JPEG_QUALITIES[1], max_bytes)
        if data is not None:
            return EncodedImage(data, media_type, scale)


class _OverflowError(Exception):
    pass


class _CappedBuffer(io.BytesIO):
    """A buffer that refuses to grow past `limit` bytes, which ends the encoding writing to it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: ReadableBuffer, /) -> int:
        if self.tell() + memoryview(data).nbytes > self.limit:
            raise _OverflowError
        return super().write(data)


def _estimated_size(image: Image.Image, media_type: str) -> int:
    """The encoded size of `image`, extrapolated from a band of an eighth of its height through its middle."""
    band = max(1, image.height // 8)
    top = (image.height - band) // 2
    sample = image.crop((0, top, image.width, top + band))
    return max(1, len(encode(sample, media_type, JPEG_QUALITIES[1])) * image.height // band)


def _encode_within(image: Image.Image, media_type: str, quality: int, max_bytes: int) -> bytes | None:
    buffer = _CappedBuffer(max_bytes)
    try:
        _save(image, buffer, media_type, quality)
    except _OverflowError:
        return None
    return buffer.getvalue()


def _save(image: Image.Image, buffer: io.BytesIO, media_type: str, quality: int) -> None:
    image_format = IMAGE_FORMATS[media_type]
    # PNG at zlib level 1: several times faster than the default for a few percent more bytes.
    options = {"quality": quality} if image_format == "JPEG" else {"compress_level": 1}
    image.save(buffer, format=image_format, **options)
