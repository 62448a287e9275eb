"""How much the local API (samlocal/) adds over calling a handler directly, and its throughput.

For each case the same request is answered two ways: by calling the handler in this process with the event
the emulator builds, and over HTTP through `samlocal start-api` (gateway, Runtime API, awslambdaric worker
and back) on a keep-alive connection. The overhead is the difference of the medians; the budget is 1 ms. The
client is a minimal one, as load generators are, so that its own parsing is not counted; each gated case is
also measured with Python's `http.client`, for information.
Throughput is measured with 1, 4 and 16 concurrent clients, each on its own connection. Scaling: 8 parallel
requests to a handler that sleeps 1 s take about 1 s, each in an environment of its own (cold: started for
the burst; warm: the same burst again).

    .venv/bin/python scripts/bench_local.py [--requests 2000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from samlocal.offline import EventFactory

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD_BUDGET_MS = 1.0
CLIENTS = (1, 4, 16)
PARALLEL = 8
SLEEP_SECONDS = 1.0
# 8 parallel 1 s requests to warm environments within this many seconds: in parallel, not queued. The cold
# burst (7 environments started for it) is reported only: its init time is the machine's.
PARALLEL_BUDGET_S = 1.5

MINIMAL_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: bench}
  MinimalFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ./
      Handler: minimal.handler
      Runtime: python3.13
      Timeout: 10
      Events:
        Ping: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /ping, Method: get}}
  SleepFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ./
      Handler: minimal.sleep
      Runtime: python3.13
      Timeout: 10
      Events:
        Sleep: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /sleep, Method: get}}
"""
MINIMAL_HANDLER = """\
import time


def handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


def sleep(event, context):
    time.sleep(float(event["queryStringParameters"]["seconds"]))
    return {"statusCode": 200, "body": "slept"}
"""


class Case:
    def __init__(
        self, name: str, method: str, path: str, headers: dict[str, str], body: bytes = b"", *, gated: bool = True
    ) -> None:
        self.name = name
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        # A gated case fails the benchmark above the budget; an upload's case also pays for moving its
        # body (base64 and JSON on the way in, as API Gateway and the runtime do), so it is reported only.
        self.gated = gated


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_emulator(template: Path, max_concurrency: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = Path(tempfile.mkstemp(prefix="bench-local-", suffix=".log")[1])
    command = [sys.executable, "-m", "samlocal", "start-api", "-t", str(template), "-p", "0", "--quiet", "--no-reload"]
    command += ["--max-concurrency", str(max_concurrency), "--warm-containers", "eager"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"Serving \S+ on http://[^:]+:(\d+)", log.read_text())
        if match:
            wait_until_settled(process)
            return process, int(match.group(1)), log
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"samlocal did not start:\n{log.read_text()}")


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user and system) of a process and every process below it."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        total += times.get(pid, 0.0)
        pending += [child for child, parent in parents.items() if parent == pid]
    return total


def wait_until_settled(process: subprocess.Popen[bytes], window: float = 0.5, busy: float = 0.1) -> None:
    """Until the emulator and its environments use under `busy` of a CPU: the eager environments of every
    function have finished their init, which would otherwise be measured as latency (at most 120 s)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(process.pid)
        time.sleep(window)
        if tree_cpu_seconds(process.pid) - before < busy * window:
            return


class Client:
    """A keep-alive HTTP/1.1 client on one connection that sends a prepared request and reads the status line,
    the headers and the Content-Length body of each answer, as load generators (wrk, hey) do: the latency
    measured is the local API's, not the client's own parsing (`http.client` spends 0.1-0.25 ms a request
    here, shown beside each gated case)."""

    def __init__(self, port: int, case: Case) -> None:
        self.case = case
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.socket.makefile("rb")
        lines = [f"{case.method} {case.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in case.headers.items()]
        if case.body:
            lines.append(f"Content-Length: {len(case.body)}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + case.body

    def call(self) -> None:
        self.socket.sendall(self.request)
        status_line = self.reader.readline()
        status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/1.1 ") else 0
        length = None
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None or len(self.reader.read(length)) != length:
            raise SystemExit(f"{self.case.name}: an answer without its whole Content-Length body")
        if status != 200:
            raise SystemExit(f"{self.case.name}: HTTP {status_line.decode('latin-1').strip()}")

    def close(self) -> None:
        self.reader.close()
        self.socket.close()


def stdlib_call(connection: http.client.HTTPConnection, case: Case) -> None:
    connection.request(case.method, case.path, body=case.body or None, headers=case.headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{case.name}: HTTP {response.status}")


def timed(call: Callable[[], None], count: int) -> list[float]:
    """Milliseconds of each of `count` calls, after up to 50 to warm up."""
    for _ in range(min(50, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def http_latencies(port: int, case: Case, count: int) -> list[float]:
    client = Client(port, case)
    try:
        return timed(client.call, count)
    finally:
        client.close()


def stdlib_latencies(port: int, case: Case, count: int) -> list[float]:
    """The same request with `http.client`, Python's own client: how much of a request is the client's."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        return timed(lambda: stdlib_call(connection, case), count)
    finally:
        connection.close()


@contextlib.contextmanager
def output_discarded() -> Iterator[None]:
    """The function's logs and metrics go nowhere, as the quiet workers' do (file descriptor 1 itself, since
    the logger holds on to the stream it started with)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with Path(os.devnull).open("wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def direct_latencies(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], count: int) -> list[float]:
    with output_discarded():
        return _direct_latencies(handler, event, count)


def _direct_latencies(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], count: int) -> list[float]:
    context = _Context()
    for _ in range(min(50, count)):
        handler(event, context)
    samples = []
    for _ in range(count):
        copy = json.loads(json.dumps(event))  # a fresh event, as a runtime would decode it
        started = time.perf_counter()
        handler(copy, context)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class _Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 2048
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 28000


def event_for(template: Path, case: Case) -> dict[str, Any]:
    headers = [("Host", "127.0.0.1"), *case.headers.items()]
    return EventFactory(template).event(case.method, case.path, headers, case.body)


def throughput(port: int, case: Case, clients: int, seconds: float) -> tuple[float, float]:
    """Requests per second and median latency (ms) with `clients` concurrent keep-alive clients."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = [0.0]
    # The clock starts once every client has had its first answer (a cold start, for a new environment).
    barrier = threading.Barrier(clients, action=lambda: stop.__setitem__(0, time.monotonic() + seconds))

    def client(index: int) -> None:
        connection = Client(port, case)
        connection.call()
        barrier.wait()
        while time.monotonic() < stop[0]:
            started = time.perf_counter()
            connection.call()
            latencies[index].append((time.perf_counter() - started) * 1000)
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = seconds
    every = [sample for samples in latencies for sample in samples]
    return len(every) / elapsed, statistics.median(every)


def parallel_burst(port: int, count: int, seconds: float) -> float:
    """Wall time of `count` simultaneous requests to the sleeping handler, each on its own connection."""
    barrier = threading.Barrier(count + 1)
    case = Case("sleep", "GET", f"/sleep?seconds={seconds}", {})

    def client() -> None:
        connection = Client(port, case)
        barrier.wait()
        connection.call()
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def app_cases() -> list[Case]:
    sys.path[:0] = [str(ROOT / "scripts")]
    from sample_images import rotated_page  # noqa: PLC0415 - development helpers, only when the app exists

    page = rotated_page(0, "JPEG")
    return [
        Case("app GET /health", "GET", "/health", {}),
        Case(
            f"app POST /predict ({len(page) // 1024} KB JPEG)",
            "POST",
            "/predict",
            {"Content-Type": "image/jpeg"},
            page,
            gated=False,
        ),
    ]


def load_app_handler() -> Callable[[dict[str, Any], Any], Any]:
    os.environ.setdefault("MODELS_DIR", str(ROOT / "layers" / "models" / "models"))
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-vision")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LambdaVision")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.path[:0] = [str(ROOT / "functions" / "inference"), str(ROOT / "layers" / "core" / "python")]
    module = importlib.import_module("app")
    handler: Callable[[dict[str, Any], Any], Any] = module.lambda_handler
    return handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential requests per latency measurement")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput measurement")
    parser.add_argument(
        "--max-concurrency", type=int, default=16, help="environments per function (at least the most clients)"
    )
    parser.add_argument("--no-app", action="store_true", help="only the minimal handler")
    args = parser.parse_args()

    rows: list[str] = []
    throughput_rows: list[str] = []
    parallel_rows: list[str] = []
    over_budget = False
    with tempfile.TemporaryDirectory(prefix="bench-local-") as scratch:
        folder = Path(scratch)
        (folder / "template.yaml").write_text(MINIMAL_TEMPLATE)
        (folder / "minimal.py").write_text(MINIMAL_HANDLER)
        sys.path.insert(0, scratch)
        suites: list[tuple[Path, list[Case], Callable[[dict[str, Any], Any], Any]]] = [
            (folder / "template.yaml", [Case("minimal handler GET /ping", "GET", "/ping", {})], _minimal_handler())
        ]
        if not args.no_app and (ROOT / "functions" / "inference" / "app.py").exists():
            suites.append((ROOT / "template.yaml", app_cases(), load_app_handler()))

        for template, cases, handler in suites:
            process, port, log = start_emulator(template, args.max_concurrency)
            try:
                if template == folder / "template.yaml":
                    over_budget |= parallel_rows_into(parallel_rows, port)
                for case in cases:
                    count = args.requests if "predict" not in case.path else max(50, args.requests // 10)
                    direct = direct_latencies(handler, event_for(template, case), count)
                    over_http = http_latencies(port, case, count)
                    over_budget |= case.gated and overhead_ms(direct, over_http) > OVERHEAD_BUDGET_MS
                    rows.append(overhead_row(case.name, direct, over_http, gated=case.gated))
                    if case.gated:
                        stdlib = stdlib_latencies(port, case, count)
                        rows.append(
                            overhead_row(f"{case.name}, with http.client as the client", direct, stdlib, bold=False)
                        )
                    # One environment per client: the app's (a few hundred MB each) stop at 4.
                    for clients in CLIENTS if template == folder / "template.yaml" else CLIENTS[:2]:
                        seconds = args.seconds if "predict" not in case.path else args.seconds * 2
                        rate, median = throughput(port, case, clients, seconds)
                        throughput_rows.append(f"| {case.name} | {clients} | {rate:,.0f} | {median:.2f} |")
            finally:
                process.terminate()
                process.wait(timeout=15)
                log.unlink(missing_ok=True)

    return report(rows, throughput_rows, parallel_rows, args.max_concurrency, over_budget)


def overhead_ms(direct: list[float], over_http: list[float]) -> float:
    return statistics.median(over_http) - statistics.median(direct)


def overhead_row(
    name: str, direct: list[float], over_http: list[float], *, gated: bool = False, bold: bool = True
) -> str:
    overhead = f"{overhead_ms(direct, over_http):.3f}"
    shown = (f"**{overhead}**" if bold else overhead) + ("" if gated else " (info)")
    return (
        f"| {name} | {statistics.median(direct):.3f} | {statistics.median(over_http):.3f} "
        f"| {percentile(over_http, 0.99):.3f} | {shown} |"
    )


def parallel_rows_into(rows: list[str], port: int) -> bool:
    """A cold and a warm burst of parallel requests; True if either is over its budget."""
    over_budget = False
    for burst, gated in (("cold (1 warm, 7 started)", False), ("warm", True)):
        elapsed = parallel_burst(port, PARALLEL, SLEEP_SECONDS)
        over_budget |= gated and elapsed > PARALLEL_BUDGET_S
        rows.append(
            f"| {PARALLEL} parallel GET /sleep ({SLEEP_SECONDS:g} s handler), {burst} "
            f"| {'**' if gated else ''}{elapsed:.2f}{'**' if gated else ' (info)'} | {PARALLEL * SLEEP_SECONDS:.0f} |"
        )
    return over_budget


def report(
    rows: list[str], throughput_rows: list[str], parallel_rows: list[str], max_concurrency: int, over_budget: bool
) -> int:
    print(f"\nLocal API overhead (p50 over HTTP - p50 direct; budget {OVERHEAD_BUDGET_MS} ms), {os.cpu_count()} CPUs")
    print("\n| case | direct p50 ms | HTTP p50 ms | HTTP p99 ms | overhead p50 ms |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nThroughput (up to {max_concurrency} environments per function, keep-alive clients)")
    print("\n| case | clients | requests/s | p50 ms |")
    print("|---|---:|---:|---:|")
    print("\n".join(throughput_rows))
    print(f"\nParallel requests (budget {PARALLEL_BUDGET_S:g} s when warm)")
    print("\n| case | wall time s | one at a time s |")
    print("|---|---:|---:|")
    print("\n".join(parallel_rows))
    if over_budget:
        print(
            f"\nOVER BUDGET: more than {OVERHEAD_BUDGET_MS} ms of overhead per request (p50), "
            f"or {PARALLEL} parallel requests to warm environments slower than {PARALLEL_BUDGET_S:g} s"
        )
        return 1
    print(
        f"\nWithin budget: under {OVERHEAD_BUDGET_MS} ms of overhead per request (p50); "
        f"{PARALLEL} parallel requests in parallel"
    )
    return 0


def _minimal_handler() -> Callable[[dict[str, Any], Any], Any]:
    module = importlib.import_module("minimal")
    handler: Callable[[dict[str, Any], Any], Any] = module.handler
    return handler


if __name__ == "__main__":
    raise SystemExit(main())
