"""What decoders produce, and the two kinds of decoder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from lambda_vision.registry import Task

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Classification:
    label: str
    score: float


@dataclass(frozen=True)
class Detections:
    """Detections of one image: boxes [N, 4] (x1, y1, x2, y2 in network-input pixels), scores [N], class ids [N],
    and for models with landmarks, keypoints [N, K, 2] (x, y in network-input pixels)."""

    boxes: FloatArray
    scores: FloatArray
    class_ids: npt.NDArray[np.int64]
    keypoints: FloatArray | None = None

    @classmethod
    def empty(cls, keypoints: int = 0) -> Detections:
        points = np.zeros((0, keypoints, 2), np.float32) if keypoints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), points)

    def take(self, indices: npt.NDArray[np.int64]) -> Detections:
        points = None if self.keypoints is None else self.keypoints[indices]
        return Detections(self.boxes[indices], self.scores[indices], self.class_ids[indices], points)


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]
    keypoints: tuple[tuple[float, float], ...] = ()  # x, y in original pixels, in the model's keypoint order


class Decoder(ABC):
    task: ClassVar[Task]

    def __init__(self, labels: Sequence[str], options: Mapping[str, Any]) -> None:
        self.labels = tuple(labels)
        unknown = set(options) - set(self.option_names())
        if unknown:
            raise ValueError(f"{type(self).__name__} does not take option(s) {', '.join(sorted(unknown))}")

    @classmethod
    def option_names(cls) -> Sequence[str]:
        return ()

    def label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)


class ClassificationDecoder(Decoder):
    task = Task.CLASSIFICATION

    @abstractmethod
    def decode(self, outputs: Sequence[FloatArray], top_k: int) -> list[list[Classification]]:
        """One list of the top_k classes, best first, per image of the batch."""


class DetectionDecoder(Decoder):
    task = Task.DETECTION
    keypoint_count: ClassVar[int] = 0  # points per detection (landmarks), in Detections.keypoints

    @abstractmethod
    def decode(
        self, outputs: Sequence[FloatArray], input_size: tuple[int, int], score_threshold: float
    ) -> list[Detections]:
        """Candidate detections above the threshold per image of the batch, before non-maximum suppression."""
