"""Box geometry shared by the detection decoders."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lambda_vision.decoders.base import Detections, FloatArray


def iou(box: FloatArray, others: FloatArray) -> FloatArray:
    """Intersection over union of one box [4] with each of others [N, 4] (x1, y1, x2, y2)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    other_areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + other_areas - intersection
    result: FloatArray = np.where(union > 0, intersection / np.maximum(union, 1e-9), 0.0).astype(np.float32)
    return result


def non_max_suppression(
    boxes: FloatArray, scores: FloatArray, iou_threshold: float, limit: int | None = None
) -> npt.NDArray[np.int64]:
    """Indices of the boxes kept, best score first: a box is dropped when it overlaps a kept one by more than
    iou_threshold."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(detections: Detections, iou_threshold: float, max_detections: int) -> Detections:
    """Per-class non-maximum suppression: boxes of different classes never suppress each other."""
    if detections.boxes.shape[0] == 0:
        return detections
    # Shift each class to its own region of the plane, so one NMS pass keeps classes apart.
    span = float(detections.boxes.max()) + 1.0
    shifted = detections.boxes + (detections.class_ids.astype(np.float32) * span)[:, None]
    keep = non_max_suppression(shifted, detections.scores, iou_threshold, max_detections)
    return detections.take(keep)


def clip_boxes(boxes: FloatArray, width: int, height: int) -> FloatArray:
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return boxes


def above_threshold(
    scores: FloatArray, threshold: float
) -> tuple[npt.NDArray[np.intp], FloatArray, npt.NDArray[np.int64]]:
    """Rows of `scores` [N, classes] whose best class scores above the threshold: their indices, best score
    and class. (A row-wise max over a short axis is slow in numpy; a flat comparison finds the few rows.)"""
    flat = np.flatnonzero(scores > threshold)
    rows = np.unique(flat // scores.shape[1])
    candidates = scores[rows]
    return rows, candidates.max(axis=1), candidates.argmax(axis=1).astype(np.int64)
