"""`lambda-vision invoke`: the template's function on one event, in the same Lambda runtime worker as the local
API (samlocal), printing the proxy response; `sam local invoke -e` without Docker."""

from __future__ import annotations

import sys
from pathlib import Path

from lambda_vision_cli.project import template_path
from samlocal.cli import main as samlocal_main


def invoke_command(event: str, function: str | None, env_vars: Path | None, template: Path | None) -> int:
    arguments = ["invoke", "--template", str(template_path(template)), "--event", event]
    if function:
        arguments.append(function)
    if env_vars is not None:
        arguments += ["--env-vars", str(env_vars)]
    status = samlocal_main(arguments)
    sys.stdout.flush()
    return status
