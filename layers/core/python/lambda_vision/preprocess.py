"""Turning a decoded image into the network's input tensor, as the model's registry entry describes."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from lambda_vision.registry import ColorOrder, Layout, ModelSpec, ResizeMode

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Geometry:
    """Maps points of the network input back to the original image: x = (x_in + offset_x) / scale_x."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    width: int  # original image size
    height: int

    def to_original(self, boxes: FloatArray) -> FloatArray:
        """Boxes [N, 4] as x1, y1, x2, y2 in input pixels -> original pixels, clipped to the image."""
        out = np.empty_like(boxes)
        out[:, 0::2] = (boxes[:, 0::2] + self.offset_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] + self.offset_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.height, out=out[:, 1::2])
        return out

    def points_to_original(self, points: FloatArray) -> FloatArray:
        """Points [..., 2] as x, y in input pixels -> original pixels (not clipped: a landmark may lie outside)."""
        out = np.empty_like(points)
        out[..., 0] = (points[..., 0] + self.offset_x) / self.scale_x
        out[..., 1] = (points[..., 1] + self.offset_y) / self.scale_y
        return out


# A large resize is split into horizontal bands run on threads: Pillow releases the GIL while resampling,
# and a band gives the same rows as a whole-image resize (up to rounding: at most one grey level). Below
# about a megapixel of source the threads cost more than they save (measured after a network run).
BANDS = max(1, min(4, os.cpu_count() or 1))
MIN_BAND_SOURCE_PIXELS = 1_000_000
_band_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _band_pool  # noqa: PLW0603 - one pool per container, created on first use
    if _band_pool is None:
        _band_pool = ThreadPoolExecutor(max_workers=BANDS, thread_name_prefix="preprocess")
    return _band_pool


class Preprocessor:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        std = np.asarray(spec.std, dtype=np.float32)
        # (pixel * scale - mean) / std folded into one multiply and one add, per channel of the model's order
        self._multiplier = (spec.scale / std).astype(np.float32)
        self._offset = (-np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)
        # source channel (RGB) of each model channel
        self._channels = (2, 1, 0) if spec.color_order is ColorOrder.BGR else (0, 1, 2)

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the image is resized to before any crop or padding."""
        spec = self.spec
        target_w, target_h = spec.size
        if spec.resize is ResizeMode.STRETCH:
            return spec.resize_size or spec.size
        if spec.resize is ResizeMode.LETTERBOX:
            ratio = min(target_w / width, target_h / height)
        else:
            assert spec.short_side is not None
            ratio = spec.short_side / min(width, height)
        return max(1, round(width * ratio)), max(1, round(height * ratio))

    def __call__(self, image: Image.Image, width: int, height: int) -> tuple[FloatArray, Geometry]:
        """`image` may be a reduced decode of a `width` x `height` original; geometry refers to the original."""
        spec = self.spec
        target_w, target_h = spec.size
        resized_w, resized_h = self.resized_size(width, height)
        if spec.resize is ResizeMode.LETTERBOX:
            # the whole resized image, pasted centred on a padded canvas
            offset_x, offset_y = -((target_w - resized_w) // 2), -((target_h - resized_h) // 2)
        else:
            # the centre of the resized image, cropped to the target size
            offset_x, offset_y = (resized_w - target_w) // 2, (resized_h - target_h) // 2
        # The part of the resized image that lands on the network input, in resized and in output pixels.
        left, top = max(0, offset_x), max(0, offset_y)
        right, bottom = min(resized_w, offset_x + target_w), min(resized_h, offset_y + target_h)
        out_x, out_y = left - offset_x, top - offset_y

        covered = (right - left, bottom - top) == (target_w, target_h)
        tensor = self._canvas(padded=not covered)
        scale_x, scale_y = image.width / resized_w, image.height / resized_h  # resized -> decoded pixels
        rows = bottom - top
        source_pixels = rows * scale_y * (right - left) * scale_x
        bands = BANDS if source_pixels >= MIN_BAND_SOURCE_PIXELS else 1
        edges = [top + rows * band // bands for band in range(bands + 1)]

        def fill(band: int) -> None:
            band_top, band_bottom = edges[band], edges[band + 1]
            box = (left * scale_x, band_top * scale_y, right * scale_x, band_bottom * scale_y)
            resized = image.resize((right - left, band_bottom - band_top), Image.Resampling.BILINEAR, box=box)
            rows_out = slice(out_y + band_top - top, out_y + band_bottom - top)
            self._normalise(np.asarray(resized), tensor, rows_out, slice(out_x, out_x + right - left))

        if bands == 1:
            fill(0)
        else:
            list(_pool().map(fill, range(bands)))
        geometry = Geometry(resized_w / width, resized_h / height, float(offset_x), float(offset_y), width, height)
        return tensor, geometry

    def _canvas(self, *, padded: bool) -> FloatArray:
        """The network input, filled with the normalised padding colour where the image will not cover it."""
        target_w, target_h = self.spec.size
        shape = (3, target_h, target_w) if self.spec.layout is Layout.NCHW else (target_h, target_w, 3)
        tensor = np.empty(shape, dtype=np.float32)
        if padded:
            pad = np.float32(self.spec.pad_value) * self._multiplier + self._offset
            tensor[...] = pad[:, None, None] if self.spec.layout is Layout.NCHW else pad
        return tensor

    def _normalise(self, pixels: npt.NDArray[np.uint8], tensor: FloatArray, rows: slice, cols: slice) -> None:
        for channel, source in enumerate(self._channels):
            target = tensor[channel, rows, cols] if self.spec.layout is Layout.NCHW else tensor[rows, cols, channel]
            np.multiply(pixels[..., source], self._multiplier[channel], out=target, dtype=np.float32)
            target += self._offset[channel]
