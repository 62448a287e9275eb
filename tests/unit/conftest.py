"""Fixtures shared by the unit tests: the models folder that `make models` fills, and its registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambda_vision.registry import ModelRegistry

MODELS_DIR = Path(__file__).resolve().parents[2] / "layers" / "models" / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """layers/models/models, holding models.toml and the fetched .onnx files."""
    missing = [name for name in ("orientation.onnx", "layout.onnx") if not (MODELS_DIR / name).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not fetched: run `make models`")
    return MODELS_DIR


@pytest.fixture(scope="session")
def real_registry() -> ModelRegistry:
    """The registry the function ships with (needs no model file)."""
    return ModelRegistry.load(MODELS_DIR / "models.toml")
