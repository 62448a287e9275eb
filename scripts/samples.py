"""Sample inputs for trying the local API with curl (`make sample-images`): images and an env-vars file.

    .venv/bin/python scripts/samples.py .build/samples

Writes photos for the default models (cat.jpg, coffee.jpg, astronaut.jpg with one face, rocket.jpg, and
faces.jpg with two), documents for the named ones (page.png, an upright rendered page; turned.jpg, the same
page turned a quarter counter-clockwise), photo.jpg (a portrait) and local-urls.json, an --env-vars file that
lets the function fetch image URLs from this machine (127.0.0.0/8), for serving the samples locally.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from sample_images import encode, photo, photo_image, rotated_page


def two_faces() -> bytes:
    """The astronaut twice, at two sizes, on grey: two faces, for detection and detect-then-classify."""
    astronaut = photo_image("astronaut")
    picture = Image.new("RGB", (1200, 600), (128, 128, 128))
    picture.paste(astronaut, (40, 40))
    picture.paste(astronaut.resize((384, 384)), (700, 120))
    return encode(picture, "JPEG", quality=90)


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "cat.jpg": encode(photo_image("chelsea"), "JPEG", quality=90),
        "coffee.jpg": encode(photo_image("coffee"), "JPEG", quality=90),
        "astronaut.jpg": encode(photo_image("astronaut"), "JPEG", quality=90),
        "rocket.jpg": encode(photo_image("rocket"), "JPEG", quality=90),
        "faces.jpg": two_faces(),
        "page.png": rotated_page(0),
        "turned.jpg": rotated_page(90, "JPEG"),
        "photo.jpg": photo(),
        "local-urls.json": json.dumps({"Parameters": {"URL_ALLOWED_NETWORKS": "127.0.0.0/8"}}, indent=2).encode(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


if __name__ == "__main__":
    for path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else ".build/samples")):
        print(path)
