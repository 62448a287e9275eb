"""Turning a decoded image into the network's input tensor, as the model's registry entry describes."""

from __future__ import annotations

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


class Preprocessor:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        std = np.asarray(spec.std, dtype=np.float32)
        # (pixel * scale - mean) / std folded into one multiply and one add
        self._multiplier = (spec.scale / std).astype(np.float32)
        self._offset = (-np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)

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
        if image.size != (resized_w, resized_h):
            image = image.resize((resized_w, resized_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
        scale_x, scale_y = resized_w / width, resized_h / height
        if spec.resize is ResizeMode.LETTERBOX:
            pad_x, pad_y = (target_w - resized_w) // 2, (target_h - resized_h) // 2
            canvas = Image.new("RGB", (target_w, target_h), (spec.pad_value,) * 3)
            canvas.paste(image, (pad_x, pad_y))
            image, offset_x, offset_y = canvas, -pad_x, -pad_y
        else:
            offset_x, offset_y = (resized_w - target_w) // 2, (resized_h - target_h) // 2
            if (offset_x, offset_y) != (0, 0):
                image = image.crop((offset_x, offset_y, offset_x + target_w, offset_y + target_h))
        pixels = np.asarray(image, dtype=np.float32)
        if spec.color_order is ColorOrder.BGR:
            pixels = pixels[..., ::-1]
        tensor = pixels * self._multiplier + self._offset
        if spec.layout is Layout.NCHW:
            tensor = tensor.transpose(2, 0, 1)
        geometry = Geometry(scale_x, scale_y, float(offset_x), float(offset_y), width, height)
        return np.ascontiguousarray(tensor, dtype=np.float32), geometry
