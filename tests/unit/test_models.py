"""The model store: sessions load on first use, once, from the models folder or from S3, checksums verified."""

from __future__ import annotations

import hashlib
import io
import threading
import tomllib
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import onnxruntime as ort
import pytest
from moto import mock_aws
from PIL import Image, ImageDraw, ImageFont

from lambda_vision.checksums import sha256_of
from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.fetch import FetchPolicy, UrlFetcher
from lambda_vision.inputs import ImageInput
from lambda_vision.models import LoadedModel, ModelStore
from lambda_vision.pipeline import Pipeline
from lambda_vision.registry import ModelRegistry, Task
from lambda_vision.settings import Settings

BUCKET = "lambda-vision-models"
KEY = "models/orientation.onnx"
ORIENTATION_SHA256 = "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2"
WRONG_SHA256 = "0" * 64


def orientation_entry(models_dir: Path, **changes: Any) -> dict[str, Any]:
    """The orientation model's entry in the shipped models.toml, with some fields changed (None removes one)."""
    entry: dict[str, Any] = tomllib.loads((models_dir / "models.toml").read_text())["models"]["orientation"]
    entry = {**entry, **changes}
    return {key: value for key, value in entry.items() if value is not None}


def store_for(entry: dict[str, Any], base_dir: Path, cache_dir: Path) -> ModelStore:
    registry = ModelRegistry.from_mapping({"models": {"orientation": entry}}, base_dir)
    return ModelStore(registry, Settings(model_cache_dir=cache_dir))


def load_error(store: ModelStore) -> ApiError:
    with pytest.raises(ApiError) as raised:
        store.get_for_task(Task.CLASSIFICATION, "orientation")
    assert (raised.value.status, raised.value.code) == (HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.MODEL_UNAVAILABLE)
    assert raised.value.message.startswith("Model 'orientation' could not be loaded: ")
    return raised.value


@pytest.fixture
def shipped_store(models_dir: Path, tmp_path: Path) -> ModelStore:
    """A store for the shipped registry, as a new container has it: nothing loaded."""
    return ModelStore(ModelRegistry.load(models_dir / "models.toml"), Settings(model_cache_dir=tmp_path))


@pytest.fixture(scope="module")
def orientation(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The shipped orientation model, loaded once for the tests that only read it."""
    registry = ModelRegistry.load(models_dir / "models.toml")
    store = ModelStore(registry, Settings(model_cache_dir=tmp_path_factory.mktemp("cache")))
    return store.get_for_task(Task.CLASSIFICATION, "orientation")


# --- the shipped orientation model ----------------------------------------------------------------------------------


def test_the_shipped_model_file_has_the_declared_checksum(models_dir: Path) -> None:
    assert sha256_of(models_dir / "orientation.onnx") == ORIENTATION_SHA256


def test_a_model_loads_on_first_use_and_is_reused(shipped_store: ModelStore) -> None:
    assert not shipped_store.is_loaded("orientation")
    first = shipped_store.get_for_task(Task.CLASSIFICATION, "orientation")
    assert first.spec.name == "orientation"
    assert shipped_store.is_loaded("orientation")
    assert not shipped_store.is_loaded("layout")  # only what was asked for
    assert not shipped_store.is_loaded("imagenet")
    assert shipped_store.get_for_task(Task.CLASSIFICATION, "orientation") is first
    assert shipped_store.get(first.spec) is first


@pytest.mark.parametrize(("environment", "spinning"), [({}, "0"), ({"INFERENCE_SPINNING": "true"}, "1")])
def test_idle_inference_threads_sleep_unless_spinning_is_asked_for(
    models_dir: Path, tmp_path: Path, environment: dict[str, str], spinning: str
) -> None:
    settings = Settings.from_env({"MODEL_CACHE_DIR": str(tmp_path), **environment})
    store = ModelStore(ModelRegistry.load(models_dir / "models.toml"), settings)
    session = store.get_for_task(Task.CLASSIFICATION, "orientation").session
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning


def test_concurrent_first_uses_load_the_model_once(shipped_store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    real_session = ort.InferenceSession

    def counting_session(path: str, *args: Any, **kwargs: Any) -> ort.InferenceSession:
        created.append(path)
        return real_session(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting_session)  # as the store sees it
    spec = shipped_store.registry.specs["orientation"]
    start = threading.Barrier(8)
    loaded: list[LoadedModel] = []

    def first_use() -> None:
        start.wait()
        loaded.append(shipped_store.get(spec))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 8
    assert all(model is loaded[0] for model in loaded)
    assert len(created) == 1


def test_labels_come_from_the_onnx_metadata(orientation: LoadedModel) -> None:
    assert orientation.labels == ("0", "90", "180", "270")


def test_describe_adds_what_only_the_loaded_graph_knows(orientation: LoadedModel) -> None:
    description = orientation.describe()
    assert description["input"]["name"] == "x"
    assert description["input"]["shape"] == [None, 3, 224, 224]
    assert description["labels"] == ["0", "90", "180", "270"]
    assert description["batching"] is True


def test_the_orientation_model_runs_a_batch_and_gives_probabilities(orientation: LoadedModel) -> None:
    model = orientation
    assert model.dynamic_batch
    tensors = [np.zeros((3, 224, 224), np.float32), np.ones((3, 224, 224), np.float32)]
    outputs = model.run(tensors)
    assert len(outputs) == 2
    for [scores] in outputs:
        assert scores.shape == (1, 4)
        assert float(scores.sum()) == pytest.approx(1.0, abs=1e-5)  # the graph ends with a softmax
    assert model.run([]) == []


def text_page() -> Image.Image:
    """A letter-size page of printed lines, rendered with Pillow's own font."""
    page = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=22)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "while", "reading", "a", "page"]
    for line in range(30):
        shift = line * 3 % len(words)
        draw.text((60, 60 + line * 32), " ".join(words[shift:] + words[:shift])[:60], fill="black", font=font)
    return page


def test_the_orientation_model_tells_how_far_a_page_was_turned(orientation: LoadedModel) -> None:
    """Pillow turns counter-clockwise: a page turned 90 degrees that way reads 270."""
    inputs: list[ImageInput] = []
    for turned in (0, 90, 180, 270):
        buffer = io.BytesIO()
        text_page().rotate(turned, expand=True).save(buffer, "PNG")
        inputs.append(ImageInput(index=len(inputs), source=f"page-{turned}.png", data=buffer.getvalue()))
    unused = UrlFetcher(FetchPolicy(connect_timeout=1.0, read_timeout=1.0, max_bytes=1, max_redirects=0))
    results = Pipeline(unused, max_image_pixels=10_000_000).classify(orientation, inputs, top_k=1)
    best = [(r.input.source, r.classifications[0].label) for r in results if r.classifications]
    assert best == [("page-0.png", "0"), ("page-90.png", "270"), ("page-180.png", "180"), ("page-270.png", "90")]
    assert all(r.classifications and r.classifications[0].score > 0.8 for r in results)


def test_the_layout_model_has_a_fixed_batch_of_one(shipped_store: ModelStore) -> None:
    model = shipped_store.get_for_task(Task.DETECTION, "layout")
    assert not model.dynamic_batch
    assert len(model.labels) == 10
    assert model.labels[:2] == ("text", "title")


# --- a model that cannot be loaded answers 503 and names what is wrong ----------------------------------------------


def test_a_wrong_checksum_names_the_file_and_both_checksums(models_dir: Path, tmp_path: Path) -> None:
    store = store_for(orientation_entry(models_dir, sha256=WRONG_SHA256), models_dir, tmp_path)
    error = load_error(store)
    assert error.message.endswith(f"orientation.onnx has sha256 {ORIENTATION_SHA256}, expected {WRONG_SHA256}")
    assert not store.is_loaded("orientation")


def test_a_missing_file_is_named(models_dir: Path, tmp_path: Path) -> None:
    error = load_error(store_for(orientation_entry(models_dir, file="missing.onnx"), models_dir, tmp_path))
    assert f"{models_dir / 'missing.onnx'} does not exist (run `make models`?)" in error.message


def test_a_failed_load_is_retried_on_the_next_request(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "orientation.onnx").symlink_to(models_dir / "orientation.onnx")
    store = store_for(orientation_entry(models_dir, file="late.onnx"), tmp_path, tmp_path / "cache")
    load_error(store)
    (tmp_path / "late.onnx").write_bytes((models_dir / "orientation.onnx").read_bytes())
    assert store.get_for_task(Task.CLASSIFICATION, "orientation").labels == ("0", "90", "180", "270")


def test_a_file_that_is_not_an_onnx_graph_answers_503(models_dir: Path, tmp_path: Path) -> None:
    data = b"<html>404 Not Found</html>"
    (tmp_path / "orientation.onnx").write_bytes(data)
    entry = orientation_entry(models_dir, sha256=hashlib.sha256(data).hexdigest())
    load_error(store_for(entry, tmp_path, tmp_path / "cache"))


def test_a_missing_metadata_label_key_is_named(models_dir: Path, tmp_path: Path) -> None:
    error = load_error(store_for(orientation_entry(models_dir, labels_metadata="classes"), models_dir, tmp_path))
    assert error.message.endswith("no metadata key 'classes' in the graph")


def test_an_input_name_the_graph_does_not_have_is_named(models_dir: Path, tmp_path: Path) -> None:
    error = load_error(store_for(orientation_entry(models_dir, input_name="image"), models_dir, tmp_path))
    assert error.message.endswith("the graph has no input 'image' (['x'])")


def test_a_decoder_for_another_task_is_refused(models_dir: Path, tmp_path: Path) -> None:
    error = load_error(
        store_for(orientation_entry(models_dir, decoder="yolov8", decoder_options=None), models_dir, tmp_path)
    )
    assert error.message.endswith("decoder 'yolov8' is for detection models")


def test_an_unknown_decoder_is_named(models_dir: Path, tmp_path: Path) -> None:
    error = load_error(store_for(orientation_entry(models_dir, decoder="resnet"), models_dir, tmp_path))
    assert "unknown decoder 'resnet'" in error.message


def test_labels_from_a_file_beside_the_model_skip_blank_lines(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "orientation.onnx").symlink_to(models_dir / "orientation.onnx")
    (tmp_path / "labels.txt").write_text("upright\n\n right \nupside down\nleft\n\n")
    entry = orientation_entry(models_dir, labels_metadata=None, labels_file="labels.txt")
    model = store_for(entry, tmp_path, tmp_path / "cache").get_for_task(Task.CLASSIFICATION, None)
    assert model.labels == ("upright", "right", "upside down", "left")


# --- models in S3 ---------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_model(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The orientation model uploaded to a mocked S3 bucket; yields its s3:// URI."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=(models_dir / "orientation.onnx").read_bytes())
        yield f"s3://{BUCKET}/{KEY}"


def test_an_s3_model_is_downloaded_verified_and_cached(models_dir: Path, tmp_path: Path, s3_model: str) -> None:
    cache = tmp_path / "cache"
    entry = orientation_entry(models_dir, file=s3_model)
    model = store_for(entry, tmp_path, cache).get_for_task(Task.CLASSIFICATION, None)
    assert model.labels == ("0", "90", "180", "270")
    assert sorted(path.name for path in cache.iterdir()) == [f"{ORIENTATION_SHA256}.onnx"]
    assert sha256_of(cache / f"{ORIENTATION_SHA256}.onnx") == ORIENTATION_SHA256

    # A new container with the same /tmp: the cached copy is used, S3 is not asked again.
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=KEY)
    again = store_for(entry, tmp_path, cache).get_for_task(Task.CLASSIFICATION, None)
    assert again.labels == ("0", "90", "180", "270")


def test_a_cached_copy_with_a_wrong_checksum_is_downloaded_again(
    models_dir: Path, tmp_path: Path, s3_model: str
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{ORIENTATION_SHA256}.onnx").write_bytes(b"half a model")
    store_for(orientation_entry(models_dir, file=s3_model), tmp_path, cache).get_for_task(Task.CLASSIFICATION, None)
    assert sha256_of(cache / f"{ORIENTATION_SHA256}.onnx") == ORIENTATION_SHA256


def test_an_s3_model_with_a_wrong_checksum_fails_and_leaves_nothing_behind(
    models_dir: Path, tmp_path: Path, s3_model: str
) -> None:
    cache = tmp_path / "cache"
    error = load_error(store_for(orientation_entry(models_dir, file=s3_model, sha256=WRONG_SHA256), tmp_path, cache))
    assert error.message.endswith(f"{s3_model} has sha256 {ORIENTATION_SHA256}, expected {WRONG_SHA256}")
    assert list(cache.iterdir()) == []


def test_a_missing_s3_object_answers_503(models_dir: Path, tmp_path: Path, s3_model: str) -> None:
    entry = orientation_entry(models_dir, file=f"s3://{BUCKET}/models/missing.onnx")
    error = load_error(store_for(entry, tmp_path, tmp_path / "cache"))
    assert f"s3://{BUCKET}/models/missing.onnx" in error.message
