"""The CPython 3.13 (Lambda's python3.13) of the build machine, if any: PYTHON313, else python3.13 on PATH.
scripts/compile_bytecode looks for it the same way."""

from __future__ import annotations

import os
import shutil
import subprocess


def find_python313() -> str | None:
    candidate = os.environ.get("PYTHON313") or shutil.which("python3.13")
    if candidate is None:
        return None
    probe = subprocess.run(
        [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return candidate if probe.stdout.strip() == "True" else None
