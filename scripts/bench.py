"""Benchmark the inference handler against bare ONNX Runtime on the same input.

For each model: the whole handler (`app.lambda_handler` on an API Gateway event with a JPEG body) is timed
end to end, its per-image stages are read from the response, and the network alone is timed with
`session.run` on the very tensor the handler feeds it. The ratio handler / session.run is the overhead of
everything around the model. Target: at most 1.10 for the layout model on a 2-megapixel JPEG.

Then the cold start: the function's init (`import app`: imports, settings, registry, the default models) in
fresh processes, against the floor of `import onnxruntime, numpy, PIL` plus one InferenceSession per default
model, interleaved run by run; and where the init's import time goes, per top-level package
(`python -X importtime`). Target: init at most 1.30 times the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
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
from python313 import find_python313  # noqa: E402

STAGES = ("decode", "preprocess", "inference", "postprocess")
TARGET_RATIO = 1.10
INIT_TARGET_RATIO = 1.30
FUNCTION_PATH = [str(ROOT / "layers" / "core" / "python"), str(ROOT / "functions" / "inference")]
# Each child prints its wall and CPU time (every thread) from its first statement to the end of its init.
CLOCKS = "import time as _t\n_start, _cpu = _t.perf_counter(), _t.process_time()\n"
REPORT = "import json as _j\nprint(_j.dumps([_t.perf_counter() - _start, _t.process_time() - _cpu]))\n"
FLOOR = (
    "import onnxruntime, numpy, PIL.Image\n"
    "for _path in {paths!r}:\n"
    "    onnxruntime.InferenceSession(_path, providers=['CPUExecutionProvider'])\n"
)
FUNCTION_INIT = "import sys\nsys.path[:0] = {path!r}\nimport app\n"


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


def child_times(code: str, env: dict[str, str], python: str = sys.executable) -> tuple[float, float]:
    result = subprocess.run([python, "-c", CLOCKS + code + REPORT], capture_output=True, text=True, check=True, env=env)
    wall, cpu = json.loads(result.stdout.strip().splitlines()[-1])
    return float(wall), float(cpu)


def init_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PRELOAD_MODELS="true", POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_METRICS_DISABLED="true")
    env.pop("PYTHONPATH", None)
    return env


def bench_init(runs: int) -> dict[str, Any]:
    """Fresh processes, alternating floor and function, so both see the same machine load."""
    models = app.model_store()
    paths = [
        str(models.registry.base_dir / models.registry.get(name).file) for name in models.registry.defaults.values()
    ]
    env = init_environment()
    floor_code = FLOOR.format(paths=paths)
    function_code = FUNCTION_INIT.format(path=FUNCTION_PATH)
    samples: dict[str, list[tuple[float, float]]] = {"floor": [], "function": []}
    child_times(function_code, env)  # the first run fills the operating system's file cache
    for _ in range(runs):
        samples["floor"].append(child_times(floor_code, env))
        samples["function"].append(child_times(function_code, env))
    row: dict[str, Any] = {"runs": runs, "models": list(models.registry.defaults.values())}
    for name, values in samples.items():
        row[f"{name}_wall"] = median_ms([wall for wall, _ in values])
        row[f"{name}_cpu"] = median_ms([cpu for _, cpu in values])
    row["ratio"] = row["function_wall"] / row["floor_wall"]
    row["cpu_ratio"] = row["function_cpu"] / row["floor_cpu"]
    return row


def bench_deployed_init(runs: int) -> dict[str, Any] | str:
    """The init of this host's architecture's `sam build` on CPython 3.13, as Lambda lays it out (layers on the
    path, read-only: no bytecode written), with the bytecode the build ships and with its sources only."""
    python = find_python313()
    if python is None:
        return "no CPython 3.13 here (set PYTHON313)"
    arch = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    build = ROOT / ".aws-sam" / f"build-{arch}"
    if not (build / "template.yaml").is_file():
        return f"no {arch} build (make build ARCH={arch})"
    models_dir = build / "ModelsLayer" / "models"
    models = app.model_store().registry
    paths = [str(models_dir / models.get(name).file) for name in models.defaults.values()]
    env = {**init_environment(), "PYTHONDONTWRITEBYTECODE": "1", "MODELS_DIR": str(models_dir)}
    row: dict[str, Any] = {"runs": runs, "python": python, "arch": arch}
    with tempfile.TemporaryDirectory() as scratch:
        sources = Path(scratch)
        for part in ("InferenceFunction", "CoreLayer", "DependenciesLayer"):
            shutil.copytree(build / part, sources / part, ignore=shutil.ignore_patterns("__pycache__"))
        for variant, base in (("bytecode", build), ("sources", sources)):
            search = [str(base / "InferenceFunction"), str(base / "CoreLayer" / "python"),
                      str(base / "DependenciesLayer" / "python")]  # fmt: skip
            prefix = f"import sys\nsys.path[:0] = {search!r}\n"
            floor_code, function_code = prefix + FLOOR.format(paths=paths), prefix + "import app\n"
            child_times(function_code, env, python)  # the file cache
            floor = [child_times(floor_code, env, python)[0] for _ in range(runs)]
            function = [child_times(function_code, env, python)[0] for _ in range(runs)]
            row[f"{variant}_floor"], row[f"{variant}_function"] = median_ms(floor), median_ms(function)
    return row


def print_deployed_init(row: dict[str, Any] | str) -> None:
    print()
    if isinstance(row, str):
        print(f"Cold start of the deployed build: not measured, {row}")
        return
    print(f"Cold start of the {row['arch']} build on CPython 3.13 ({row['python']}), laid out as on Lambda,")
    print(f"median of {row['runs']} fresh processes each (ms, wall)")
    print()
    print("| init | with the shipped bytecode | sources only |")
    print("|---|---:|---:|")
    print(f"| floor: import onnxruntime, numpy, PIL + one session per model | {row['bytecode_floor']:.0f} | "
          f"{row['sources_floor']:.0f} |")  # fmt: skip
    print(f"| function: import app | {row['bytecode_function']:.0f} | {row['sources_function']:.0f} |")
    print(f"| ratio | {row['bytecode_function'] / row['bytecode_floor']:.2f} | "
          f"{row['sources_function'] / row['sources_floor']:.2f} |")  # fmt: skip


def import_time_by_package() -> Counter[str]:
    """Milliseconds of `import app` spent importing each top-level package (its modules' own times, rounded down)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", FUNCTION_INIT.format(path=FUNCTION_PATH)],
        capture_output=True,
        text=True,
        check=True,
        env=init_environment(),
    )
    spent: Counter[str] = Counter()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        spent[name.strip().split(".")[0]] += int(own) // 1000
    return spent


def print_init(row: dict[str, Any], spent: Counter[str]) -> None:
    print()
    print(f"Cold start, median of {row['runs']} fresh processes each (ms); default models {', '.join(row['models'])}")
    print()
    print("| init | wall | CPU (all threads) |")
    print("|---|---:|---:|")
    print(f"| floor: import onnxruntime, numpy, PIL + one session per model | {row['floor_wall']:.0f} | "
          f"{row['floor_cpu']:.0f} |")  # fmt: skip
    print(f"| function: import app | {row['function_wall']:.0f} | {row['function_cpu']:.0f} |")
    print(f"| ratio | {row['ratio']:.2f} | {row['cpu_ratio']:.2f} |")
    verdict = "meets" if row["ratio"] <= INIT_TARGET_RATIO else "MISSES"
    print()
    print(f"init / floor: {row['ratio']:.2f} {verdict} the target of {INIT_TARGET_RATIO:.2f}")
    floor_packages = {"onnxruntime", "numpy", "PIL"}
    beyond = [(name, ms) for name, ms in spent.most_common() if name not in floor_packages and ms >= 5]
    total = sum(ms for name, ms in spent.items() if name not in floor_packages)
    print(f"imports beyond the floor's: {total:.0f} ms in one run, of which " +
          ", ".join(f"{name} {ms:.0f}" for name, ms in beyond[:8]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--init-runs", type=int, default=9, help="fresh processes per side for the cold start")
    parser.add_argument("--init-only", action="store_true", help="only the cold-start measurement")
    args = parser.parse_args()
    if args.init_only:
        print_init(bench_init(args.init_runs), import_time_by_package())
        print_deployed_init(bench_deployed_init(args.init_runs))
        return

    page = sample_images.encode(sample_images.render_text_page(), "JPEG", quality=90)
    photos = {
        name: sample_images.encode(sample_images.photo_image(name), "JPEG", quality=90)
        for name in ("chelsea", "coffee", "astronaut")
    }
    cases = [
        ("layout", "/object_detection", sample_images.large_jpeg(), "1224x1632 JPEG"),
        ("layout", "/object_detection", sample_images.large_jpeg(sideways=True), "1632x1224 JPEG"),
        ("orientation", "/predict", page, "800x1100 JPEG"),
        ("nsfw", "/predict", sample_images.photo(), "512x600 JPEG"),
        ("imagenet", "/predict", photos["chelsea"], "451x300 JPEG"),
        ("imagenet", "/embed", photos["coffee"], "600x400 JPEG, POST /embed"),
        ("faces", "/object_detection", photos["astronaut"], "512x512 JPEG"),
        ("faces", "/object_detection", sample_images.photo(), "512x600 JPEG"),
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
    print_init(bench_init(args.init_runs), import_time_by_package())
    print_deployed_init(bench_deployed_init(args.init_runs))


if __name__ == "__main__":
    main()
