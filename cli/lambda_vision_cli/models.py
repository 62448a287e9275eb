"""`lambda-vision models list | describe | check | add`: the model registry (models.toml in MODELS_DIR)."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lambda_vision.checksums import sha256_of
from lambda_vision.errors import ApiError
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.inputs import ImageInput
from lambda_vision.models import ModelStore
from lambda_vision.pipeline import DetectionParameters, ImageResult, Pipeline
from lambda_vision.registry import ModelConfigError, ModelRegistry, ModelSpec, Task, parse_model
from lambda_vision_cli import graph
from lambda_vision_cli.predict import load_store
from lambda_vision_cli.project import UsageError, settings


def list_command() -> int:
    store = load_store(settings())
    registry = store.registry
    defaults = {name: task.value for task, name in registry.defaults.items()}
    rows = [("NAME", "TASK", "DEFAULT", "VERSION", "FILE")]
    rows += [
        (spec.name, spec.task.value, defaults.get(spec.name, ""), spec.version, spec.file)
        for spec in registry.specs.values()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    return 0


def describe_command(name: str) -> int:
    store = load_store(settings())
    if name not in store.registry.specs:
        raise UsageError(f"no model named {name!r}; models: {', '.join(sorted(store.registry.specs))}")
    try:
        loaded = store.get(store.registry.specs[name])
    except ApiError as error:
        raise UsageError(error.message) from None
    print(json.dumps(loaded.describe(), indent=2))
    return 0


def synthetic_image(width: int = 320, height: int = 240) -> bytes:
    """A gradient with a bright square: enough structure for any network to run on."""
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 255 // (width + height)], axis=-1)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def prove(store: ModelStore, spec: ModelSpec) -> ImageResult:
    """Load the model and answer one synthetic image through the function's pipeline."""
    loaded = store.get(spec)
    pipeline = Pipeline(UrlFetcher(FetchPolicy.from_settings(store.settings)), store.settings.max_image_pixels)
    image = [ImageInput(index=0, source="synthetic.png", data=synthetic_image())]
    if spec.task is Task.CLASSIFICATION:
        result = pipeline.classify(loaded, image, min(3, spec.top_k))[0]
    else:
        parameters = DetectionParameters(spec.score_threshold, spec.iou_threshold, spec.max_detections)
        result = pipeline.detect(loaded, image, parameters)[0]
    if result.error is not None:
        raise ModelConfigError(f"the synthetic image failed: {result.error.message}")
    return result


def check_command() -> int:
    """One line per problem (and per model checked); exit 1 when any."""
    config = settings()
    try:
        raw = tomllib.loads(config.models_config_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read {config.models_config_path}: {error}") from None
    problems = 0
    entries: Mapping[str, Any] = raw.get("models", {})
    try:
        registry = ModelRegistry.from_mapping(raw, config.models_config_path.parent)
    except ModelConfigError as error:
        print(f"models.toml: {error}")
        return 1
    store = ModelStore(registry, config)
    for name, spec in registry.specs.items():
        found = _problems(store, spec, entries.get(name, {}))
        problems += len(found)
        for problem in found:
            print(f"{name}: {problem}")
        if not found:
            print(f"{name}: ok ({spec.task.value}, {spec.decoder}, {spec.file})")
    print(f"{len(registry.specs)} models, {problems} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def _problems(store: ModelStore, spec: ModelSpec, entry: Mapping[str, Any]) -> list[str]:
    if spec.is_remote:
        return []  # an s3:// model is checked where it is loaded, against its sha256
    path = store.registry.base_dir / spec.file
    if not path.is_file():
        return [f"file {spec.file} is missing from {store.registry.base_dir}"]
    digest = sha256_of(path)
    if digest != spec.sha256:
        return [f"{spec.file} has sha256 {digest}, models.toml says {spec.sha256}"]
    try:
        session = graph.open_session(path)
        info = graph.inspect(session)
    except graph.GraphError as error:
        return [str(error)]
    found = []
    if spec.input_name and spec.input_name != info.input_name:
        found.append(f"input_name {spec.input_name!r}, but the graph's image input is {info.input_name!r}")
    if spec.layout.value != info.layout:
        found.append(f"layout {spec.layout.value}, but the graph's input {list(info.input_shape)} is {info.layout}")
    if info.fixed_size is not None and info.fixed_size != spec.size:
        found.append(
            f"size {list(spec.size)}, but the graph's input is fixed at {list(info.fixed_size)} (width, height)"
        )
    try:
        outputs = graph.blank_run(session, info, spec.size)
        recognised = graph.recognise(path, info, [o.shape for o in outputs], outputs, spec.size)
    except graph.GraphError as error:
        found.append(str(error))
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors share no base class
        found.append(f"the graph does not run at size {list(spec.size)}: {error}")
    else:
        if recognised.decoder != spec.decoder:
            found.append(
                f"decoder {spec.decoder!r}, but the outputs look like {recognised.decoder} ({recognised.evidence})"
            )
    if found:
        return found
    try:
        prove(store, spec)
    except (ApiError, ModelConfigError, ValueError) as error:
        found.append(f"does not answer an image: {getattr(error, 'message', error)}")
    return found


@dataclass(frozen=True)
class AddOptions:
    file: Path
    name: str
    task: str | None
    labels: Path | None
    size: tuple[int, int] | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    scale: float | None
    color_order: str | None
    resize: str | None
    description: str
    make_default: bool


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def entry_text(name: str, entry: Mapping[str, Any]) -> str:
    lines = [f"[models.{name}]"] + [f"{key} = {toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _set_default(text: str, task: str, name: str) -> str:
    """Points [defaults] <task> at the model, keeping the rest of the file as written."""
    lines = text.splitlines(keepends=True)
    in_defaults = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            if in_defaults:
                lines.insert(number, f"{task} = {json.dumps(name)}\n")
                return "".join(lines)
            in_defaults = stripped == "[defaults]"
        elif in_defaults and stripped.split("=", 1)[0].strip() == task:
            lines[number] = f"{task} = {json.dumps(name)}\n"
            return "".join(lines)
    if in_defaults:
        return "".join(lines) + f"{task} = {json.dumps(name)}\n"
    return f"[defaults]\n{task} = {json.dumps(name)}\n\n" + "".join(lines)


def add_command(options: AddOptions) -> int:
    config = settings()
    models_toml = config.models_config_path
    if not options.name.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"--name {options.name!r}: use letters, digits, - and _")
    if not options.file.is_file():
        raise UsageError(f"{options.file} does not exist")
    original = models_toml.read_text() if models_toml.is_file() else ""
    if options.name in (tomllib.loads(original).get("models", {}) if original else {}):
        raise UsageError(f"models.toml already has a model {options.name!r}: remove its entry first")
    draft = draft_entry(options)
    result = place_and_prove(options, draft, models_toml, original)
    report(options, draft, models_toml, result)
    return 0


@dataclass(frozen=True)
class Draft:
    """An entry guessed from the graph, with what was found and what was guessed."""

    entry: dict[str, Any]
    info: graph.GraphInfo
    recognised: graph.Recognised
    output_shapes: list[tuple[int, ...]]
    labels_note: str
    labels_file_text: str | None
    guesses: list[str]


def draft_entry(options: AddOptions) -> Draft:
    session = graph.open_session(options.file)
    info = graph.inspect(session)
    guesses: list[str] = []
    size = options.size or info.fixed_size
    if size is None:
        size = graph.DEFAULT_SIZES[options.task or "classification"]
        guesses.append(f"the input size is dynamic: {size[0]}x{size[1]} chosen (--size WIDTH HEIGHT to change)")
    try:
        outputs = graph.blank_run(session, info, size)
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors share no base class
        raise UsageError(f"the graph does not run on a {size[0]}x{size[1]} input: {error}") from None
    shapes = [output.shape for output in outputs]
    recognised = graph.recognise(options.file, info, shapes, outputs, size)
    if options.task is not None and options.task != recognised.task:
        found = f"{recognised.decoder} ({recognised.task})"
        raise UsageError(f"--task {options.task}, but the outputs are those of {found}")
    entry: dict[str, Any] = {"task": recognised.task}
    if options.description:
        entry["description"] = options.description
    entry.update(
        {
            "version": options.file.stem,
            "file": f"{options.name}.onnx",
            "sha256": sha256_of(options.file),
            "input_name": info.input_name,
            "layout": info.layout,
            "size": list(size),
            "resize": options.resize or ("stretch" if recognised.task == "detection" else "short_side"),
        }
    )
    if entry["resize"] == "short_side":
        entry["short_side"] = round(min(size) * 256 / 224)
    entry["color_order"] = options.color_order or "RGB"
    entry["scale"] = options.scale if options.scale is not None else 1 / 255
    entry["mean"] = list(options.mean or (0.0, 0.0, 0.0))
    entry["std"] = list(options.std or (1.0, 1.0, 1.0))
    labels_note, labels_file_text = _labels(options, info, recognised, entry)
    entry["decoder"] = recognised.decoder
    if recognised.options:
        entry["decoder_options"] = dict(recognised.options)
    parse_model(options.name, entry)  # an entry the registry accepts
    return Draft(entry, info, recognised, shapes, labels_note, labels_file_text, guesses)


def place_and_prove(options: AddOptions, draft: Draft, models_toml: Path, original: str) -> ImageResult:
    """Copies the file, writes the entry (and labels), loads the model and answers a synthetic image; on failure
    everything is put back as it was."""
    models_dir = models_toml.parent
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / str(draft.entry["file"])
    placed = not target.exists()
    if options.file.resolve() != target.resolve():
        shutil.copyfile(options.file, target)
    labels_path = models_dir / str(draft.entry["labels_file"]) if draft.labels_file_text is not None else None
    if labels_path is not None and draft.labels_file_text is not None:
        labels_path.write_text(draft.labels_file_text)
    separator = "\n" if original and not original.endswith("\n\n") else ""
    text = original + separator + entry_text(options.name, draft.entry)
    if options.make_default:
        text = _set_default(text, draft.recognised.task, options.name)
    models_toml.write_text(text)
    try:
        store = ModelStore(ModelRegistry.load(models_toml), settings())
        return prove(store, store.registry.specs[options.name])
    except (ApiError, ModelConfigError, ValueError) as error:
        models_toml.write_text(original)
        if placed:
            target.unlink(missing_ok=True)
        if labels_path is not None:
            labels_path.unlink(missing_ok=True)
        raise UsageError(f"the model was not added: {getattr(error, 'message', error)}") from None


def report(options: AddOptions, draft: Draft, models_toml: Path, result: ImageResult) -> None:
    info, recognised, entry = draft.info, draft.recognised, draft.entry
    batching = "yes" if info.dynamic_batch else "no"
    print(f"added {options.name} to {models_toml}: {recognised.task}, decoder {recognised.decoder}")
    print(f"  file {models_toml.parent / str(entry['file'])} (sha256 {entry['sha256']})")
    print(f"  input {info.input_name} {list(info.input_shape)}: {info.layout}, batching {batching}")
    print(f"  outputs: {info.describe_outputs(draft.output_shapes)}")
    print(f"  recognised as {recognised.decoder}: {recognised.evidence}")
    print(f"  labels: {draft.labels_note}")
    for guess in draft.guesses:
        print(f"  guessed: {guess}")
    if not (options.mean or options.std or options.scale is not None):
        print(
            "  only you know the normalisation: written as 0-1 input (scale 1/255, mean 0, std 1), RGB."
            " If the network was trained otherwise (e.g. ImageNet mean [0.485, 0.456, 0.406], std"
            " [0.229, 0.224, 0.225], or BGR), edit the entry or pass --mean/--std/--scale/--color-order."
        )
    answer = result.to_json()
    shown = {key: answer[key] for key in ("predictions", "detections") if key in answer}
    print(f"  proof: a synthetic {answer['width']}x{answer['height']} image answered {json.dumps(shown)[:300]}")


def _labels(
    options: AddOptions, info: graph.GraphInfo, recognised: graph.Recognised, entry: dict[str, Any]
) -> tuple[str, str | None]:
    """Fills the entry's label source; (what was found, the text of a labels file to write)."""
    if options.labels is not None:
        names = [line.strip() for line in options.labels.read_text().splitlines() if line.strip()]
        if len(names) != recognised.classes:
            raise UsageError(f"{options.labels} has {len(names)} labels; the model has {recognised.classes} classes")
        entry["labels_file"] = f"{options.name}.labels.txt"
        return f"{len(names)} from {options.labels}", "\n".join(names) + "\n"
    found = graph.find_labels(info.metadata, recognised.classes)
    if found is None:
        keys = ", ".join(sorted(info.metadata)) or "none"
        return f"none found (metadata keys: {keys}): class indices are answered; give --labels FILE", None
    key, names = found
    if "\n" in info.metadata[key]:
        entry["labels_metadata"] = key
    else:
        entry["labels_file"] = f"{options.name}.labels.txt"
        return f"{len(names)} from the ONNX metadata key {key!r} (written to a labels file)", "\n".join(names) + "\n"
    return f"{len(names)} from the ONNX metadata key {key!r}", None
