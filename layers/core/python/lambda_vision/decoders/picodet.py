"""PicoDet (PaddleDetection) heads without the post-processing graph: per stride, class scores and
box-side distributions (generalized focal loss, `bins` bins per side)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambda_vision.decoders.base import DetectionDecoder, Detections, FloatArray
from lambda_vision.decoders.boxes import above_threshold, clip_boxes
from lambda_vision.decoders.classification import softmax


class PicoDetDecoder(DetectionDecoder):
    """Outputs: scores for each stride ([N, cells, classes], already 0-1), then distributions for each stride
    ([N, cells, 4 * bins]). Cells are row-major over a grid of ceil(height/stride) x ceil(width/stride).
    Options: `strides` (default [8, 16, 32, 64]), `bins` (default 8)."""

    def __init__(self, labels: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(labels, options)
        self.strides = tuple(int(s) for s in options.get("strides", (8, 16, 32, 64)))
        self.bins = int(options.get("bins", 8))
        self._bin_values = np.arange(self.bins, dtype=np.float32)
        self._centers: dict[tuple[int, int, int], FloatArray] = {}

    @classmethod
    def option_names(cls) -> Sequence[str]:
        return ("strides", "bins")

    def _cell_centers(self, width: int, height: int, stride: int) -> FloatArray:
        key = (width, height, stride)
        if key not in self._centers:
            rows, cols = math.ceil(height / stride), math.ceil(width / stride)
            ys, xs = np.meshgrid(np.arange(rows, dtype=np.float32), np.arange(cols, dtype=np.float32), indexing="ij")
            self._centers[key] = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        return self._centers[key]

    def decode(
        self, outputs: Sequence[FloatArray], input_size: tuple[int, int], score_threshold: float
    ) -> list[Detections]:
        levels = len(self.strides)
        if len(outputs) != 2 * levels:
            raise ValueError(f"PicoDet expects {2 * levels} outputs for strides {self.strides}, got {len(outputs)}")
        width, height = input_size
        batch = outputs[0].shape[0]
        results = []
        for image in range(batch):
            boxes, scores, class_ids = [], [], []
            for level, stride in enumerate(self.strides):
                cells, best, classes = above_threshold(outputs[level][image], score_threshold)
                if cells.size == 0:
                    continue
                distribution = outputs[levels + level][image][cells].reshape(-1, 4, self.bins)
                distances = softmax(distribution) @ self._bin_values * stride  # [cells, 4]: left, top, right, bottom
                centers = self._cell_centers(width, height, stride)[cells]
                boxes.append(np.concatenate([centers - distances[:, :2], centers + distances[:, 2:]], axis=1))
                scores.append(best)
                class_ids.append(classes)
            if not boxes:
                results.append(Detections.empty())
                continue
            results.append(
                Detections(
                    clip_boxes(np.concatenate(boxes).astype(np.float32), width, height),
                    np.concatenate(scores).astype(np.float32),
                    np.concatenate(class_ids).astype(np.int64),
                )
            )
        return results
