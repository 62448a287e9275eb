"""Peak memory of worst-case requests: multipart requests of single-colour 6000x6000 PNGs.

Such a PNG compresses to 4.4 KB but decodes to 108 MB of RGB, so a 72 KB request can ask for a lot of
memory. Each case runs in a process of its own (the function imported and its default models loaded, as
after a cold start, then one request), and reports the process's peak resident memory (VmHWM, as Lambda's
Max Memory Used) before and after the request. Target: at most 1 GB at the default settings.

    .venv/bin/python scripts/bench_memory.py            # the table
    .venv/bin/python scripts/bench_memory.py --case predict:16:flat.png   # one case, as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 1024
SIDE = 6000
KINDS = {"flat": "single-colour PNG", "rgba16": "16-bit RGBA PNG"}
# (route, images, kind): "flat" is the 4.4 KB single-colour PNG; "rgba16" a 16-bit RGBA PNG of the same size
# (430 KB), whose decoding and conversion to RGB need the most memory.
CASES = (
    ("predict", 1, "flat"),
    ("predict", 4, "flat"),
    ("predict", 8, "flat"),
    ("predict", 16, "flat"),
    ("object_detection", 1, "flat"),
    ("object_detection", 4, "flat"),
    ("object_detection", 16, "flat"),
    ("annotated", 1, "flat"),
    ("predict", 8, "rgba16"),
)


def write_image(kind: str, folder: Path) -> Path:
    """The test image, written by the parent so that making it does not count in the children's peaks."""
    from PIL import Image  # noqa: PLC0415 - only the table needs it

    path = folder / f"{kind}.png"
    if kind == "flat":
        image = Image.new("P", (SIDE, SIDE), 0)
        image.putpalette([200, 30, 30, 0, 0, 0])
        image.save(path, "PNG", optimize=True, bits=1)  # 4.4 KB: one-bit pixels, all the same
    else:
        # Pillow writes no 16-bit RGBA: the PNG's header and one compressed scan line, repeated, by hand.
        row = b"\x00" + bytes([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xFF, 0xFF]) * SIDE
        pixels = zlib.compress(row * SIDE, 9)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", SIDE, SIDE, 16, 6, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def memory_mb(field: str) -> float:
    """VmHWM (the most resident memory this process has had) or VmRSS (now), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_case(route: str, count: int, image_path: Path) -> dict[str, Any]:
    """One request in this process; what it answered and the peak memory before and after it."""
    sys.path[:0] = [
        str(ROOT / "layers" / "core" / "python"),
        str(ROOT / "functions" / "inference"),
        str(ROOT / "scripts"),
    ]
    os.environ.setdefault("MODELS_DIR", str(ROOT / "layers" / "models" / "models"))
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    warnings.filterwarnings("ignore")
    import app  # noqa: PLC0415 - imported after the paths and settings above
    import make_events  # noqa: PLC0415

    png = image_path.read_bytes()
    path = "/predict" if route == "predict" else "/object_detection"
    fields = [("image", (f"{index}.png", png, "image/png")) for index in range(count)]
    accept = {"Accept": "image/png"} if route == "annotated" else {}
    event = make_events.post_multipart(f"memory-{route}-{count}", path, fields, headers=accept)
    resident, init_peak = memory_mb("VmRSS"), memory_mb("VmHWM")

    class Context:
        function_name = "bench-memory"
        memory_limit_in_mb = 2048
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-memory"
        aws_request_id = "bench-memory"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 28_000

    with contextlib.redirect_stdout(io.StringIO()):  # the cold-start metric line
        response = app.lambda_handler(event, Context())
    peak = memory_mb("VmHWM")
    status = int(response["statusCode"])
    outcome: dict[str, Any] = {"status": status}
    if response.get("isBase64Encoded"):
        media_type = response["multiValueHeaders"]["Content-Type"][0]
        outcome["answer"] = f"{media_type}, {len(response['body']) * 3 // 4 / 1e6:.1f} MB"
    else:
        body = json.loads(response["body"])
        if "results" in body:
            codes = sorted({r["error"]["code"] for r in body["results"] if r["status"] == "error"})
            outcome["answer"] = f"{body['succeeded']} ok, {body['failed']} failed {' '.join(codes)}".strip()
        else:
            outcome["answer"] = body["error"]["code"]
    return {"route": route, "images": count, "kind": image_path.stem, "request_kb": len(event["body"]) * 3 / 4 / 1024,
            "resident_mb": resident, "init_peak_mb": init_peak, "peak_mb": peak, **outcome}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help="route:count:image.png, run in this process and printed as JSON")
    args = parser.parse_args()
    if args.case:
        route, count, path = args.case.split(":", 2)
        print(json.dumps(run_case(route, int(count), Path(path))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        images = {kind: write_image(kind, Path(folder)) for kind in {kind for _, _, kind in CASES}}
        for route, count, kind in CASES:
            done = subprocess.run(
                [sys.executable, __file__, "--case", f"{route}:{count}:{images[kind]}"],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"Peak resident memory (VmHWM) of requests of single-colour {SIDE}x{SIDE} PNGs, one process per case")
    print("(default models loaded first, as after a cold start); MAX_REQUEST_PIXELS and MAX_IMAGE_PIXELS at their")
    print("defaults unless set in the environment.")
    print()
    print("| route | images | request | status | answer | resident after init | peak of init | peak |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for row in rows:
        route = "/object_detection, Accept: image/png" if row["route"] == "annotated" else f"/{row['route']}"
        print(
            f"| {route} | {row['images']} x {KINDS[row['kind']]} | {row['request_kb']:.0f} KB | {row['status']} "
            f"| {row['answer']} "
            f"| {row['resident_mb']:.0f} MB | {row['init_peak_mb']:.0f} MB | {row['peak_mb']:.0f} MB |"
        )
    worst = max(row["peak_mb"] for row in rows)
    verdict = "meets" if worst <= TARGET_MB else "MISSES"
    print()
    print(f"highest peak {worst:.0f} MB: {verdict} the target of {TARGET_MB} MB")
    if worst > TARGET_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()
