"""Shared fixtures: API Gateway events from events/ and a Lambda context."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support import LambdaContext, load_event


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    return load_event
