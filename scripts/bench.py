"""Benchmark the inference handler against bare ONNX Runtime on the same input.

For each model: the whole handler (`app.lambda_handler` on an API Gateway event with a JPEG body) is timed
end to end, its per-image stages are read from the response, and the network alone is timed with
`session.run` on the very tensor the handler feeds it. The ratio handler / session.run is the overhead of
everything around the model. Target: at most 1.10 for the layout model on a 2-megapixel JPEG.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "core" / "python"), str(ROOT / "functions" / "inference")]
os.environ.setdefault("MODELS_DIR", str(ROOT / "layers" / "models" / "models"))
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
warnings.filterwarnings("ignore", message="Dimension .* has already been added")

import app  # noqa: E402
import make_events  # noqa: E402
import sample_images  # noqa: E402
from lambda_vision.imaging import decode_image  # noqa: E402

STAGES = ("decode", "preprocess", "inference", "postprocess")
TARGET_RATIO = 1.10


class Context:
    function_name = "bench"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 28_000


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def bench_model(name: str, route: str, image: bytes, label: str, *, repeats: int, warmup: int) -> dict[str, Any]:
    event = make_events.post(f"bench-{name}", route, image, "image/jpeg", query=[("model", name)])
    model = app.model_store().get(app.model_store().registry.get(name))
    decoded = decode_image(image, app.settings.max_image_pixels, model.preprocessor.resized_size)
    tensor, _ = model.preprocessor(decoded.image, decoded.width, decoded.height)
    feed = {model.input_name: tensor[None]}

    handler_s: list[float] = []
    bare_s: list[float] = []
    serialise_s: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for iteration in range(warmup + repeats):
        # Interleave the two measurements so both see the same machine state.
        start = time.perf_counter()
        model.session.run(None, feed)
        bare = time.perf_counter() - start
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the cold-start metric line
            response = app.lambda_handler(dict(event), Context())
        handler = time.perf_counter() - start
        assert response["statusCode"] == 200, response["body"][:300]
        body = json.loads(response["body"])
        start = time.perf_counter()
        json.dumps(body, separators=(",", ":"))
        serialise = time.perf_counter() - start
        if iteration < warmup:
            continue
        bare_s.append(bare)
        handler_s.append(handler)
        serialise_s.append(serialise)
        timings = body["results"][0]["timings_ms"]
        for stage in STAGES:
            stages[stage].append(timings[stage] / 1000.0)
    row: dict[str, Any] = {
        "model": name,
        "image": label,
        **{stage: median_ms(samples) for stage, samples in stages.items()},
        "serialise": median_ms(serialise_s),
        "handler": median_ms(handler_s),
        "session.run": median_ms(bare_s),
    }
    row["ratio"] = row["handler"] / row["session.run"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    page = sample_images.encode(sample_images.render_text_page(), "JPEG", quality=90)
    cases = [
        ("layout", "/object_detection", sample_images.large_jpeg(), "1224x1632 JPEG"),
        ("layout", "/object_detection", sample_images.large_jpeg(sideways=True), "1632x1224 JPEG"),
        ("orientation", "/predict", page, "800x1100 JPEG"),
        ("nsfw", "/predict", sample_images.photo(), "512x600 JPEG"),
    ]
    rows = [bench_model(*case, repeats=args.repeats, warmup=args.warmup) for case in cases]

    threads = app.settings.inference_threads or "all cores"
    print(f"ONNX Runtime threads: {threads}; {os.cpu_count()} CPUs")
    print(f"Per image, median of {args.repeats} runs (ms); ratio = whole handler / bare session.run")
    print()
    header = ["model", "image", *STAGES, "serialise", "handler", "session.run", "ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells = [row["model"], row["image"]]
        cells += [
            f"{row[key]:.2f}" if key == "serialise" else f"{row[key]:.1f}"
            for key in (*STAGES, "serialise", "handler", "session.run")
        ]
        cells.append(f"{row['ratio']:.3f}")
        print("| " + " | ".join(cells) + " |")
    layout = rows[0]
    verdict = "meets" if layout["ratio"] <= TARGET_RATIO else "MISSES"
    print()
    print(f"layout on a 2-megapixel JPEG: ratio {layout['ratio']:.3f} {verdict} the target of {TARGET_RATIO:.2f}")


if __name__ == "__main__":
    main()
