"""`lambda-vision openapi`: the API's OpenAPI document, as the app describes it (swagger.yaml is generated
from it by scripts/generate_swagger.py, which adds the API Gateway extensions)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from lambda_vision_cli.project import UsageError, models_dir, template_path
from samlocal.template import read_stack

FUNCTION = "InferenceFunction"


def openapi_document(template: Path | None) -> dict[str, Any]:
    """Imports the inference function's handler module as the function would, without loading any model."""
    stack = read_stack(template_path(template))
    function = stack.functions.get(FUNCTION)
    if function is None:
        raise UsageError(f"the template has no {FUNCTION}")
    os.environ["PRELOAD_MODELS"] = "false"
    os.environ.setdefault("MODELS_DIR", str(models_dir()))
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    paths = [str(function.code_dir)] + [str(layer.python_dir) for layer in function.layers if layer.python_dir.is_dir()]
    sys.path[:0] = [path for path in paths if path not in sys.path]
    module = importlib.import_module(function.handler.rsplit(".", 1)[0])
    document: dict[str, Any] = module.openapi_schema()
    return document


def openapi_command(template: Path | None) -> int:
    print(json.dumps(openapi_document(template), indent=2))
    return 0
