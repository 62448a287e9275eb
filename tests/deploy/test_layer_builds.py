"""`sam build` for arm64 and x86_64 on this host, without Docker: each build holds the target's binaries for
CPython 3.13, nothing a function does not import, fits the size budget, and builds identically twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from budget import Budget, measure, table, tree_digest
from python313 import find_python313

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = ("arm64", "x86_64")
FIXED_MTIME = 315532800  # 1980-01-01, the earliest time a zip archive can hold

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=ARCHITECTURES)
def build(request: pytest.FixtureRequest) -> Path:
    architecture: str = request.param
    # Nothing to do when `make test` has built it already (the budget check does).
    subprocess.run(["make", "-s", "--no-print-directory", "build", f"ARCH={architecture}"], cwd=ROOT, check=True)
    return ROOT / ".aws-sam" / f"build-{architecture}"


@pytest.fixture(scope="module")
def budget(build: Path) -> Budget:
    return measure(build)


def test_function_and_layers_fit_with_room_for_user_models(budget: Budget) -> None:
    print(table(budget))
    assert budget.problems() == []


def test_the_dependencies_are_the_targets_binaries_for_python_3_13(build: Path) -> None:
    site = build / "DependenciesLayer/python"
    extensions = [path.name for path in site.rglob("*.cpython-*.so")]
    assert extensions
    triplet = "aarch64-linux-gnu" if build.name.endswith("arm64") else "x86_64-linux-gnu"
    assert all(name.endswith(f".cpython-313-{triplet}.so") for name in extensions), extensions
    for package in ("onnxruntime", "numpy", "PIL", "aws_lambda_powertools", "requests_toolbelt"):
        assert (site / package / "__init__.py").exists(), package
    assert not (site / "boto3").exists()
    assert not (site / "pydantic").exists()  # only the OpenAPI document's generation uses it
    assert not (site / "cv2").exists()


def test_the_layers_hold_nothing_a_function_does_not_import(build: Path) -> None:
    leftovers = [
        path.relative_to(build).as_posix()
        for path in build.rglob("*")
        if path.name in {"tests", "RECORD", "INSTALLER"} or (path.suffix == ".pyc" and ".cpython-313." not in path.name)
    ]
    assert leftovers == []
    assert not (build / "DependenciesLayer/python/bin").exists()
    assert not (build / "DependenciesLayer/python/onnxruntime/quantization").exists()
    assert (build / "DependenciesLayer/python/onnxruntime/capi").is_dir()


def test_the_bytecode_is_lambdas_python_3_13s_for_every_module_or_none_without_one(build: Path) -> None:
    """Bytecode comes from a CPython 3.13 on the build machine (python3.13 on PATH or PYTHON313); without one
    the build ships sources only, never the build machine's own bytecode."""
    sources = list(build.rglob("*.py"))
    compiled = [path for path in sources if (path.parent / "__pycache__" / f"{path.stem}.cpython-313.pyc").is_file()]
    if find_python313() is None:
        assert compiled == []
    else:
        assert compiled == sources
        app = (build / "InferenceFunction/__pycache__/app.cpython-313.pyc").read_bytes()
        assert int.from_bytes(app[4:8], "little") == 0b01  # hash-based, unchecked: fixed timestamps do not matter
        assert b"/var/task/app.py" in app  # tracebacks name the file where Lambda runs it


def test_the_function_is_its_own_module_and_the_library_is_the_core_layer(build: Path) -> None:
    function = sorted(path.name for path in (build / "InferenceFunction").iterdir() if path.name != "__pycache__")
    sources = sorted(
        path.name
        for path in (ROOT / "functions/inference").glob("*.py")
        if not path.name.startswith("test_") and path.name != "conftest.py"
    )
    assert function == sorted([*sources, "static"])
    assert "app.py" in function
    page = build / "InferenceFunction/static/index.html"
    assert page.read_bytes() == (ROOT / "functions/inference/static/index.html").read_bytes()

    def modules(root: Path) -> set[str]:
        return {path.relative_to(root).as_posix() for path in root.rglob("*") if "__pycache__" not in path.parts}

    library = ROOT / "layers/core/python/lambda_vision"
    assert modules(build / "CoreLayer/python/lambda_vision") == modules(library)


def test_the_models_layer_serves_the_registry_and_its_models_from_opt_models(build: Path) -> None:
    models = build / "ModelsLayer/models"
    assert (models / "models.toml").read_text() == (ROOT / "layers/models/models/models.toml").read_text()
    for name in ("orientation.onnx", "layout.onnx", "nsfw.onnx"):
        assert (models / name).stat().st_size > 1_000_000, name
    assert not list(models.glob(".*"))


def test_timestamps_are_fixed(build: Path) -> None:
    for layer in ("DependenciesLayer", "CoreLayer", "ModelsLayer", "InferenceFunction"):
        times = {path.lstat().st_mtime for path in (build / layer).rglob("*")}
        assert times == {FIXED_MTIME}, layer


def test_the_dependencies_layer_builds_the_same_bytes_again(build: Path, tmp_path: Path) -> None:
    architecture = build.name.removeprefix("build-")
    subprocess.run(
        ["make", "-s", "-f", str(ROOT / "layers/dependencies/Makefile"), "build-DependenciesLayer",
         f"ARTIFACTS_DIR={tmp_path}", f"ARCHITECTURE={architecture}"],
        cwd=tmp_path, check=True, stdout=sys.stderr,
    )  # fmt: skip
    assert tree_digest(tmp_path / "python") == tree_digest(build / "DependenciesLayer/python")
