"""SnapStart runtime hooks: the snapshot is taken with every default model loaded and warmed by one inference,
and each environment restored from it re-seeds its random generators. The hooks are called directly, and
through awslambdaric's own hook runner (what the Lambda runtime runs around the snapshot)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

import app

ROOT = Path(__file__).resolve().parents[2]


def test_before_snapshot_loads_and_warms_every_default_model() -> None:
    warmed = app.before_snapshot()

    models = app.model_store()
    assert set(warmed) == set(models.registry.defaults.values()) == {"imagenet", "faces"}
    assert all(models.is_loaded(name) for name in warmed)
    # The classifier answers its top-k labels (5 of 1000); the detector ran (a synthetic image holds no face).
    assert warmed["imagenet"] == 5
    assert warmed["faces"] >= 0


def test_after_restore_gives_each_restored_environment_its_own_random_draws() -> None:
    python_state, numpy_state = random.getstate(), np.random.get_state()

    def draws_after_restoring(reseed: bool) -> tuple[float, float]:
        random.setstate(python_state)  # every environment restored from one snapshot has this memory
        np.random.set_state(numpy_state)
        if reseed:
            app.after_restore()
        return random.random(), float(np.random.random())

    assert draws_after_restoring(reseed=False) == draws_after_restoring(reseed=False)
    first, second = draws_after_restoring(reseed=True), draws_after_restoring(reseed=True)
    assert first[0] != second[0]
    assert first[1] != second[1]


RUN_HOOKS = """
import json, random, sys
sys.path[:0] = {path!r}
import app
from awslambdaric import lambda_runtime_hooks_runner

before = {{name: app.model_store().is_loaded(name) for name in app.model_store().registry.defaults.values()}}
lambda_runtime_hooks_runner.run_before_snapshot()
after = {{name: app.model_store().is_loaded(name) for name in app.model_store().registry.defaults.values()}}
state = random.getstate()
lambda_runtime_hooks_runner.run_after_restore()
print(json.dumps({{"before": before, "after": after, "reseeded": random.getstate() != state}}))
"""


def test_the_lambda_runtime_runs_the_hooks_registered_by_the_function() -> None:
    # PRELOAD_MODELS=false: only the before-snapshot hook can have loaded the models.
    env = {**os.environ, "PRELOAD_MODELS": "false", "POWERTOOLS_LOG_LEVEL": "INFO"}
    env["MODELS_DIR"] = str(ROOT / "layers" / "models" / "models")
    path = [str(ROOT / "layers" / "core" / "python"), str(ROOT / "functions" / "inference")]
    result = subprocess.run(
        [sys.executable, "-c", RUN_HOOKS.format(path=path)], capture_output=True, text=True, check=True, env=env
    )
    lines = result.stdout.strip().splitlines()
    outcome = json.loads(lines[-1])
    assert outcome == {
        "before": {"imagenet": False, "faces": False},
        "after": {"imagenet": True, "faces": True},
        "reseeded": True,
    }
    logged = [json.loads(line) for line in lines[:-1] if line.startswith("{")]
    messages = [line["message"] for line in logged]
    assert "snapshot ready" in messages
    assert "restored from snapshot" in messages
    (ready,) = [line for line in logged if line["message"] == "snapshot ready"]
    assert ready["warmed"]["imagenet"] == 5
