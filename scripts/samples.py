"""Sample inputs for trying the local API with curl (`make sample-images`): images and an env-vars file.

    .venv/bin/python scripts/samples.py .build/samples

Writes page.png (an upright rendered document page), turned.jpg (the same page turned a quarter
counter-clockwise), photo.jpg (a portrait photo) and local-urls.json, an --env-vars file that lets the
function fetch image URLs from this machine (127.0.0.0/8), for serving the samples with a local HTTP server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sample_images import photo, rotated_page


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
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
