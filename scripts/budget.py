"""Size budget of a `sam build`: what the function and its layers weigh unzipped, against Lambda's limit.

Lambda refuses a function whose code and layers, unzipped, exceed 250 MiB (262,144,000 bytes). This project
promises to leave at least 40 MiB of that for the user's own models, on arm64 and on x86_64. For each function
of each build directory (held to the limit with the layers it uses) this prints the size of every layer and,
inside them, of every package and model, then checks:

- the whole (function + layers) fits under the limit;
- what the project ships (dependencies, library, function, the default models) leaves the reserve free;
- every shared object was built for the architecture of the build (a layer built for the wrong CPU would
  fail at import time, on AWS only).

    python scripts/budget.py .aws-sam/build-arm64 .aws-sam/build-x86_64 [--markdown]

The architecture of a build is read from its directory name (build-arm64, build-x86_64) or --architecture.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MIB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes: Lambda's "250 MB", as its API enforces it
USER_MODELS_RESERVE = 40 * MIB
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # e_machine: EM_AARCH64, EM_X86_64
ELF_MAGIC = b"\x7fELF"


@dataclass
class Item:
    name: str
    size: int
    shipped: bool = True  # False: a model of the user's, not part of the project's own footprint


@dataclass
class Artifact:
    logical_id: str
    kind: str  # "function" or "layer"
    path: Path
    items: list[Item] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def shipped_size(self) -> int:
        return sum(item.size for item in self.items if item.shipped)


@dataclass
class Budget:
    architecture: str
    build_dir: Path
    artifacts: list[Artifact]
    foreign_objects: list[str]

    @property
    def total(self) -> int:
        return sum(artifact.size for artifact in self.artifacts)

    @property
    def shipped(self) -> int:
        return sum(artifact.shipped_size for artifact in self.artifacts)

    @property
    def user_models(self) -> int:
        return self.total - self.shipped

    @property
    def left(self) -> int:
        return LAMBDA_UNZIPPED_LIMIT - self.total

    @property
    def left_for_user_models(self) -> int:
        return LAMBDA_UNZIPPED_LIMIT - self.shipped

    def problems(self) -> list[str]:
        found = []
        if self.total > LAMBDA_UNZIPPED_LIMIT:
            found.append(
                f"function + layers weigh {mib(self.total)} MiB unzipped, over Lambda's {mib(LAMBDA_UNZIPPED_LIMIT)}"
            )
        if self.left_for_user_models < USER_MODELS_RESERVE:
            found.append(
                f"the project's own files leave {mib(self.left_for_user_models)} MiB for user models,"
                f" less than the {mib(USER_MODELS_RESERVE)} MiB promised"
            )
        if self.foreign_objects:
            shown = ", ".join(self.foreign_objects[:5])
            found.append(
                f"{len(self.foreign_objects)} shared objects are not {self.architecture} ({shown}): build with"
                f" ARCHITECTURE={self.architecture} sam build --parameter-overrides Architecture={self.architecture}"
            )
        return found


def mib(size: int) -> str:
    return f"{size / MIB:.1f}"


def files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in files(path))


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path, mode and content: equal digests, identical artifacts."""
    digest = hashlib.sha256()
    for path in files(root):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_mode:o}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def elf_machine(path: Path) -> int | None:
    with path.open("rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or not header.startswith(ELF_MAGIC):
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def foreign_objects(root: Path, architecture: str) -> list[str]:
    expected = ELF_MACHINES[architecture]
    return [
        path.relative_to(root).as_posix()
        for path in files(root)
        if (machine := elf_machine(path)) is not None and machine != expected
    ]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def python_packages(site: Path) -> list[Item]:
    """Size per distribution of a pip --target directory (its dist-info, modules and bundled .libs)."""
    distributions: dict[str, str] = {}  # top-level name -> "name version"
    owner_of_entry: dict[str, str] = {}
    for info in sorted(site.glob("*.dist-info")):
        metadata = email.parser.Parser().parsestr((info / "METADATA").read_text(errors="replace"), headersonly=True)
        label = f"{metadata['Name']} {metadata['Version']}"
        owner_of_entry[info.name] = label
        names = {_normalize(str(metadata["Name"]))}
        top_level = info / "top_level.txt"
        if top_level.exists():
            names.update(_normalize(line) for line in top_level.read_text().split() if line)
        for name in names:
            distributions.setdefault(name, label)
    sizes: dict[str, int] = {}
    for entry in sorted(site.iterdir()):
        label = owner_of_entry.get(entry.name) or _owner(entry, distributions) or entry.name
        sizes[label] = sizes.get(label, 0) + tree_size(entry)
    return [Item(name, size) for name, size in sorted(sizes.items(), key=lambda pair: (-pair[1], pair[0]))]


def _owner(entry: Path, distributions: dict[str, str]) -> str | None:
    stem = entry.name.removesuffix(".py").removesuffix(".libs")
    stem = stem.split(".", 1)[0] if entry.is_file() else stem
    if (label := distributions.get(_normalize(stem))) is not None:
        return label
    # A namespace package (google/protobuf): the distribution named like one of its sub-packages.
    if entry.is_dir() and not (entry / "__init__.py").exists():
        for child in sorted(entry.iterdir()):
            if (label := distributions.get(_normalize(child.name))) is not None:
                return label
    return None


def model_files(models_dir: Path) -> list[Item]:
    """Size per model of the models layer; models without a `source` in models.toml are the user's own."""
    config: dict[str, Any] = {}
    if (models_dir / "models.toml").exists():
        config = tomllib.loads((models_dir / "models.toml").read_text())
    named: dict[str, tuple[str, bool]] = {}
    for name, entry in config.get("models", {}).items():
        shipped = "source" in entry
        for key in ("file", "labels_file"):
            if isinstance(entry.get(key), str):
                named[entry[key]] = (f"{name} ({entry[key]})", shipped)
    items = []
    for path in files(models_dir):
        relative = path.relative_to(models_dir).as_posix()
        label, shipped = named.get(relative, (relative, relative == "models.toml"))
        items.append(Item(label, path.stat().st_size, shipped))
    return sorted(items, key=lambda item: (-item.size, item.name))


class _TemplateLoader(yaml.SafeLoader):
    """Reads a CloudFormation template, short-form intrinsics (!Ref, !Sub...) included."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """`!Sub x` as `{"Fn::Sub": x}`, `!GetAtt a.b` as `{"Fn::GetAtt": ["a", "b"]}`: the long forms."""
    name = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        return {name: value.split(".", 1) if suffix == "GetAtt" else value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=_TemplateLoader)
    return template


def functions_of(build_dir: Path) -> list[str]:
    resources = load_template(build_dir / "template.yaml")["Resources"]
    return [name for name, resource in resources.items() if resource["Type"] == "AWS::Serverless::Function"]


def artifacts(build_dir: Path, function: str) -> list[Artifact]:
    """A function of the built template and the layers it uses, in the order Lambda stacks them."""
    resources = load_template(build_dir / "template.yaml")["Resources"]
    properties = resources[function]["Properties"]
    found = [Artifact(function, "function", build_dir / properties["CodeUri"])]
    layers = [layer["Ref"] for layer in properties.get("Layers", []) if isinstance(layer, dict) and "Ref" in layer]
    found.extend(Artifact(layer, "layer", build_dir / resources[layer]["Properties"]["ContentUri"]) for layer in layers)
    for artifact in found:
        for entry in sorted(artifact.path.iterdir()):
            if entry.name == "python" and artifact.kind == "layer" and any(entry.glob("*.dist-info")):
                artifact.items.extend(python_packages(entry))
            elif entry.name == "models" and entry.is_dir():
                artifact.items.extend(model_files(entry))
            else:
                artifact.items.append(Item(entry.name, tree_size(entry)))
    return found


def architecture_of(build_dir: Path) -> str:
    for architecture in ELF_MACHINES:
        if build_dir.name.endswith(architecture):
            return architecture
    raise SystemExit(f"{build_dir}: cannot tell the architecture from the name, give --architecture")


def measure(build_dir: Path, architecture: str | None = None, function: str | None = None) -> Budget:
    """The budget of one function (the template's first when not named): its code and its layers."""
    if not (build_dir / "template.yaml").exists():
        raise SystemExit(f"{build_dir}/template.yaml not found: run `make build` first")
    architecture = architecture or architecture_of(build_dir)
    function = function or functions_of(build_dir)[0]
    return Budget(architecture, build_dir, artifacts(build_dir, function), foreign_objects(build_dir, architecture))


def measure_all(build_dir: Path, architecture: str | None = None) -> list[Budget]:
    """Every function of the build is held to the limit on its own (each with the layers it uses)."""
    if not (build_dir / "template.yaml").exists():
        raise SystemExit(f"{build_dir}/template.yaml not found: run `make build` first")
    return [measure(build_dir, architecture, function) for function in functions_of(build_dir)]


def table(budget: Budget, markdown: bool = False) -> str:
    rows: list[tuple[str, str]] = []
    for artifact in budget.artifacts:
        rows.append((f"{artifact.logical_id} ({artifact.kind})", mib(artifact.size)))
        if len(artifact.items) > 1:
            rows.extend(
                (f"  {item.name}{'' if item.shipped else ' [yours]'}", mib(item.size)) for item in artifact.items
            )
    totals = [
        ("function + layers, unzipped", mib(budget.total)),
        ("Lambda limit", mib(LAMBDA_UNZIPPED_LIMIT)),
        ("left", mib(budget.left)),
        ("left for your models (limit - shipped)", mib(budget.left_for_user_models)),
        ("promised to your models", mib(USER_MODELS_RESERVE)),
    ]
    title = f"{budget.artifacts[0].logical_id}, linux/{budget.architecture} ({budget.build_dir})"
    if markdown:
        lines = [f"| {title} | MiB |", "|---|---:|"]
        lines += [f"| {name.replace('  ', '&nbsp;&nbsp;', 1)} | {size} |" for name, size in rows]
        lines += [f"| **{name}** | **{size}** |" for name, size in totals]
        return "\n".join(lines)
    width = max(len(name) for name, _ in rows + totals) + 2
    lines = [title, f"{'':<{width}}{'MiB':>8}"]
    lines += [f"{name:<{width}}{size:>8}" for name, size in rows]
    lines.append("-" * (width + 8))
    lines += [f"{name:<{width}}{size:>8}" for name, size in totals]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dirs", nargs="+", type=Path)
    parser.add_argument("--architecture", choices=sorted(ELF_MACHINES))
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    args = parser.parse_args()
    failures = []
    for build_dir in args.build_dirs:
        for budget in measure_all(build_dir, args.architecture):
            print(table(budget, args.markdown))
            problems = budget.problems()
            print("\n".join(f"FAIL {problem}" for problem in problems) or "OK", end="\n\n")
            failures += problems
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
