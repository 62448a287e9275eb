"""Classifier outputs [N, classes]: logits or probabilities -> the top-k labels with their scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lambda_vision.decoders.base import Classification, ClassificationDecoder, FloatArray


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=-1, keepdims=True)
    return result


class SoftmaxDecoder(ClassificationDecoder):
    """Options: `probabilities` (true when the graph already ends with a softmax), `output` (index, default 0)."""

    def __init__(self, labels: Sequence[str], options: Mapping[str, Any]) -> None:
        super().__init__(labels, options)
        self.probabilities = bool(options.get("probabilities", False))
        self.output = int(options.get("output", 0))

    @classmethod
    def option_names(cls) -> Sequence[str]:
        return ("probabilities", "output")

    def decode(self, outputs: Sequence[FloatArray], top_k: int) -> list[list[Classification]]:
        scores = np.asarray(outputs[self.output], dtype=np.float32)
        scores = scores.reshape(scores.shape[0], -1)
        if not self.probabilities:
            scores = softmax(scores)
        k = min(top_k, scores.shape[1])
        # argsort is stable on the negated scores: ties keep the label order
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [
            [Classification(self.label(int(c)), float(row[c])) for c in top]
            for row, top in zip(scores, order, strict=True)
        ]
