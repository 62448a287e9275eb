"""Fixtures shared by the unit tests: the models folder that `make models` fills, its registry, and moto's
server as the AWS endpoint."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

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


@pytest.fixture
def aws_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1, every boto3 client created meanwhile pointed at it (the batch
    worker reads images with GETs of its own, which only a real endpoint answers); an empty account each time."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto's backends live in this process: reset what an earlier test left.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    settings = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        yield endpoint
    finally:
        server.stop()
