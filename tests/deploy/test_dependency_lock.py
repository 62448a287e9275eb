"""The dependencies layer's lock pins exactly the runtime group of pyproject.toml, every file by its hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "layers/dependencies/requirements.txt"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement of the lock."""
    requirements: dict[str, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    for line in text.splitlines():
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        requirement, *options = content.split()
        name, separator, version = requirement.partition("==")
        assert separator, f"not pinned: {requirement}"
        hashes = [option.removeprefix("--hash=sha256:") for option in options if option.startswith("--hash=sha256:")]
        requirements[normalize(name)] = (version, hashes)
    return requirements


def runtime_group() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {}
    for requirement in pyproject["dependency-groups"]["runtime"]:
        name, separator, version = requirement.partition("==")
        assert separator, f"the runtime group pins exact versions: {requirement}"
        pins[normalize(name)] = version
    return pins


def test_the_lock_pins_the_versions_of_the_runtime_group() -> None:
    lock = locked()
    for name, version in runtime_group().items():
        assert name in lock, f"{name} is missing from the lock: run `make lock`"
        assert lock[name][0] == version, f"{name}: pyproject {version}, lock {lock[name][0]}: run `make lock`"


def test_every_locked_file_is_known_by_its_hash() -> None:
    for name, (_, hashes) in locked().items():
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in hashes), name


def test_the_lambda_runtime_provides_boto3_so_the_layer_does_not() -> None:
    assert not {"boto3", "botocore", "s3transfer"} & set(locked())


def test_the_lock_says_how_to_regenerate_it() -> None:
    assert "make lock" in LOCK.read_text().splitlines()[1]
