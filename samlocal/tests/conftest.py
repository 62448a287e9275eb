"""Fixtures: the test API served by `python -m samlocal` on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from samlocal.testing import LocalApi

TEMPLATES = Path(__file__).resolve().parent / "templates"

ENV_VARS = {
    "Parameters": {"FROM_ENV_VARS": "everyone", "GREETING": "overridden for every function"},
    "EchoFunction": {"GREETING": "overridden for EchoFunction", "DATA_ROOT": "/opt"},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    log = tmp_path_factory.mktemp("samlocal") / "console.log"
    local_api = LocalApi(TEMPLATES / "api.yaml", log, env_vars=ENV_VARS)
    try:
        yield local_api
    finally:
        local_api.close()
