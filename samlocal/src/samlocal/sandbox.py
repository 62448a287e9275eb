"""What a local execution environment sees instead of /var/task and /opt.

- The code directory (CodeUri) is the task root and the working directory.
- Each layer's content directory (ContentUri) is laid out as its /opt content; the layers of a function
  are merged into one directory of symbolic links (later layers win, as in Lambda), its "opt" directory.
- /opt cannot be used on a development machine, so every environment variable whose value is `/opt` or
  starts with `/opt/` is rewritten to the function's opt directory: `MODELS_DIR=/opt/models` becomes
  `<opt>/models`.
- PYTHONPATH is the code directory, then each layer's `python/` directory. A layer built by pip from a
  requirements.txt at deploy time is skipped: its packages come from the emulator's virtual environment,
  whose interpreter runs the workers.
- Variables: the standard Lambda ones, then Globals and the function's (already merged in the template),
  then `--env-vars` (`Parameters` for every function, then the function's own, by logical id or name).
  Unlike `sam local`, `--env-vars` may add variables the template does not declare.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from samlocal.intrinsics import REGION
from samlocal.template import Function, Layer

_SKIPPED_LAYER_ENTRIES = frozenset({"Makefile", "requirements.txt", "__pycache__"})
# Passed through from the developer's shell so a function can reach real AWS services or local stand-ins.
_PASSED_THROUGH = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HOME",
    "TMPDIR",
)


class EnvVarsError(Exception):
    """The --env-vars file is not in SAM's format."""


def read_env_vars(path: Path | None) -> dict[str, dict[str, str]]:
    """SAM's --env-vars JSON: {"Parameters": {...for all...}, "<FunctionLogicalIdOrName>": {...}}."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EnvVarsError(f"cannot read --env-vars {path}: {error}") from error
    if not isinstance(document, dict) or not all(isinstance(value, dict) for value in document.values()):
        raise EnvVarsError(f'--env-vars {path}: expected {{"Parameters": {{...}}, "<Function>": {{...}}}}')
    return {str(scope): {str(k): _text(v) for k, v in values.items()} for scope, values in document.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def build_opt_dir(layers: tuple[Layer, ...], into: Path) -> Path:
    """A directory laid out as the function's /opt: each layer's entries, linked; later layers win."""
    into.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        _link_tree(layer.content_dir, into, skip_python=layer.provides_requirements, top=True)
    return into


def _link_tree(source: Path, target: Path, *, skip_python: bool, top: bool) -> None:
    for entry in sorted(source.iterdir()):
        if top and (entry.name in _SKIPPED_LAYER_ENTRIES or (skip_python and entry.name == "python")):
            continue
        destination = target / entry.name
        if destination.is_symlink() and destination.resolve().is_dir() and entry.is_dir():
            # Two layers share a directory: replace the link by a real directory merging both.
            previous = destination.resolve()
            destination.unlink()
            destination.mkdir()
            _link_tree(previous, destination, skip_python=False, top=False)
            _link_tree(entry, destination, skip_python=False, top=False)
        elif destination.is_dir() and not destination.is_symlink() and entry.is_dir():
            _link_tree(entry, destination, skip_python=False, top=False)
        else:
            if destination.is_symlink() or destination.exists():
                destination.unlink()
            destination.symlink_to(entry)


def rewrite_opt(value: str, opt_dir: Path) -> str:
    if value == "/opt" or value.startswith("/opt/"):
        return str(opt_dir) + value[len("/opt") :]
    return value


def python_path(function: Function) -> list[str]:
    return [str(function.code_dir)] + [
        str(layer.python_dir)
        for layer in function.layers
        if not layer.provides_requirements and layer.python_dir.is_dir()
    ]


def worker_environment(
    function: Function,
    opt_dir: Path,
    runtime_api: str,
    env_vars: Mapping[str, Mapping[str, str]],
    log_stream: str,
) -> dict[str, str]:
    """Every variable an execution environment of `function` starts with."""
    variables: dict[str, str] = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    variables.update(function.environment)
    variables.update(env_vars.get("Parameters", {}))
    variables.update(env_vars.get(function.name, {}))
    variables.update(env_vars.get(function.logical_id, {}))
    variables = {name: rewrite_opt(value, opt_dir) for name, value in variables.items()}
    region = variables.get("AWS_REGION") or variables.get("AWS_DEFAULT_REGION") or REGION
    interpreter_dir = str(Path(sys.executable).parent)
    # Reserved variables: Lambda sets these itself and a template cannot override them.
    variables.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_SAM_LOCAL": "true",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).resolve().parent.parent),
            "_HANDLER": function.handler,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": os.pathsep.join([interpreter_dir, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]),
            "PYTHONPATH": os.pathsep.join(python_path(function)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return variables


class OptDirs:
    """The opt directories of the functions served, removed when the emulator stops."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="samlocal-opt-"))

    def build(self, function: Function) -> Path:
        target = self.root / function.logical_id
        if target.exists():
            shutil.rmtree(target)
        return build_opt_dir(function.layers, target)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
