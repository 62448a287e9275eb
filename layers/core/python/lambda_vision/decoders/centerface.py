"""CenterFace (anchor-free face detection with five landmarks): dense maps at one stride, one cell per centre.

Outputs, each [N, C, h, w] at `stride` (4): the centre heatmap (C=1, already 0-1), the box size as the log of
height and width in cells (C=2), the centre's offset within its cell as y, x (C=2), and the landmarks (C=10):
for each point y then x, relative to the box's top-left corner, in units of the box's height and width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambda_vision.decoders.base import DetectionDecoder, Detections, FloatArray
from lambda_vision.decoders.boxes import clip_boxes

POINTS = 5


class CenterFaceDecoder(DetectionDecoder):
    """Options: `stride` (default 4). Every detection has class 0 and five keypoints."""

    keypoint_count = POINTS

    def __init__(self, labels: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(labels, options)
        self.stride = int(options.get("stride", 4))

    @classmethod
    def option_names(cls) -> Sequence[str]:
        return ("stride",)

    def decode(
        self, outputs: Sequence[FloatArray], input_size: tuple[int, int], score_threshold: float
    ) -> list[Detections]:
        if len(outputs) != 4:
            raise ValueError(f"CenterFace has 4 outputs (heatmap, scale, offset, landmarks), got {len(outputs)}")
        heatmaps, scales, offsets, landmarks = outputs
        width, height = input_size
        results = []
        for image in range(heatmaps.shape[0]):
            rows, cols = np.nonzero(heatmaps[image, 0] > score_threshold)
            if rows.size == 0:
                results.append(Detections.empty(POINTS))
                continue
            box_h = np.exp(scales[image, 0, rows, cols]) * self.stride
            box_w = np.exp(scales[image, 1, rows, cols]) * self.stride
            centre_y = (rows + offsets[image, 0, rows, cols] + 0.5) * self.stride
            centre_x = (cols + offsets[image, 1, rows, cols] + 0.5) * self.stride
            top, left = centre_y - box_h / 2, centre_x - box_w / 2
            marks = landmarks[image][:, rows, cols].T.reshape(-1, POINTS, 2)  # [cells, point, (y, x)]
            xs = left[:, None] + marks[..., 1] * box_w[:, None]
            ys = top[:, None] + marks[..., 0] * box_h[:, None]
            points = np.stack([xs, ys], axis=2)
            boxes = np.stack([left, top, left + box_w, top + box_h], axis=1).astype(np.float32)
            results.append(
                Detections(
                    clip_boxes(boxes, width, height),
                    heatmaps[image, 0, rows, cols].astype(np.float32),
                    np.zeros(rows.size, np.int64),
                    points.astype(np.float32),
                )
            )
        return results
