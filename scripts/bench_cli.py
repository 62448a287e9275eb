"""`lambda-vision predict` against the in-process pipeline on the same images: images per second.

The command runs as a user runs it (a subprocess writing JSON Lines to a file); its rate is the one it reports,
from the first image read to the last line written (the model load before it is printed apart, as wall-clock
time of the whole command). The in-process rate is `Pipeline.classify` called in batches of the same size on
bytes already in memory. Target: the command at least 0.9x the in-process rate.

    .venv/bin/python scripts/bench_cli.py [--images 240]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MODELS_DIR", str(ROOT / "layers" / "models" / "models"))

import sample_images  # noqa: E402
from lambda_vision.fetch import FetchPolicy, UrlFetcher  # noqa: E402
from lambda_vision.inputs import ImageInput  # noqa: E402
from lambda_vision.models import ModelStore  # noqa: E402
from lambda_vision.pipeline import Pipeline  # noqa: E402
from lambda_vision.registry import ModelRegistry  # noqa: E402
from lambda_vision.settings import Settings  # noqa: E402

TARGET = 0.9
MODEL = "orientation"
BATCH = 16
_RATE = re.compile(r"([\d.]+) images/s")


def in_process_rate(files: list[Path]) -> float:
    settings = Settings.from_env()
    store = ModelStore(ModelRegistry.load(settings.models_config_path), settings)
    model = store.get(store.registry.get(MODEL))
    pipeline = Pipeline(UrlFetcher(FetchPolicy.from_settings(settings)), settings.max_image_pixels)
    images = [ImageInput(index=i, source=str(path), data=path.read_bytes()) for i, path in enumerate(files)]
    pipeline.classify(model, images[:BATCH], 5)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(images), BATCH):
        pipeline.classify(model, images[start : start + BATCH], 5)
    return len(images) / (time.perf_counter() - started)


def command_rate(folder: Path, workers: int) -> tuple[float, float]:
    command = Path(sys.executable).parent / "lambda-vision"
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as output:
        started = time.perf_counter()
        completed = subprocess.run(
            [str(command), "predict", str(folder), "--model", MODEL, "--workers", str(workers), "-o", output.name],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    match = _RATE.search(completed.stderr)
    if match is None:
        raise SystemExit(f"no rate in the command's summary: {completed.stderr}")
    return float(match.group(1)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pages = [sample_images.rotated_page(angle, "JPEG") for angle in (0, 90, 180, 270)]
        files = []
        for number in range(args.images):
            path = folder / f"page-{number:05d}.jpg"
            path.write_bytes(pages[number % len(pages)])
            files.append(path)
        baseline = in_process_rate(files)
        print(f"lambda-vision predict: {args.images} 800x1100 JPEG pages, model {MODEL}, batches of {BATCH}")
        print("| run | images/s | x in-process | whole command (s) |")
        print("|---|---:|---:|---:|")
        print(f"| in-process pipeline | {baseline:.1f} | 1.00 | |")
        for workers in (1, 2):
            rate, wall = command_rate(folder, workers)
            ratio = rate / baseline
            verdict = "ok" if ratio >= TARGET else f"below {TARGET}"
            print(f"| lambda-vision predict --workers {workers} | {rate:.1f} | {ratio:.2f} ({verdict}) | {wall:.2f} |")


if __name__ == "__main__":
    main()
