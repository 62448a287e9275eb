"""Drawing detections onto the image, for clients that ask for a picture (Accept: image/jpeg or image/png)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from lambda_vision.decoders.base import Detection

PALETTE = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40),
)  # fmt: skip

IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


def draw_detections(image: Image.Image, detections: Sequence[Detection], labels: Sequence[str]) -> Image.Image:
    """A copy of `image` (already at its original size) with each box and its label drawn."""
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
    return canvas


def encode(image: Image.Image, media_type: str) -> bytes:
    buffer = io.BytesIO()
    image_format = IMAGE_FORMATS[media_type]
    image.save(buffer, format=image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return buffer.getvalue()
