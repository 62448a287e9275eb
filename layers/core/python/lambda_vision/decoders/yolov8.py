"""YOLOv8-format heads (Ultralytics export): [N, 4 + classes, anchors] with cx, cy, w, h in input pixels
followed by per-class scores (no objectness). Exports transposed to [N, anchors, 4 + classes] are read too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambda_vision.decoders.base import DetectionDecoder, Detections, FloatArray
from lambda_vision.decoders.boxes import above_threshold, clip_boxes


class YoloV8Decoder(DetectionDecoder):
    """Options: `output` (index, default 0)."""

    def __init__(self, labels: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(labels, options)
        self.output = int(options.get("output", 0))

    @classmethod
    def option_names(cls) -> Sequence[str]:
        return ("output",)

    def _channels_last(self, prediction: FloatArray) -> FloatArray:
        """[N, 4 + C, A] -> [N, A, 4 + C]; the channel axis is the one that matches the label count."""
        channels = 4 + len(self.labels)
        if prediction.shape[1] == channels and prediction.shape[2] != channels:
            return prediction.transpose(0, 2, 1)
        if prediction.shape[2] == channels:
            return prediction
        if not self.labels:  # no labels to tell the axes apart: anchors outnumber channels
            return prediction.transpose(0, 2, 1) if prediction.shape[1] < prediction.shape[2] else prediction
        raise ValueError(f"YOLOv8 output of shape {prediction.shape} does not match {len(self.labels)} labels")

    def decode(
        self, outputs: Sequence[FloatArray], input_size: tuple[int, int], score_threshold: float
    ) -> list[Detections]:
        prediction = self._channels_last(np.asarray(outputs[self.output], dtype=np.float32))
        width, height = input_size
        results = []
        for rows in prediction:
            keep, best, class_ids = above_threshold(rows[:, 4:], score_threshold)
            if keep.size == 0:
                results.append(Detections.empty())
                continue
            cx, cy, w, h = (rows[keep, i] for i in range(4))
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
            results.append(Detections(clip_boxes(boxes, width, height), best.astype(np.float32), class_ids))
        return results
