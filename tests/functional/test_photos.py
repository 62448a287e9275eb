"""Photos through the API as API Gateway calls it, with the default models: scikit-image's sample photos
(a cat, a cup of coffee, an astronaut, a rocket) and pictures composed of them, whose answers are known."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

import app
import make_events
import sample_images
from lambda_vision.models import LoadedModel
from support import LambdaContext

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}
# Where the astronaut's face is (scikit-image's astronaut.png, 512x512), and her landmarks as seen in the image
ASTRONAUT_FACE = (181.0, 58.0, 270.0, 178.0)
ASTRONAUT_LANDMARKS = {
    "left_eye": (203.0, 101.0),
    "right_eye": (249.0, 102.0),
    "nose": (226.0, 124.0),
    "mouth_left": (204.0, 144.0),
    "mouth_right": (243.0, 144.0),
}


def jpeg(image: Image.Image) -> bytes:
    return sample_images.encode(image, "JPEG", quality=92)


def photo(name: str) -> bytes:
    return jpeg(sample_images.photo_image(name))


def invoke(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = app.lambda_handler(copy.deepcopy(event), LambdaContext())
    return int(response["statusCode"]), json.loads(response["body"])


def post_images(path: str, images: Sequence[tuple[str, bytes]], **query: str) -> tuple[int, dict[str, Any]]:
    fields = [("image", (name, data, "image/jpeg")) for name, data in images]
    return invoke(make_events.post_multipart("photos", path, fields, query=list(query.items())))


def post_json(path: str, document: Any, **query: str) -> tuple[int, dict[str, Any]]:
    return invoke(make_events.post_json("photos", path, document, query=list(query.items())))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def labels(predictions: list[dict[str, Any]]) -> list[str]:
    return [prediction["label"] for prediction in predictions]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def corners(box: dict[str, float]) -> tuple[float, float, float, float]:
    return (box["x1"], box["y1"], box["x2"], box["y2"])


def composed() -> tuple[bytes, dict[str, tuple[int, int, int, int]]]:
    """A 1400x560 picture: the cat, the coffee and the astronaut side by side on grey; where each one is."""
    canvas = Image.new("RGB", (1400, 560), (128, 128, 128))
    places = {"chelsea": (20, 130), "coffee": (490, 80), "astronaut": (1100 - 212, 24)}
    where = {}
    for name, (x, y) in places.items():
        picture = sample_images.photo_image(name)
        canvas.paste(picture, (x, y))
        where[name] = (x, y, x + picture.width, y + picture.height)
    return jpeg(canvas), where


# -- Classification and detection of whole photos --------------------------------------------------------------


def test_a_photo_of_a_cat_is_a_cat_and_coffee_is_an_espresso() -> None:
    status, body = post_images("/predict", [("chelsea.jpg", photo("chelsea")), ("coffee.jpg", photo("coffee"))])

    assert status == 200
    assert body["model"]["name"] == "imagenet"
    cat, coffee = body["results"]
    assert set(labels(cat["predictions"])[:3]) & CAT_CLASSES
    assert labels(cat["predictions"])[0] in CAT_CLASSES
    assert labels(coffee["predictions"])[0] == "espresso"
    assert coffee["predictions"][0]["score"] > 0.8
    assert "cup" in labels(coffee["predictions"])[:3]


def test_the_rocket_is_a_missile_or_a_projectile() -> None:
    status, body = post_images("/predict", [("rocket.jpg", photo("rocket"))], top_k="2")

    assert status == 200
    assert set(labels(body["results"][0]["predictions"])) == {"missile", "projectile"}


def test_the_astronauts_face_is_found_where_it_is_with_five_landmarks_and_the_cat_has_none() -> None:
    status, body = post_images(
        "/object_detection", [("astronaut.jpg", photo("astronaut")), ("chelsea.jpg", photo("chelsea"))]
    )

    assert status == 200
    assert body["model"]["name"] == "faces"
    astronaut, cat = body["results"]
    (face,) = astronaut["detections"]
    assert face["label"] == "face"
    assert face["score"] > 0.8
    assert iou(corners(face["box"]), ASTRONAUT_FACE) > 0.8
    assert [point["name"] for point in face["keypoints"]] == list(ASTRONAUT_LANDMARKS)
    for point in face["keypoints"]:
        x, y = ASTRONAUT_LANDMARKS[point["name"]]
        assert abs(point["x"] - x) < 6 and abs(point["y"] - y) < 6, point
    assert cat["detections"] == []


def test_landmarks_follow_the_image_when_it_is_mirrored() -> None:
    mirrored = ImageOps.mirror(sample_images.photo_image("astronaut"))
    status, body = post_images("/object_detection", [("mirrored.jpg", jpeg(mirrored))])

    assert status == 200
    (face,) = body["results"][0]["detections"]
    points = {point["name"]: (point["x"], point["y"]) for point in face["keypoints"]}
    # Mirrored, the eye on the image's left is the one that was on its right
    assert abs(points["left_eye"][0] - (512 - ASTRONAUT_LANDMARKS["right_eye"][0])) < 6
    assert points["left_eye"][0] < points["nose"][0] < points["right_eye"][0]
    assert iou(corners(face["box"]), (512 - 270, 58, 512 - 181, 178)) > 0.8


def test_the_annotated_picture_has_the_face_box_and_its_landmarks_drawn() -> None:
    event = make_events.post("faces", "/object_detection", photo("astronaut"), "image/jpeg")
    event["headers"]["Accept"] = "image/png"
    event["multiValueHeaders"]["Accept"] = ["image/png"]

    response = app.lambda_handler(event, LambdaContext())

    assert response["statusCode"] == 200
    assert response["multiValueHeaders"]["X-Detections"] == ["1"]
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(response["body"]))).convert("RGB"))
    original = np.asarray(sample_images.photo_image("astronaut"))
    x, y = (round(v) for v in ASTRONAUT_LANDMARKS["nose"])
    # a landmark is a dot of the keypoint colour where the photo was not
    assert tuple(picture[y, x]) != tuple(original[y, x])
    assert np.abs(picture[y - 2 : y + 3, x - 2 : x + 3].astype(int) - (255, 225, 25)).sum(axis=2).min() < 60


# -- Embeddings -----------------------------------------------------------------------------------------------


def embeddings(*images: tuple[str, bytes], **query: str) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    status, body = post_images("/embed", list(images), **query)
    assert status == 200, body
    return [np.asarray(result["embedding"]) for result in body["results"]]


def test_a_photo_and_its_mirror_are_close_and_a_different_photo_is_far() -> None:
    cat = sample_images.photo_image("chelsea")
    original, mirrored, coffee = embeddings(
        ("cat.jpg", jpeg(cat)), ("mirrored.jpg", jpeg(ImageOps.mirror(cat))), ("coffee.jpg", photo("coffee"))
    )

    assert original.shape == (1280,)
    assert np.linalg.norm(original) == pytest.approx(1.0, abs=1e-5)
    assert float(original @ mirrored) > 0.8
    assert float(original @ coffee) < 0.5


def test_the_embedding_route_answers_per_image_and_keeps_per_image_errors() -> None:
    status, body = post_images("/embed", [("cat.jpg", photo("chelsea")), ("notes.jpg", b"not an image")])

    assert status == 200
    assert body["parameters"] == {"output": "embedding"}
    ok, bad = body["results"]
    assert (ok["status"], ok["dimension"], len(ok["embedding"])) == ("ok", 1280, 1280)
    assert bad["status"] == "error"
    assert bad["error"]["code"] == "image_undecodable"
    assert (body["succeeded"], body["failed"]) == (1, 1)


def test_the_embedding_dimension_is_described_with_the_model() -> None:
    event = make_events.api_gateway_event("describe", "GET", "/models/imagenet")
    status, body = invoke(event)

    assert status == 200
    assert body["embedding"] == {"output": "embedding", "dimension": 1280}
    assert len(body["labels"]) == 1000
    assert body["labels"][281] == "tabby"
    faces = invoke(make_events.api_gateway_event("describe", "GET", "/models/faces"))[1]
    assert faces["keypoints"] == list(ASTRONAUT_LANDMARKS)
    assert "embedding" not in faces


@pytest.mark.parametrize(
    ("query", "status", "code", "words"),
    [
        ({"model": "orientation"}, 422, "no_embedding", "Models with embeddings: imagenet."),
        ({"model": "faces"}, 422, "no_embedding", "'faces' has no embedding output"),
        ({"model": "clip"}, 404, "model_not_found", "No model named 'clip'"),
    ],
)
def test_embedding_with_a_model_that_has_none_says_which_have(
    query: dict[str, str], status: int, code: str, words: str
) -> None:
    got_status, body = post_images("/embed", [("cat.jpg", photo("chelsea"))], **query)

    assert got_status == status
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]


# -- Regions --------------------------------------------------------------------------------------------------


def test_regions_of_a_composed_picture_are_classified_in_the_order_given() -> None:
    picture, where = composed()
    regions = [where["coffee"], where["chelsea"], (0, 0, 20, 20)]
    status, body = post_json(
        "/predict", {"images": [{"base64": b64(picture), "regions": [list(box) for box in regions]}]}, top_k="3"
    )

    assert status == 200
    (result,) = body["results"]
    assert (result["width"], result["height"]) == (1400, 560)
    assert "predictions" not in result
    coffee, cat, corner = result["regions"]
    assert corners(coffee["box"]) == where["coffee"]
    assert labels(coffee["predictions"])[0] == "espresso"
    assert corners(cat["box"]) == where["chelsea"]
    assert set(labels(cat["predictions"])) & CAT_CLASSES
    assert "espresso" not in labels(corner["predictions"])
    assert all(len(region["predictions"]) == 3 for region in result["regions"])


def test_a_region_answers_as_the_same_picture_cropped_and_sent_whole() -> None:
    picture, where = composed()
    cropped = Image.open(io.BytesIO(picture)).crop(where["chelsea"])
    _, whole = post_json("/predict", {"images": [{"base64": b64(sample_images.encode(cropped))}]})
    _, boxed = post_json("/predict", {"images": [{"base64": b64(picture), "regions": [list(where["chelsea"])]}]})

    expected = whole["results"][0]["predictions"]
    got = boxed["results"][0]["regions"][0]["predictions"]
    assert labels(got) == labels(expected)
    assert [p["score"] for p in got] == pytest.approx([p["score"] for p in expected], abs=0.02)


def test_multipart_regions_apply_to_the_image_before_them() -> None:
    picture, where = composed()
    fields = [
        ("image", ("whole.jpg", photo("coffee"), "image/jpeg")),
        ("image", ("composed.jpg", picture, "image/jpeg")),
        ("regions", json.dumps([list(where["chelsea"]), list(where["coffee"])])),
    ]
    status, body = invoke(make_events.post_multipart("regions", "/predict", fields))

    assert status == 200
    whole, boxed = body["results"]
    assert labels(whole["predictions"])[0] == "espresso"
    cat, coffee = boxed["regions"]
    assert labels(cat["predictions"])[0] in CAT_CLASSES
    assert labels(coffee["predictions"])[0] == "espresso"


@pytest.mark.parametrize(
    ("regions", "code", "words"),
    [
        ([[0, 0, 100, 100], [1300, 500, 1401, 560]], "region_outside_image", "images[0].regions[1] [1300, 500, 1401"),
        ([[-1, 0, 100, 100]], "region_outside_image", "which is 1400x560 pixels"),
        ([[10, 10, 10, 50]], "region_empty", "images[0].regions[0] [10, 10, 10, 50] is empty"),
        ([[10, 10, 50]], "invalid_region", "must be four numbers"),
        ([[0, 0, 10, 10]] * 33, "too_many_regions", "33 regions; the limit is 32 per request (MAX_REGIONS)"),
        ([], "invalid_region", "images[0].regions is empty"),
    ],
)
def test_bad_regions_are_refused_saying_which_and_why(regions: list[Any], code: str, words: str) -> None:
    picture, _ = composed()
    status, body = post_json("/predict", {"images": [{"base64": b64(picture), "regions": regions}]})

    assert status == 422
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]


def test_regions_are_refused_where_they_are_not_read() -> None:
    document = {"images": [{"base64": b64(photo("chelsea")), "regions": [[0, 0, 10, 10]]}]}
    for path in ("/object_detection", "/embed"):
        status, body = post_json(path, document)
        assert status == 422
        assert body["error"]["code"] == "invalid_region"
        assert "send images with regions to POST /predict" in body["error"]["message"]
    fields = [("regions", "[[0, 0, 10, 10]]"), ("image", ("a.jpg", photo("chelsea"), "image/jpeg"))]
    status, body = invoke(make_events.post_multipart("regions", "/predict", fields))
    assert status == 422
    assert "follows no image" in body["error"]["message"]


# -- Detect, then classify -----------------------------------------------------------------------------------


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Each network run: the model and how many tensors went in at once."""
    calls: list[tuple[str, int]] = []
    real_run = LoadedModel.run

    def counting_run(self: LoadedModel, tensors: Any) -> Any:
        calls.append((self.spec.name, len(tensors)))
        return real_run(self, tensors)

    monkeypatch.setattr(LoadedModel, "run", counting_run)
    return calls


def test_detect_then_classify_answers_each_face_as_a_region_all_crops_in_one_batch(
    runs: list[tuple[str, int]],
) -> None:
    astronaut = sample_images.photo_image("astronaut")
    two = Image.new("RGB", (1200, 600), (128, 128, 128))
    two.paste(astronaut, (40, 40))
    two.paste(astronaut.resize((384, 384)), (700, 120))
    status, body = post_images(
        "/predict", [("two.jpg", jpeg(two)), ("cat.jpg", photo("chelsea")), ("one.jpg", photo("astronaut"))],
        detector="faces", top_k="3",
    )  # fmt: skip

    assert status == 200
    assert body["parameters"]["detector"] == "faces"
    two_faces, no_face, one_face = body["results"]
    assert no_face["regions"] == []
    big, small = sorted(two_faces["regions"], key=lambda region: region["box"]["x1"])
    face = np.array(ASTRONAUT_FACE)
    assert iou(corners(big["box"]), face + np.array([40, 40, 40, 40])) > 0.7
    assert iou(corners(small["box"]), face * 0.75 + np.array([700, 120, 700, 120])) > 0.7
    for region in (big, small, *one_face["regions"]):
        assert region["label"] == "face"
        assert region["score"] > 0.5
        assert len(region["keypoints"]) == 5
        assert len(region["predictions"]) == 3
    # The crops of the whole request went through the classifier together
    assert ("imagenet", 3) in runs
    assert [name for name, _ in runs].count("imagenet") == 1


def test_detect_then_classify_gives_what_the_same_boxes_give_as_regions() -> None:
    _, detected = post_images("/predict", [("astronaut.jpg", photo("astronaut"))], detector="faces")
    (region,) = detected["results"][0]["regions"]
    box = corners(region["box"])
    # the same box, whole pixels outward, sent as a region of the same picture
    whole_pixels = [int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3]))]
    document = {"images": [{"base64": b64(photo("astronaut")), "regions": [whole_pixels]}]}
    _, given = post_json("/predict", document)

    assert labels(region["predictions"])[:2] == labels(given["results"][0]["regions"][0]["predictions"])[:2]


def test_the_detector_must_be_a_detection_model() -> None:
    status, body = post_images("/predict", [("cat.jpg", photo("chelsea"))], detector="nsfw")

    assert status == 422
    assert body["error"]["code"] == "wrong_model_task"
    status, body = post_images("/predict", [("cat.jpg", photo("chelsea"))], detector="yolo")
    assert status == 404
    assert "faces, imagenet, layout, nsfw, orientation" in body["error"]["message"]


# -- The page -------------------------------------------------------------------------------------------------


def test_the_page_is_html_that_needs_nothing_from_elsewhere() -> None:
    response = app.lambda_handler(make_events.api_gateway_event("page", "GET", "/"), LambdaContext())

    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is False
    assert response["multiValueHeaders"]["Content-Type"] == ["text/html; charset=utf-8"]
    assert "default-src 'none'" in response["multiValueHeaders"]["Content-Security-Policy"][0]
    page = response["body"]
    assert page.startswith("<!doctype html>")
    for external in ("http://", "https://", 'src="/', "url(", "@import", "<link"):
        assert external not in page
    assert "fetch(api(path)" in page
