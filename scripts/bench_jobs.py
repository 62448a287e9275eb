"""Batch jobs on the local stack against the same images through the in-process pipeline, and what a million
images cost on Lambda.

1. In process: the images, in chunks of 8 (one ONNX batch each, as a work message), through
   `lambda_vision.pipeline.Pipeline` with one inference thread: milliseconds per image. A round right
   before and right after each local job, while the stack is idle: each job is compared with the mean of the
   rounds on either side of it, the minutes it ran in (the machine's speed drifts by 10-30% over minutes), and
   the median of seven such ratios is the figure.
2. A local job: `samlocal start-api` on template.yaml (local S3, SQS and DynamoDB; the planner and worker
   functions driven by their SQS event sources), the images uploaded under a prefix, POST /jobs, then
   GET /jobs/{id} until it is final, with 1, 2 and 4 worker environments (seven jobs on the same
   environments, the medians shown). Images per second from the job's creation to its end (its own timestamps), and the
   worker's billed milliseconds per image from its REPORT lines: the cost of the batch path per image (S3
   reads and writes, DynamoDB counters, JSON Lines) against the in-process pipeline. Target: at most 1.15x.
   Also the CPU milliseconds per image of the worker processes (from /proc) against the in-process
   pipeline's: what the batch path adds, whatever else the machine is running (billed milliseconds also
   count waits on the local AWS endpoint, which shares the machine's cores).
3. Dollars per million images at 1024, 2048 and 3008 MB on arm64 and x86_64, from the measured worker
   milliseconds per image and AWS's published prices (printed with the assumptions).

    .venv/bin/python scripts/bench_jobs.py [--images 320] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))
os.environ.setdefault("MODELS_DIR", str(ROOT / "layers" / "models" / "models"))

import boto3  # noqa: E402

import sample_images  # noqa: E402
from lambda_vision.fetch import FetchPolicy, UrlFetcher  # noqa: E402
from lambda_vision.inputs import ImageInput  # noqa: E402
from lambda_vision.models import ModelStore  # noqa: E402
from lambda_vision.pipeline import Pipeline  # noqa: E402
from lambda_vision.registry import ModelRegistry, Task  # noqa: E402
from lambda_vision.settings import Settings  # noqa: E402
from samlocal.testing import LocalApi  # noqa: E402

TARGET_RATIO = 1.15
ROUNDS = 7  # local jobs per setting, each between two in-process rounds
CHUNK = 8  # images per work message (JOBS_CHUNK_SIZE)
BATCH_SIZE = 10  # work messages per worker invocation (WorkerBatchSize, its default)
REPORT = re.compile(r"^\[WorkerFunction\] REPORT RequestId: \S+\s+Duration: ([\d.]+) ms", re.MULTILINE)

# us-east-1, published prices
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6
S3_GET = 0.0004 / 1000
S3_PUT = 0.005 / 1000  # PUT, COPY, POST and LIST
DYNAMODB_WRITE = 0.625 / 1e6
DYNAMODB_READ = 0.125 / 1e6
ONE_VCPU_MB = 1769  # Lambda gives one full vCPU at 1769 MB, proportionally less below
MEMORY_SIZES = (1024, 2048, 3008)


def images(count: int) -> list[bytes]:
    pages = [sample_images.rotated_page(angle, "JPEG") for angle in (0, 90, 180, 270)]
    # Each image distinct (a different JPEG comment), so nothing can be cached along the way.
    return [page + b"\xff\xfe" + index.to_bytes(4, "big") for index, page in enumerate(pages * (count // 4 + 1))][
        :count
    ]


class InProcess:
    """The in-process pipeline on the images, in chunks of CHUNK (one ONNX batch each, as a work message)."""

    def __init__(self, data: list[bytes]) -> None:
        settings = Settings.from_env({"MODELS_DIR": os.environ["MODELS_DIR"], "INFERENCE_THREADS": "1"})
        self.model = ModelStore(ModelRegistry.load(settings.models_config_path), settings).get_for_task(
            Task.CLASSIFICATION, None
        )
        self.pipeline = Pipeline(UrlFetcher(FetchPolicy.from_settings(settings)), settings.max_image_pixels)
        self.inputs = [ImageInput(index=index, source=f"{index}.jpg", data=item) for index, item in enumerate(data)]
        self.pipeline.classify(self.model, self.inputs[:CHUNK], self.model.spec.top_k)  # warm-up

    def round(self) -> tuple[float, float]:
        """One pass over the images: milliseconds and CPU milliseconds per image."""
        start, start_cpu = time.perf_counter(), time.process_time()
        for offset in range(0, len(self.inputs), CHUNK):
            results = self.pipeline.classify(self.model, self.inputs[offset : offset + CHUNK], self.model.spec.top_k)
            assert all(result.ok for result in results)
        count = len(self.inputs)
        return (time.perf_counter() - start) * 1000.0 / count, (time.process_time() - start_cpu) * 1000.0 / count


@dataclass
class Figures:
    """Of one local job setting, round by round: each job beside the in-process rounds run either side of it."""

    rates: list[float] = field(default_factory=list)  # images per second
    billed_ms: list[float] = field(default_factory=list)  # the worker's billed milliseconds per image
    cpu_ms: list[float] = field(default_factory=list)  # the worker processes' CPU milliseconds per image
    in_process_ms: list[float] = field(default_factory=list)  # the mean of the rounds before and after
    in_process_cpu_ms: list[float] = field(default_factory=list)

    @property
    def billed_ratio(self) -> float:
        return paired_ratio(self.billed_ms, self.in_process_ms)

    @property
    def cpu_ratio(self) -> float:
        return paired_ratio(self.cpu_ms, self.in_process_cpu_ms)


def paired_ratio(job: list[float], in_process: list[float]) -> float:
    """The median of the rounds' ratios: each job against the in-process rounds of the minutes it ran in."""
    return statistics.median(mine / theirs for mine, theirs in zip(job, in_process, strict=True))


def worker_cpu_seconds(api: LocalApi) -> float:
    """CPU time so far of the worker's execution environments (awslambdaric processes under samlocal)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"worker.lambda_handler" in command and int(fields[1]) == api.process.pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def local_job(data: list[bytes], workers: int, folder: Path, in_process: InProcess) -> Figures:
    """Images per second of each of ROUNDS jobs, the worker's billed milliseconds per image and its CPU ms per
    image; a round of the in-process pipeline before and after each job, while the stack is idle, so that both
    sides of each ratio come from the same minutes of a machine whose speed drifts."""
    log = folder / f"console-{workers}.log"
    overrides = f"WorkerBatchSize={BATCH_SIZE} WorkerMaxConcurrency={max(2, workers)}"
    api = LocalApi(
        ROOT / "template.yaml", log, "--warm-containers", "eager", "--no-reload",
        "--parameter-overrides", overrides, "--pool-size", f"WorkerFunction={workers}",
        env_vars={"WorkerFunction": {"INFERENCE_THREADS": "1"}},
    )  # fmt: skip
    try:
        s3 = boto3.client(
            "s3", endpoint_url=api.aws_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        bucket = next(entry["Name"] for entry in s3.list_buckets()["Buckets"] if "jobsbucket" in entry["Name"])
        for index, item in enumerate(data):
            s3.put_object(Bucket=bucket, Key=f"bench/{index:05d}.jpg", Body=item)
        # A first job warms every environment (model loading is a cold start, not a per-image cost).
        warm = run_job(api, {"input": [f"s3://{bucket}/bench/{index:05d}.jpg" for index in range(CHUNK * workers)]})
        assert warm["status"] == "succeeded", warm
        figures = Figures()
        previous = in_process.round()
        for _ in range(ROUNDS):
            before = len(REPORT.findall(api.output()))
            cpu_before = worker_cpu_seconds(api)
            document = run_job(api, {"input": f"s3://{bucket}/bench/"})
            assert document["counts"]["succeeded"] == len(data), document
            elapsed = _epoch(document["finished_at"]) - _epoch(document["created_at"])
            time.sleep(0.5)  # the last REPORT lines
            figures.cpu_ms.append((worker_cpu_seconds(api) - cpu_before) * 1000.0 / len(data))
            durations = [float(ms) for ms in REPORT.findall(api.output())[before:]]
            figures.billed_ms.append(sum(durations) / len(data))
            figures.rates.append(len(data) / elapsed)
            after = in_process.round()
            figures.in_process_ms.append((previous[0] + after[0]) / 2)
            figures.in_process_cpu_ms.append((previous[1] + after[1]) / 2)
            previous = after
        return figures
    finally:
        api.close()


def _epoch(moment: str) -> float:
    return datetime.datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def run_job(api: LocalApi, job: dict[str, Any]) -> dict[str, Any]:
    """The job's final status document. Polled twice a second: a status request costs a function invocation
    and a DynamoDB read on the machine's cores; the job's own timestamps time it, not the polls."""
    response = api.post("/jobs", json=job)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        document: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        if document["status"] in {"succeeded", "failed", "cancelled"}:
            return document
        time.sleep(0.5)
    raise SystemExit(f"job {job_id} did not finish:\n{api.output()[-3000:]}")


def cost_table(worker_ms: float) -> str:
    chunks = 1e6 / CHUNK
    invocations = chunks / BATCH_SIZE
    # SQS: SendMessageBatch of 10 chunks, one ReceiveMessage and one DeleteMessageBatch per invocation.
    sqs_requests = chunks / 10 + 2 * invocations
    s3_cost = 1e6 * S3_GET + (chunks + 1e6 / 1000) * S3_PUT  # image reads; part objects and LIST pages
    # Per invocation: one BatchGetItem (the job and each chunk's marker) and one transaction that writes each
    # chunk's marker and updates the job's counters (2 write units per item of a transaction); the job's own
    # end (one more read and write) is left out.
    dynamodb_cost = (chunks + invocations) * 2 * DYNAMODB_WRITE + invocations * (1 + BATCH_SIZE) * DYNAMODB_READ
    lines = [
        "| memory | arch | ms per image | Lambda compute | Lambda requests | SQS | S3 | DynamoDB | total per million |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for memory in MEMORY_SIZES:
        ms = worker_ms * max(1.0, ONE_VCPU_MB / memory)
        for arch, price in LAMBDA_GB_SECOND.items():
            compute = 1e6 * ms / 1000.0 * memory / 1024.0 * price
            requests = invocations * LAMBDA_REQUEST
            total = compute + requests + sqs_requests * SQS_REQUEST + s3_cost + dynamodb_cost
            lines.append(
                f"| {memory} MB | {arch} | {ms:.1f} | ${compute:.2f} | ${requests:.3f} | "
                f"${sqs_requests * SQS_REQUEST:.3f} | ${s3_cost:.2f} | ${dynamodb_cost:.2f} | **${total:.2f}** |"
            )
    assumptions = (
        f"\nAssumptions: us-east-1 prices: Lambda arm64 ${LAMBDA_GB_SECOND['arm64']:.10f}/GB-s, "
        f"x86_64 ${LAMBDA_GB_SECOND['x86_64']:.10f}/GB-s, ${LAMBDA_REQUEST * 1e6:.2f}/M requests;\n"
        f"SQS ${SQS_REQUEST * 1e6:.2f}/M requests of up to 10 messages; S3 GET ${S3_GET * 1000}/1000, "
        f"PUT and LIST ${S3_PUT * 1000}/1000;\nDynamoDB on-demand ${DYNAMODB_WRITE * 1e6}/M writes, "
        f"${DYNAMODB_READ * 1e6}/M reads.\n"
        "Worker time per image as measured here with one inference thread (this machine's CPU stands for both\n"
        f"architectures), scaled by {ONE_VCPU_MB}/memory below {ONE_VCPU_MB} MB (Lambda's share of a vCPU) and "
        "no faster above it.\n"
        f"{CHUNK} images per message, {BATCH_SIZE} messages per invocation, pages of 1000 keys; empty SQS polls, "
        "the API call, CloudWatch Logs and data transfer left out."
    )
    return "\n".join(lines) + "\n" + assumptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    data = images(args.images)
    in_process = InProcess(data)
    print(f"{args.images} images (the default classifier), chunks of {CHUNK}, one inference thread\n")
    jobs: dict[int, Figures] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in args.workers:
            jobs[workers] = local_job(data, workers, Path(scratch), in_process)
    print(
        "| local job | images/s | billed ms per image | in-process ms per image, same minutes | billed vs in-process "
        "| CPU ms per image | in-process CPU ms | CPU vs in-process |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    median = statistics.median
    for workers, job in jobs.items():
        print(
            f"| {workers} worker(s) | {median(job.rates):.1f} | {median(job.billed_ms):.1f} | "
            f"{median(job.in_process_ms):.1f} | {job.billed_ratio:.2f}x | {median(job.cpu_ms):.1f} | "
            f"{median(job.in_process_cpu_ms):.1f} | {job.cpu_ratio:.2f}x |"
        )
    single = jobs[1] if 1 in jobs else min(jobs.values(), key=lambda job: job.billed_ratio)
    ratio = single.billed_ratio
    print(
        "\nEach figure is the median of the setting's rounds; each ratio the median of the rounds' own ratios (a job "
        "against\nthe mean of the in-process rounds run just before and just after it, while the stack was idle)."
    )
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER"
    print(
        f"\nbatch path cost per image, one worker: {ratio:.2f}x the in-process pipeline "
        f"(target <= {TARGET_RATIO}x): {verdict}"
    )
    worker_ms = statistics.median(single.billed_ms)
    print(f"\nDollars per million images (worker ms per image {worker_ms:.1f} at one vCPU):\n")
    print(cost_table(worker_ms))
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
