"""`lambda-vision` as a user runs it: a subprocess, its output lines and its exit status."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sample_images import encode, photo_image, rotated_page
from support import EVENTS_DIR, MODELS_DIR, ROOT, serve_directory

COMMAND = Path(sys.executable).parent / "lambda-vision"


def run(
    *arguments: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "MODELS_DIR"}
    return subprocess.run(
        [str(COMMAND), *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environment, **(env or {})},
        input=stdin,
        timeout=240,
        check=False,
    )


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mixed folder: pages in nested folders, a corrupt JPEG, a text file and a hidden file."""
    folder = tmp_path_factory.mktemp("pages")
    (folder / "a").mkdir()
    (folder / "a" / "upright.png").write_bytes(rotated_page(0))
    (folder / "b").mkdir()
    (folder / "b" / "turned.jpg").write_bytes(rotated_page(90, "JPEG"))
    (folder / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(rotated_page(180))
    return folder


class TestPredict:
    def test_a_mixed_folder_answers_each_image_in_order_and_fails_with_status_1(self, pages: Path) -> None:
        completed = run("predict", str(pages), str(pages / "missing.png"), "--model", "orientation", "--top-k", "1")
        assert completed.returncode == 1, completed.stderr
        results = lines(completed.stdout)
        assert [Path(str(result["source"])).name for result in results] == [
            "upright.png",
            "broken.jpg",
            "turned.jpg",
            "missing.png",
        ]
        assert [result["index"] for result in results] == [0, 1, 2, 3]
        upright, broken, turned, missing = results
        assert upright["status"] == "ok" and upright["predictions"][0]["label"] == "0"  # type: ignore[index]
        assert turned["status"] == "ok" and turned["predictions"][0]["label"] == "270"  # type: ignore[index]
        assert (upright["width"], upright["height"]) == (800, 1100)
        assert broken["error"]["code"] == "image_undecodable"  # type: ignore[index]
        assert missing["error"]["code"] == "image_undecodable"  # type: ignore[index]
        assert "cannot be read" in missing["error"]["message"]  # type: ignore[index]
        assert "4 images, 2 answered, 2 failed; model orientation" in completed.stderr

    def test_every_image_answered_is_status_0_and_csv_when_the_output_ends_in_csv(
        self, pages: Path, tmp_path: Path
    ) -> None:
        output = tmp_path / "results.csv"
        completed = run(
            "predict", str(pages / "a"), str(pages / "b" / "turned.jpg"), "--model", "orientation", "-o", str(output)
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout == ""
        rows = list(csv.DictReader(output.open()))
        assert [(Path(row["source"]).name, row["status"], row["label"]) for row in rows] == [
            ("upright.png", "ok", "0"),
            ("turned.jpg", "ok", "270"),
        ]

    def test_detection_parameters_choose_the_detection_default(self, tmp_path: Path) -> None:
        (tmp_path / "astronaut.jpg").write_bytes(encode(photo_image("astronaut"), "JPEG", quality=90))
        completed = run("predict", str(tmp_path / "astronaut.jpg"), "--threshold", "0.5", "--max-detections", "3")
        assert completed.returncode == 0, completed.stderr
        (result,) = lines(completed.stdout)
        detections = result["detections"]
        assert isinstance(detections, list) and 1 <= len(detections) <= 3
        assert detections[0]["label"] == "face"
        assert '"max_detections": 3' in completed.stderr

    def test_urls_follow_the_api_url_policy(self, pages: Path) -> None:
        with serve_directory(pages) as base:
            url = f"{base}/a/upright.png"
            refused = run("predict", url, "--model", "orientation")
            allowed = run("predict", url, "--model", "orientation", env={"URL_ALLOWED_NETWORKS": "127.0.0.0/8"})
        assert refused.returncode == 1
        assert lines(refused.stdout)[0]["error"]["code"] == "url_forbidden"  # type: ignore[index]
        assert allowed.returncode == 0, allowed.stderr
        assert lines(allowed.stdout)[0]["predictions"][0]["label"] == "0"  # type: ignore[index]

    def test_several_workers_keep_the_order(self, pages: Path) -> None:
        arguments = [str(pages / "a" / "upright.png"), str(pages / "b" / "turned.jpg")] * 5
        completed = run("predict", *arguments, "--model", "orientation", "--workers", "3", "--batch-size", "2")
        labels = [result["predictions"][0]["label"] for result in lines(completed.stdout)]  # type: ignore[index]
        assert labels == ["0", "270"] * 5

    def test_an_unknown_model_is_a_usage_error(self, pages: Path) -> None:
        completed = run("predict", str(pages), "--model", "nope")
        assert completed.returncode == 2
        assert "no model named 'nope'" in completed.stderr
        assert completed.stdout == ""

    def test_options_of_the_other_task_are_refused(self, pages: Path) -> None:
        completed = run("predict", str(pages), "--model", "orientation", "--threshold", "0.3")
        assert completed.returncode == 2
        assert "classification model" in completed.stderr

    def test_nothing_to_read_is_a_usage_error(self, tmp_path: Path) -> None:
        completed = run("predict", str(tmp_path))
        assert completed.returncode == 2
        assert "no image to read" in completed.stderr


class TestInvoke:
    def test_an_event_file_runs_the_function_and_prints_its_response(self) -> None:
        completed = run("invoke", str(EVENTS_DIR / "predict_raw.json"))
        assert completed.returncode == 0, completed.stderr
        response = json.loads(completed.stdout)
        assert response["statusCode"] == 200
        body = json.loads(response["body"])
        assert [result["predictions"][0]["label"] for result in body["results"]] == ["270"]
        assert "START RequestId:" in completed.stderr
        assert "END RequestId:" in completed.stderr
        assert "REPORT RequestId:" in completed.stderr
        assert "Init Duration:" in completed.stderr

    def test_standard_input_and_an_unknown_route(self) -> None:
        event = json.loads((EVENTS_DIR / "health.json").read_text())
        completed = run("invoke", "-", stdin=json.dumps(event))
        assert completed.returncode == 0, completed.stderr
        assert json.loads(json.loads(completed.stdout)["body"])["status"] == "ready"

    def test_a_bad_event_file_is_a_usage_error(self, tmp_path: Path) -> None:
        (tmp_path / "bad.json").write_text("{not json")
        bad = run("invoke", str(tmp_path / "bad.json"))
        missing = run("invoke", str(tmp_path / "missing.json"))
        unknown = run("invoke", str(EVENTS_DIR / "health.json"), "--function", "Nope")
        assert (bad.returncode, missing.returncode, unknown.returncode) == (2, 2, 2)
        assert "the event is not JSON" in bad.stderr
        assert "cannot read the event" in missing.stderr
        assert "no function 'Nope'" in unknown.stderr


class TestModels:
    def test_list_and_describe(self) -> None:
        listed = run("models", "list")
        assert listed.returncode == 0
        assert any(line.split()[:2] == ["orientation", "classification"] for line in listed.stdout.splitlines())
        described = run("models", "describe", "orientation")
        assert described.returncode == 0
        assert json.loads(described.stdout)["labels"] == ["0", "90", "180", "270"]
        assert run("models", "describe", "nope").returncode == 2

    def test_check_passes_on_the_project_registry(self) -> None:
        completed = run("models", "check")
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "orientation: ok" in completed.stdout

    def test_check_reports_one_line_per_problem(self, tmp_path: Path) -> None:
        models_dir = tmp_path / "models"
        models_dir.mkdir()
        shutil.copy(MODELS_DIR / "orientation.onnx", models_dir / "orientation.onnx")
        text = (MODELS_DIR / "models.toml").read_text()
        before, section, orientation = text.partition("[models.orientation]")
        orientation = orientation.replace('layout = "NCHW"\nsize = [224, 224]', 'layout = "NHWC"\nsize = [224, 224]', 1)
        text = before + section + orientation
        (models_dir / "models.toml").write_text(text)
        completed = run("models", "check", env={"MODELS_DIR": str(models_dir)})
        assert completed.returncode == 1
        output = completed.stdout
        assert "orientation: layout NHWC, but the graph's input [" in output
        assert "layout: file layout.onnx is missing" in output
        assert "nsfw: file nsfw.onnx is missing" in output


def toy_detector(path: Path) -> None:
    """A YOLOv8-format detector for 64x64 inputs, classes cat and dog in Ultralytics' `names` metadata.

    One anchor scores `dog` with the image's mean brightness at box centre (16, 40), size 16x16; the 83 others
    score nothing.
    """
    anchors = 8 * 8 + 4 * 4 + 2 * 2
    base = np.zeros((1, 6, anchors), np.float32)
    per_mean = np.zeros((1, 6, anchors), np.float32)
    base[0, :4, 7] = [16, 40, 16, 16]
    per_mean[0, 5, 7] = 1.0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean4d"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean4d", "column"], ["mean"]),
        helper.make_node("Mul", ["mean", "per_mean"], ["varying"]),
        helper.make_node("Add", ["base", "varying"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, anchors])],
        initializer=[
            numpy_helper.from_array(base, "base"),
            numpy_helper.from_array(per_mean, "per_mean"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "column"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"names": "{0: 'cat', 1: 'dog'}", "author": "tests"})
    onnx.save(model, str(path))


def toy_classifier(path: Path) -> None:
    """Colour classifier: channel means x 10, then Softmax; labels red, green, blue in newline metadata."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Mul", ["flat", "ten"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph(
        nodes,
        "toy_classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [output],
        initializer=[numpy_helper.from_array(np.array(10.0, np.float32), "ten")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"classes": "red\ngreen\nblue"})
    onnx.save(model, str(path))


class TestAdd:
    @pytest.fixture
    def models_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "models"
        folder.mkdir()
        shutil.copy(MODELS_DIR / "models.toml", folder / "models.toml")
        return folder

    def test_a_detector_is_recognised_registered_and_then_answers(self, models_dir: Path, tmp_path: Path) -> None:
        graph = tmp_path / "toy.onnx"
        toy_detector(graph)
        env = {"MODELS_DIR": str(models_dir)}
        added = run("models", "add", str(graph), "--name", "pets", "--resize", "stretch", env=env)
        assert added.returncode == 0, added.stderr
        assert "decoder yolov8" in added.stdout
        assert "2 from the ONNX metadata key 'names'" in added.stdout
        assert "only you know the normalisation" in added.stdout
        assert (models_dir / "pets.onnx").read_bytes() == graph.read_bytes()
        assert (models_dir / "pets.labels.txt").read_text() == "cat\ndog\n"
        entry = __import__("tomllib").loads((models_dir / "models.toml").read_text())["models"]["pets"]
        assert (entry["decoder"], entry["size"], entry["layout"], entry["input_name"]) == (
            "yolov8",
            [64, 64],
            "NCHW",
            "images",
        )
        image = tmp_path / "white.png"
        image.write_bytes(png((255, 255, 255), (128, 128)))
        predicted = run("predict", str(image), "--model", "pets", "--threshold", "0.5", env=env)
        assert predicted.returncode == 0, predicted.stderr
        (result,) = lines(predicted.stdout)
        detections = result["detections"]
        assert isinstance(detections, list) and len(detections) == 1
        detection = detections[0]
        assert detection["label"] == "dog"
        # centre (16, 40), 16x16 in a 64x64 input stretched from 128x128: twice as large
        assert detection["box"] == {"x1": 16.0, "y1": 64.0, "x2": 48.0, "y2": 96.0}
        assert run("models", "check", env=env).stdout.count("pets: ok") == 1

    def test_a_classifier_with_a_final_softmax_and_newline_labels(self, models_dir: Path, tmp_path: Path) -> None:
        graph = tmp_path / "colours.onnx"
        toy_classifier(graph)
        env = {"MODELS_DIR": str(models_dir)}
        added = run("models", "add", str(graph), "--name", "colours", "--size", "32", "32", "--default", env=env)
        assert added.returncode == 0, added.stderr
        entry = __import__("tomllib").loads((models_dir / "models.toml").read_text())
        assert entry["defaults"]["classification"] == "colours"
        model = entry["models"]["colours"]
        assert model["decoder_options"] == {"probabilities": True}
        assert model["labels_metadata"] == "classes"
        image = tmp_path / "green.png"
        image.write_bytes(png((0, 200, 0)))
        (result,) = lines(run("predict", str(image), env=env).stdout)
        assert result["predictions"][0]["label"] == "green"  # type: ignore[index]

    def test_a_graph_no_decoder_reads_is_refused_with_what_was_found(self, models_dir: Path, tmp_path: Path) -> None:
        graph = tmp_path / "odd.onnx"
        nodes = [helper.make_node("Identity", ["pixels"], ["same"])]
        model = helper.make_model(
            helper.make_graph(
                nodes,
                "odd",
                [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 8, 8])],
                [helper.make_tensor_value_info("same", TensorProto.FLOAT, [1, 3, 8, 8])],
            ),
            opset_imports=[helper.make_opsetid("", 17)],
            ir_version=8,
        )
        onnx.save(model, str(graph))
        before = (models_dir / "models.toml").read_text()
        completed = run("models", "add", str(graph), "--name", "odd", env={"MODELS_DIR": str(models_dir)})
        assert completed.returncode == 2
        assert "same [1, 3, 8, 8]" in completed.stderr
        assert "match no decoder" in completed.stderr
        assert (models_dir / "models.toml").read_text() == before
        assert not (models_dir / "odd.onnx").exists()

    def test_a_name_already_registered_is_refused(self, models_dir: Path, tmp_path: Path) -> None:
        graph = tmp_path / "colours.onnx"
        toy_classifier(graph)
        completed = run("models", "add", str(graph), "--name", "nsfw", env={"MODELS_DIR": str(models_dir)})
        assert completed.returncode == 2
        assert "already has a model 'nsfw'" in completed.stderr


def test_openapi_prints_the_document_swagger_yaml_is_generated_from() -> None:
    completed = run("openapi")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert {"/predict", "/object_detection", "/models", "/health"} <= set(document["paths"])
    assert document["info"]["title"] == "lambda-vision"
