"""`sam package` of the arm64 build uploads every artifact, against a local moto S3 server.

This is as far as deployment can be proven offline: moto's CloudFormation does not apply the SAM transform,
so a "deployed" stack there would prove nothing; tests/e2e check a real deployed stack.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from budget import load_template, measure

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "lambda-vision-artifacts"
PREFIX = "lambda-vision"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def aws_env(s3_endpoint: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SAM_CLI_TELEMETRY="0",
    )
    return env


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def packaged(aws_env: dict[str, str], s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    subprocess.run(["make", "-s", "--no-print-directory", "build", "ARCH=arm64", "sam-cli"], cwd=ROOT, check=True)
    output = tmp_path_factory.mktemp("package") / "packaged.yaml"
    subprocess.run(
        [str(ROOT / ".venv-sam/bin/sam"), "package", "--template-file", ".aws-sam/build-arm64/template.yaml",
         "--s3-bucket", BUCKET, "--s3-prefix", PREFIX, "--output-template-file", str(output), "--no-progressbar"],
        cwd=ROOT, env=aws_env, check=True, stdout=sys.stderr,
    )  # fmt: skip
    return load_template(output)


def s3_key(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    assert bucket == BUCKET
    assert key.startswith(f"{PREFIX}/")
    return key


def uploaded_zip(s3: Any, uri: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=s3_key(uri))["Body"].read()))


def test_every_artifact_is_uploaded_and_referenced_by_s3_uri(packaged: dict[str, Any], s3: Any) -> None:
    resources = packaged["Resources"]
    uris = [resources["InferenceFunction"]["Properties"]["CodeUri"]]
    uris += [
        resources[layer]["Properties"]["ContentUri"] for layer in ("DependenciesLayer", "CoreLayer", "ModelsLayer")
    ]
    include = resources["InferenceApi"]["Properties"]["DefinitionBody"]["Fn::Transform"]
    assert include["Name"] == "AWS::Include"
    uris.append(include["Parameters"]["Location"])
    assert all(isinstance(uri, str) and uri.startswith(f"s3://{BUCKET}/") for uri in uris), uris
    listed = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]}
    assert {s3_key(uri) for uri in uris} <= listed
    assert len(set(uris)) == 5


def test_the_uploaded_swagger_is_the_projects(packaged: dict[str, Any], s3: Any) -> None:
    include = packaged["Resources"]["InferenceApi"]["Properties"]["DefinitionBody"]["Fn::Transform"]
    uploaded = s3.get_object(Bucket=BUCKET, Key=s3_key(include["Parameters"]["Location"]))["Body"].read()
    assert uploaded.decode() == (ROOT / "swagger.yaml").read_text()


def test_the_archives_unzip_to_what_the_budget_measured(packaged: dict[str, Any], s3: Any) -> None:
    budget = {artifact.logical_id: artifact.size for artifact in measure(ROOT / ".aws-sam/build-arm64").artifacts}
    for name, resource in packaged["Resources"].items():
        uri = resource["Properties"].get("CodeUri") or resource["Properties"].get("ContentUri")
        if isinstance(uri, str) and name in budget:
            archive = uploaded_zip(s3, uri)
            assert sum(info.file_size for info in archive.infolist()) == budget[name], name
    layer = uploaded_zip(s3, packaged["Resources"]["DependenciesLayer"]["Properties"]["ContentUri"])
    assert "python/onnxruntime/__init__.py" in layer.namelist()
    models = uploaded_zip(s3, packaged["Resources"]["ModelsLayer"]["Properties"]["ContentUri"])
    assert "models/models.toml" in models.namelist()
    function = uploaded_zip(s3, packaged["Resources"]["InferenceFunction"]["Properties"]["CodeUri"])
    assert "app.py" in function.namelist()
