"""Where the command finds the project: the models directory, the settings and the template.

`MODELS_DIR` is honoured as in the function; without it, the models layer's source folder of the project the
command runs in (`layers/models/models` under the working directory, else under this checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

from lambda_vision.settings import Settings

CHECKOUT = Path(__file__).resolve().parents[2]
MODELS_SUBDIR = Path("layers") / "models" / "models"


class UsageError(Exception):
    """The command line asks for something that cannot be done; exit status 2 with this message."""


def models_dir() -> Path:
    configured = os.environ.get("MODELS_DIR")
    if configured:
        return Path(configured)
    for root in (Path.cwd(), CHECKOUT):
        if (root / MODELS_SUBDIR / "models.toml").is_file():
            return root / MODELS_SUBDIR
    return Path.cwd() / MODELS_SUBDIR


def settings() -> Settings:
    """The function's settings from the environment, with the models directory resolved as above."""
    return Settings.from_env({**os.environ, "MODELS_DIR": str(models_dir())})


def template_path(given: Path | None) -> Path:
    if given is not None:
        return given
    for root in (Path.cwd(), CHECKOUT):
        if (root / "template.yaml").is_file():
            return root / "template.yaml"
    raise UsageError("no template.yaml in the working directory: give --template")
