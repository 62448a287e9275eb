"""SAM CLI's configuration file (samconfig.toml, .yaml or .yml), read as `sam` reads it.

Values of a command come from `[<env>.<command>.parameters]`, then `[<env>.global.parameters]`; the
environment is `--config-env` (default `default`). Keys are option names with underscores (`port = 3001`,
`parameter_overrides = "Stage=dev Size=2"`, `warm_containers = "EAGER"`). Without `--config-file`, the file
is `samconfig.toml` (or `.yaml`, `.yml`) in the working directory, then beside the template, if any.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ENV = "default"
DEFAULT_NAMES = ("samconfig.toml", "samconfig.yaml", "samconfig.yml")


class ConfigError(Exception):
    """The configuration file cannot be read, or the environment it names is missing."""


def find_config(config_file: Path | None, search: tuple[Path, ...]) -> Path | None:
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config-file {config_file} does not exist")
        return config_file
    for folder in search:
        for name in DEFAULT_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def load_config(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        document: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    if not isinstance(document, Mapping):
        raise ConfigError(f"{path} is not a SAM configuration file")
    return document


def read_config(
    config_file: Path | None,
    config_env: str | None,
    command: str,
    template: Path | None = None,
) -> dict[str, Any]:
    """The options of `command` (e.g. `local_start_api`) in the configuration, by argument name."""
    search = (Path.cwd(),) + ((template.resolve().parent,) if template is not None else ())
    path = find_config(config_file, search)
    if path is None:
        if config_env not in (None, DEFAULT_ENV):
            raise ConfigError(f"--config-env {config_env}: no samconfig.toml found")
        return {}
    document = load_config(path)
    env_name = config_env or DEFAULT_ENV
    environment = document.get(env_name)
    if environment is None:
        if config_env is not None:
            raise ConfigError(f"{path} has no environment {env_name!r}")
        return {}
    if not isinstance(environment, Mapping):
        raise ConfigError(f"{path}: [{env_name}] is not a table")
    values: dict[str, Any] = {}
    for section in ("global", command):
        table = environment.get(section) or {}
        parameters = table.get("parameters") if isinstance(table, Mapping) else None
        if isinstance(parameters, Mapping):
            values.update({str(key).replace("-", "_"): value for key, value in parameters.items()})
    return values
