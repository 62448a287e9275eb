"""The init phase's background loading of the default models: every default model loaded once `wait` returns,
a model that cannot load handed back as its error, anything else raised in the thread that waits."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from init_phase import Preload
from lambda_vision.errors import ErrorCode
from lambda_vision.models import ModelStore
from lambda_vision.registry import ModelRegistry
from lambda_vision.settings import Settings


def store(models_dir: Path, tmp_path: Path) -> ModelStore:
    return ModelStore(ModelRegistry.load(models_dir / "models.toml"), Settings(model_cache_dir=tmp_path))


def test_wait_returns_once_every_default_model_is_loaded(models_dir: Path, tmp_path: Path) -> None:
    models = store(models_dir, tmp_path)
    assert not models.is_loaded("imagenet")

    assert Preload(models).start().wait() is None

    assert models.is_loaded("imagenet")
    assert models.is_loaded("faces")
    assert not models.is_loaded("nsfw")  # not a default: loaded on first use


def test_a_default_model_that_cannot_load_is_handed_back(models_dir: Path, tmp_path: Path) -> None:
    models = store(models_dir, tmp_path)
    specs = dict(models.registry.specs)
    specs["faces"] = dataclasses.replace(specs["faces"], sha256="0" * 64)
    broken = ModelStore(dataclasses.replace(models.registry, specs=specs), models.settings)

    error = Preload(broken).start().wait()

    assert error is not None
    assert error.code is ErrorCode.MODEL_UNAVAILABLE
    assert "faces" in error.message
    assert broken.is_loaded("imagenet")


def test_an_unexpected_failure_is_raised_where_the_init_waits(models_dir: Path, tmp_path: Path) -> None:
    models = store(models_dir, tmp_path)

    def explode(spec: object) -> None:
        raise RuntimeError("a bug")

    models.get = explode  # type: ignore[method-assign,assignment]

    with pytest.raises(RuntimeError, match="a bug"):
        Preload(models).start().wait()


def test_nothing_loads_without_preloading(models_dir: Path, tmp_path: Path) -> None:
    assert Preload(None).start().wait() is None


def test_the_init_ends_with_the_collector_on_and_its_objects_frozen_and_without_pydantic(models_dir: Path) -> None:
    """The collector is paused for the imports only: a function whose init left it off would grow without bound.
    And pydantic, which only the OpenAPI document's generation needs, is not imported at all."""
    probe = (
        "import gc, sys\nimport app\nprint(gc.isenabled(), gc.get_freeze_count() > 10_000, 'pydantic' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    paths = [root / "functions" / "inference", root / "layers" / "core" / "python"]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(path) for path in paths),
        "MODELS_DIR": str(models_dir),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment, check=True)

    assert result.stdout.split() == ["True", "True", "False"]
