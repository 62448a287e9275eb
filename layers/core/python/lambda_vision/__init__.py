"""lambda_vision: image classification and object detection with ONNX Runtime on AWS Lambda."""

__version__ = "0.1.0"
