"""models.toml: what a valid entry becomes, what an invalid one is told, and which model a route uses."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.registry import (
    ColorOrder,
    Layout,
    ModelConfigError,
    ModelRegistry,
    ModelSpec,
    ResizeMode,
    Task,
    parse_model,
)

SHA = "ab" * 32

MINIMAL: dict[str, Any] = {
    "task": "classification",
    "file": "m.onnx",
    "sha256": SHA,
    "decoder": "softmax",
    "size": [224, 224],
}


def entry(**changes: Any) -> dict[str, Any]:
    """A minimal valid entry with some fields changed; a value of None removes the field."""
    result = {**MINIMAL, **changes}
    return {key: value for key, value in result.items() if value is not None}


def registry(models: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, str] | None = None) -> ModelRegistry:
    config: dict[str, Any] = {"models": models}
    if defaults is not None:
        config["defaults"] = defaults
    return ModelRegistry.from_mapping(config, Path("/models"))


CLASSIFIER = entry()
DETECTOR = entry(task="detection", decoder="yolov8", size=[640, 640])


# --- the shipped models.toml ----------------------------------------------------------------------------------------


def test_the_shipped_registry_declares_five_models_and_photo_defaults(real_registry: ModelRegistry) -> None:
    assert set(real_registry.specs) == {"imagenet", "faces", "orientation", "layout", "nsfw"}
    assert real_registry.defaults == {Task.CLASSIFICATION: "imagenet", Task.DETECTION: "faces"}
    assert real_registry.base_dir.name == "models"


def test_the_shipped_orientation_model_resizes_its_short_side_then_crops(real_registry: ModelRegistry) -> None:
    spec = real_registry.specs["orientation"]
    assert spec.task is Task.CLASSIFICATION
    assert (spec.resize, spec.short_side, spec.size) == (ResizeMode.SHORT_SIDE, 256, (224, 224))
    assert spec.mean == (0.485, 0.456, 0.406)
    assert spec.std == (0.229, 0.224, 0.225)
    assert spec.labels_metadata == "character"
    assert spec.decoder_options == {"probabilities": True}


def test_the_shipped_nsfw_model_is_nhwc_bgr_with_mean_subtraction(real_registry: ModelRegistry) -> None:
    spec = real_registry.specs["nsfw"]
    assert (spec.layout, spec.color_order) == (Layout.NHWC, ColorOrder.BGR)
    assert (spec.resize, spec.resize_size, spec.size) == (ResizeMode.STRETCH, (256, 256), (224, 224))
    assert (spec.scale, spec.mean, spec.std) == (1.0, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0))
    assert spec.labels == ("sfw", "nsfw")


def test_the_shipped_layout_model_is_a_picodet_detector(real_registry: ModelRegistry) -> None:
    spec = real_registry.specs["layout"]
    assert spec.task is Task.DETECTION
    assert spec.size == (608, 800)
    assert spec.decoder == "picodet"
    assert spec.decoder_options == {"strides": [8, 16, 32, 64], "bins": 8}
    assert (spec.score_threshold, spec.iou_threshold, spec.max_detections) == (0.5, 0.5, 100)


def test_describe_gives_the_input_shape_in_the_models_layout(real_registry: ModelRegistry) -> None:
    assert real_registry.specs["orientation"].describe()["input"]["shape"] == [None, 3, 224, 224]
    assert real_registry.specs["nsfw"].describe()["input"]["shape"] == [None, 224, 224, 3]
    assert real_registry.specs["layout"].describe()["input"]["shape"] == [None, 3, 800, 608]
    assert real_registry.specs["orientation"].describe()["defaults"] == {"top_k": 5}
    assert real_registry.specs["layout"].describe()["defaults"] == {"threshold": 0.5, "iou": 0.5, "max_detections": 100}


def test_load_names_a_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"models\.toml not found: run `make models`"):
        ModelRegistry.load(tmp_path / "models.toml")


def test_load_names_an_invalid_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[models.a\n")
    with pytest.raises(ModelConfigError, match=r"models\.toml is not valid TOML"):
        ModelRegistry.load(path)


# --- defaults of an entry -------------------------------------------------------------------------------------------


def test_a_minimal_entry_gets_the_documented_defaults() -> None:
    spec = parse_model("m", MINIMAL)
    assert spec == ModelSpec(
        name="m",
        task=Task.CLASSIFICATION,
        file="m.onnx",
        sha256=SHA,
        version=SHA[:12],
        decoder="softmax",
        size=(224, 224),
        description="",
        input_name=None,
        layout=Layout.NCHW,
        resize=ResizeMode.STRETCH,
        resize_size=None,
        short_side=None,
        pad_value=114,
        color_order=ColorOrder.RGB,
        scale=1.0 / 255.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        labels=None,
        labels_file=None,
        labels_metadata=None,
        decoder_options={},
        top_k=5,
        score_threshold=0.5,
        iou_threshold=0.5,
        max_detections=100,
    )
    assert not spec.is_remote


def test_an_upper_case_sha256_is_accepted_and_kept_in_lower_case() -> None:
    assert parse_model("m", entry(sha256=SHA.upper())).sha256 == SHA


def test_an_s3_file_is_remote() -> None:
    assert parse_model("m", entry(file="s3://bucket/models/m.onnx")).is_remote


def test_integer_mean_and_std_become_floats() -> None:
    spec = parse_model("m", entry(mean=[0, 1, 2], std=[1, 2, 3]))
    assert spec.mean == (0.0, 1.0, 2.0)
    assert spec.std == (1.0, 2.0, 3.0)
    assert all(isinstance(value, float) for value in spec.mean + spec.std)


# --- invalid entries: the message names the model and the field -----------------------------------------------------


@pytest.mark.parametrize("field", ["task", "file", "sha256", "decoder", "size"])
def test_a_missing_required_field_is_named(field: str) -> None:
    with pytest.raises(ModelConfigError, match=rf"^model 'm': {field} is required$"):
        parse_model("m", entry(**{field: None}))


@pytest.mark.parametrize("sha256", ["abc", "g" * 64, SHA + "0", " " + SHA[1:]])
def test_a_sha256_that_is_not_64_hex_digits_is_refused(sha256: str) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': sha256 must be 64 hexadecimal digits$"):
        parse_model("m", entry(sha256=sha256))


@pytest.mark.parametrize("size", [[224], [224, 224, 3], [0, 224], [224, -1], [224.0, 224], "224x224", 224])
def test_a_size_that_is_not_two_positive_integers_is_refused(size: Any) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': size must be \[width, height\] in pixels, got "):
        parse_model("m", entry(size=size))


def test_a_bad_resize_size_is_refused() -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': resize_size must be \[width, height\]"):
        parse_model("m", entry(resize_size=[256]))


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("resize", "crop", "stretch, letterbox, short_side"),
        ("layout", "CHW", "NCHW, NHWC"),
        ("color_order", "RGBA", "RGB, BGR"),
        ("task", "segmentation", "classification, detection"),
    ],
)
def test_an_unknown_choice_lists_the_allowed_values(field: str, value: str, allowed: str) -> None:
    with pytest.raises(ModelConfigError) as raised:
        parse_model("m", entry(**{field: value}))
    assert str(raised.value) == f"model 'm': {field} must be one of {allowed}, got {value!r}"


def test_short_side_resizing_needs_short_side() -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': short_side must be a positive whole number, got None$"):
        parse_model("m", entry(resize="short_side"))


@pytest.mark.parametrize("std", [[0.229, 0, 0.225], [0.0, 1.0, 1.0], [1, 1, 0], [1.0, -0.0, 1.0]])
def test_a_std_containing_zero_is_refused(std: list[float]) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': std must not contain 0$"):
        parse_model("m", entry(std=std))


@pytest.mark.parametrize("mean", [[0.5, 0.5], [0.5, 0.5, "x"], 0.5])
def test_a_mean_that_is_not_three_numbers_is_refused(mean: Any) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': mean must be three numbers \(one per channel\)"):
        parse_model("m", entry(mean=mean))


@pytest.mark.parametrize(
    "sources",
    [
        {"labels": ["a"], "labels_file": "labels.txt"},
        {"labels": ["a"], "labels_metadata": "character"},
        {"labels_file": "labels.txt", "labels_metadata": "character"},
    ],
)
def test_two_label_sources_are_refused(sources: dict[str, Any]) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': give only one of labels, labels_file, labels_metadata$"):
        parse_model("m", entry(**sources))


@pytest.mark.parametrize("labels", ["a,b", [1, 2], ["a", None]])
def test_labels_must_be_a_list_of_strings(labels: Any) -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': labels must be a list of strings$"):
        parse_model("m", entry(labels=labels))


def test_an_unknown_field_is_named_so_a_typo_is_caught() -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': unknown field\(s\) labes, treshold$"):
        parse_model("m", entry(labes=["a"], treshold=0.3))


def test_decoder_options_must_be_a_table() -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'm': decoder_options must be a table$"):
        parse_model("m", entry(decoder_options=[1, 2]))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("score_threshold", 1.5, "score_threshold must be a number from 0 to 1, got 1.5"),
        ("iou_threshold", -0.1, "iou_threshold must be a number from 0 to 1, got -0.1"),
        ("score_threshold", "high", "score_threshold must be a number from 0 to 1, got 'high'"),
        ("top_k", 0, "top_k must be a positive whole number, got 0"),
        ("max_detections", 2.5, "max_detections must be a positive whole number, got 2.5"),
    ],
)
def test_out_of_range_numbers_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ModelConfigError) as raised:
        parse_model("m", entry(**{field: value}))
    assert str(raised.value) == f"model 'm': {message}"


@pytest.mark.parametrize(("field", "value"), [("scale", "1/255"), ("pad_value", "grey")])
def test_a_non_numeric_scale_or_pad_value_names_the_model_and_field(field: str, value: str) -> None:
    with pytest.raises(ModelConfigError, match=rf"^model 'm': {field} "):
        parse_model("m", entry(**{field: value}))


# --- the registry: defaults -----------------------------------------------------------------------------------------


def test_a_registry_without_models_is_refused() -> None:
    with pytest.raises(ModelConfigError, match=r"declares no \[models\.<name>\] entry"):
        ModelRegistry.from_mapping({"defaults": {}}, Path("/models"))


def test_an_invalid_entry_fails_the_whole_registry_and_names_the_model() -> None:
    with pytest.raises(ModelConfigError, match=r"^model 'broken': sha256 must be"):
        registry({"good": CLASSIFIER, "broken": entry(sha256="x")})


def test_without_defaults_the_first_model_of_each_task_is_the_default() -> None:
    reg = registry({"first": CLASSIFIER, "detector": DETECTOR, "second": CLASSIFIER})
    assert reg.defaults == {Task.CLASSIFICATION: "first", Task.DETECTION: "detector"}


def test_declared_defaults_win_over_declaration_order() -> None:
    reg = registry({"first": CLASSIFIER, "second": CLASSIFIER}, defaults={"classification": "second"})
    assert reg.defaults == {Task.CLASSIFICATION: "second"}


def test_a_default_naming_an_undeclared_model_is_refused() -> None:
    with pytest.raises(ModelConfigError) as raised:
        registry({"first": CLASSIFIER}, defaults={"classification": "resnet"})
    assert str(raised.value) == "defaults.classification names 'resnet', which is not declared"


def test_a_default_naming_a_model_of_another_task_is_refused() -> None:
    with pytest.raises(ModelConfigError) as raised:
        registry({"first": CLASSIFIER, "detector": DETECTOR}, defaults={"classification": "detector"})
    assert str(raised.value) == "defaults.classification names 'detector', a detection model"


def test_a_default_for_an_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(ModelConfigError, match=r"segmentation must be one of classification, detection"):
        registry({"first": CLASSIFIER}, defaults={"segmentation": "first"})


# --- for_task: the model a route uses -------------------------------------------------------------------------------


def test_for_task_without_a_name_gives_the_default(real_registry: ModelRegistry) -> None:
    assert real_registry.for_task(Task.CLASSIFICATION, None).name == "imagenet"
    assert real_registry.for_task(Task.DETECTION, None).name == "faces"


def test_for_task_with_a_name_of_that_task_gives_that_model(real_registry: ModelRegistry) -> None:
    assert real_registry.for_task(Task.CLASSIFICATION, "nsfw").name == "nsfw"


@pytest.mark.parametrize(
    ("task", "name", "route"),
    [(Task.DETECTION, "orientation", "/predict"), (Task.CLASSIFICATION, "layout", "/object_detection")],
)
def test_for_task_with_a_model_of_the_other_task_points_to_the_right_route(
    real_registry: ModelRegistry, task: Task, name: str, route: str
) -> None:
    with pytest.raises(ApiError) as raised:
        real_registry.for_task(task, name)
    error = raised.value
    assert (error.status, error.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.WRONG_MODEL_TASK)
    other = "classification" if task is Task.DETECTION else "detection"
    assert error.message == f"Model {name!r} is a {other} model: send it to POST {route}."


def test_for_task_with_an_unknown_name_lists_the_known_models(real_registry: ModelRegistry) -> None:
    with pytest.raises(ApiError) as raised:
        real_registry.for_task(Task.CLASSIFICATION, "resnet50")
    error = raised.value
    assert (error.status, error.code) == (HTTPStatus.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND)
    assert error.message == "No model named 'resnet50'. Models: faces, imagenet, layout, nsfw, orientation."


def test_for_task_when_no_model_of_that_task_is_declared() -> None:
    reg = registry({"only": CLASSIFIER})
    with pytest.raises(ApiError) as raised:
        reg.for_task(Task.DETECTION, None)
    assert (raised.value.status, raised.value.code) == (HTTPStatus.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND)
    assert raised.value.message == "No detection model is configured."
