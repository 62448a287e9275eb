"""Output decoders: one per model output format. A new format is a new decoder registered here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lambda_vision.decoders.base import Classification, ClassificationDecoder, Detection, DetectionDecoder
from lambda_vision.decoders.centerface import CenterFaceDecoder
from lambda_vision.decoders.classification import SoftmaxDecoder
from lambda_vision.decoders.picodet import PicoDetDecoder
from lambda_vision.decoders.yolov8 import YoloV8Decoder

DECODERS: Mapping[str, type[ClassificationDecoder] | type[DetectionDecoder]] = {
    "softmax": SoftmaxDecoder,
    "picodet": PicoDetDecoder,
    "yolov8": YoloV8Decoder,
    "centerface": CenterFaceDecoder,
}


def create_decoder(
    name: str, labels: Sequence[str], options: Mapping[str, Any]
) -> ClassificationDecoder | DetectionDecoder:
    try:
        decoder_class = DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown decoder {name!r}; known decoders: {', '.join(sorted(DECODERS))}") from None
    return decoder_class(labels, options)


__all__ = [
    "DECODERS",
    "Classification",
    "ClassificationDecoder",
    "Detection",
    "DetectionDecoder",
    "create_decoder",
]
