"""Execution environments: real Lambda runtime workers (`awslambdaric`), kept warm and reused.

An environment is one worker process started with `python -m awslambdaric <handler>` against the
emulator's Runtime API. It serves one invocation at a time. A function's pool runs up to `size`
environments at once; a request waits for a free one (its wait counts against the integration timeout).
An environment that times out is killed and replaced, as is one whose process dies. After a code change an
environment is retired when it next becomes idle, so no request is cut short by a reload.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from samlocal.console import Console
from samlocal.runtime_api import RuntimeApiServer
from samlocal.sandbox import worker_environment
from samlocal.template import Function

# Lambda's synchronous invocation limits: 6 MiB for the request, 6 MiB + 100 bytes for the response.
REQUEST_PAYLOAD_LIMIT = 6 * 1024 * 1024
RESPONSE_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100
# Lambda gives the init phase 10 s; past that, init is retried inside the invocation's own timeout.
INIT_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class Outcome:
    """How an invocation ended: a result payload, or a function error (API Gateway answers 502)."""

    payload: bytes
    error_type: str | None = None
    status: str | None = None  # REPORT's Status: timeout, error

    @property
    def ok(self) -> bool:
        return self.error_type is None


def _error_outcome(error_type: str, message: str, status: str = "error") -> Outcome:
    payload = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return Outcome(payload, error_type, status)


class Invocation:
    __slots__ = (
        "_done",
        "_lock",
        "deadline",
        "deadline_epoch_ms",
        "delivered_at",
        "finished_at",
        "outcome",
        "payload",
        "request_id",
        "timeout",
        "trace_id",
    )

    def __init__(self, request_id: str, payload: bytes, timeout: float, trace_id: str) -> None:
        self.request_id = request_id
        self.payload = payload
        self.timeout = timeout
        self.trace_id = trace_id
        self.deadline = math.inf
        self.deadline_epoch_ms = 0
        self.delivered_at: float | None = None
        self.finished_at: float | None = None
        self.outcome: Outcome | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()

    def deliver(self) -> None:
        self.delivered_at = time.monotonic()
        self.deadline = self.delivered_at + self.timeout
        self.deadline_epoch_ms = int((time.time() + self.timeout) * 1000)

    def complete(self, outcome: Outcome) -> bool:
        """Records the outcome; False if the invocation had already ended (a late answer)."""
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
            self.finished_at = time.monotonic()
        self._done.set()
        return True

    def wait(self, timeout: float) -> Outcome | None:
        self._done.wait(max(timeout, 0.0))
        return self.outcome


def _peak_memory_mb(pid: int) -> int | None:
    try:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


class Environment:
    """One warm execution environment: a runtime process and the Runtime API serving it."""

    def __init__(self, pool: FunctionPool, number: int) -> None:
        self.pool = pool
        self.function = pool.function
        self.function_arn = pool.function.arn
        self.number = number
        self.generation = pool.generation
        self.started = time.monotonic()
        self.ready = False  # the runtime finished init and asked for work
        self.dead = False
        self.current: Invocation | None = None
        self.init_duration_ms: float | None = None
        self._init_reported = False
        self._init_error: tuple[str, bytes] | None = None
        self._pending: Invocation | None = None
        self._cond = threading.Condition()
        self.server = RuntimeApiServer(self)
        log_stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + os.urandom(16).hex()
        environment = worker_environment(self.function, pool.opt_dir, self.server.address, pool.env_vars, log_stream)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", self.function.handler],
                cwd=self.function.code_dir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal stops the emulator, which stops its workers
            )
        except OSError:
            self.server.close()
            raise
        pool.console.debug(f"{self.function.logical_id}: environment {number} started (pid {self.process.pid})")
        assert self.process.stdout is not None
        threading.Thread(target=self._pump_output, args=(self.process.stdout,), daemon=True).start()

    # Gateway side ---------------------------------------------------------------------------------

    def submit(self, invocation: Invocation) -> bool:
        """Queues the invocation for the runtime's next `next`; False if the environment has stopped."""
        with self._cond:
            if self.dead:
                return False
            self._pending = invocation
            self._cond.notify()
            return True

    def stop(self) -> None:
        """Stops the environment now (retired, timed out, or the emulator is stopping)."""
        with self._cond:
            self.dead = True
            self._cond.notify_all()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.server.close()

    def overdue_init(self, now: float) -> Invocation | None:
        """The invocation waiting on an init that outlived Lambda's init limit plus the function timeout."""
        with self._cond:
            if self.ready or self._pending is None:
                return None
            if now - self.started <= INIT_TIME_LIMIT + self.function.timeout:
                return None
            return self._pending

    # Runtime API side -----------------------------------------------------------------------------

    def next_invocation(self) -> Invocation | None:
        with self._cond:
            if not self.ready:
                self.ready = True
                self.init_duration_ms = (time.monotonic() - self.started) * 1000
            while self._pending is None and not self.dead:
                self._cond.wait()
            invocation = self._pending
            if self.dead or invocation is None:
                return None
            self._pending = None
            invocation.deliver()
            self.current = invocation
        self.pool.console.function(self.function.name, f"START RequestId: {invocation.request_id} Version: $LATEST")
        return invocation

    def _take_current(self, request_id: str) -> Invocation | None:
        with self._cond:
            invocation = self.current
            if invocation is None or invocation.request_id != request_id:
                return None
            self.current = None
            return invocation

    def invocation_response(self, request_id: str, payload: bytes) -> bool:
        invocation = self._take_current(request_id)
        if invocation is None:
            return False
        if len(payload) > RESPONSE_PAYLOAD_LIMIT:
            outcome = _error_outcome(
                "Function.ResponseSizeTooLarge",
                f"Response payload size exceeded maximum allowed payload size ({RESPONSE_PAYLOAD_LIMIT} bytes).",
            )
        else:
            outcome = Outcome(payload)
        self._finish(invocation, outcome)
        return True

    def invocation_error(self, request_id: str, error_type: str, payload: bytes) -> bool:
        invocation = self._take_current(request_id)
        if invocation is None:
            return False
        self._finish(invocation, Outcome(payload, error_type or "Unhandled", "error"))
        return True

    def init_error(self, error_type: str, payload: bytes) -> None:
        self._init_error = (error_type, payload)
        self.pool.console.function(self.function.name, f"INIT_REPORT Status: error\tError Type: {error_type}")

    # Endings ------------------------------------------------------------------------------------------

    def time_out(self, invocation: Invocation) -> None:
        """The function ran past its Timeout: the environment is killed and replaced, as Lambda does."""
        with self._cond:
            if self.current is not invocation and self._pending is not invocation:
                return
            self.current = self._pending = None
        self.stop()
        message = f"Task timed out after {self.function.timeout:.2f} seconds"
        self.pool.console.function(
            self.function.name,
            f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {invocation.request_id} {message}",
        )
        self._finish(invocation, _error_outcome("Sandbox.Timedout", message, status="timeout"))

    def _pump_output(self, stream: IO[bytes]) -> None:
        name = self.function.name
        console = self.pool.console
        for raw in iter(stream.readline, b""):
            console.function(name, raw.decode("utf-8", errors="replace").rstrip("\n").replace("\r", "\n"))
        stream.close()
        code = self.process.wait()
        self._exited(code)

    def _exited(self, code: int) -> None:
        with self._cond:
            was_stopped = self.dead
            self.dead = True
            invocation = self.current or self._pending
            self.current = self._pending = None
            self._cond.notify_all()
        self.server.close()
        if invocation is not None:
            if self._init_error is not None:
                error_type, payload = self._init_error
                outcome = Outcome(payload, error_type, "error")
            else:
                reason = f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                self.pool.console.function(self.function.name, f"Runtime exited with error: {reason}")
                outcome = _error_outcome("Runtime.ExitError", f"Runtime exited with error: {reason}")
            self._finish(invocation, outcome)
        elif not was_stopped:
            self.pool.console.function(self.function.name, f"execution environment exited (status {code})")
        self.pool.remove(self)

    def _finish(self, invocation: Invocation, outcome: Outcome) -> None:
        # The caller took the invocation from this environment, so it ends here once. The environment is
        # free again before the client hears back: the client's next request must find it warm.
        self.pool.release(self)
        if invocation.complete(outcome):
            self._report(invocation, outcome)

    def _report(self, invocation: Invocation, outcome: Outcome) -> None:
        function = self.function
        started = invocation.delivered_at or invocation.finished_at or 0.0
        duration = ((invocation.finished_at or started) - started) * 1000
        fields = [
            f"REPORT RequestId: {invocation.request_id}",
            f"Duration: {duration:.2f} ms",
            f"Billed Duration: {max(1, math.ceil(duration))} ms",
            f"Memory Size: {function.memory_size} MB",
            f"Max Memory Used: {_peak_memory_mb(self.process.pid) or '-'} MB",
        ]
        if not self._init_reported and self.init_duration_ms is not None:
            self._init_reported = True
            fields.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if outcome.status:
            fields.append(f"Status: {outcome.status}")
            if outcome.status == "error" and outcome.error_type:
                fields.append(f"Error Type: {outcome.error_type}")
        self.pool.console.function(function.name, f"END RequestId: {invocation.request_id}\n" + "\t".join(fields))


class PoolClosedError(Exception):
    """The emulator is stopping."""


class FunctionPool:
    """Up to `size` warm environments of one function, each serving one invocation at a time."""

    def __init__(
        self,
        function: Function,
        *,
        size: int,
        opt_dir: Path,
        env_vars: Mapping[str, Mapping[str, str]],
        console: Console,
    ) -> None:
        self.function = function
        self.size = max(1, size)
        self.opt_dir = opt_dir
        self.env_vars = env_vars
        self.console = console
        self.generation = 0
        self.environments: list[Environment] = []
        self._idle: list[Environment] = []
        self._cond = threading.Condition()
        self._closed = False
        self._started = 0

    def _spawn(self) -> Environment:
        self._started += 1
        environment = Environment(self, self._started)
        self.environments.append(environment)
        return environment

    def warm(self) -> None:
        """Starts one environment now, so the first request finds it initialized (or its init error shown)."""
        with self._cond:
            if not self._closed and len(self.environments) < self.size:
                self._idle.append(self._spawn())

    def invoke(self, invocation: Invocation, wait_until: float) -> bool:
        """Hands the invocation to a free environment; False if none became free before `wait_until`."""
        while True:
            environment = self._acquire(wait_until)
            if environment is None:
                return False
            if environment.submit(invocation):
                return True
            self.remove(environment)  # it stopped while idle: take another one

    def _acquire(self, wait_until: float) -> Environment | None:
        with self._cond:
            while True:
                if self._closed:
                    raise PoolClosedError
                if self._idle:
                    ready = [environment for environment in self._idle if environment.ready]
                    environment = ready[-1] if ready else self._idle[-1]
                    self._idle.remove(environment)
                    return environment
                if len(self.environments) < self.size:
                    return self._spawn()
                remaining = wait_until - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def release(self, environment: Environment) -> None:
        retire = False
        with self._cond:
            if environment.dead:
                self._forget(environment)
            elif self._closed or environment.generation != self.generation:
                self._forget(environment)
                retire = True
            elif environment not in self._idle:
                self._idle.append(environment)
            self._cond.notify()
        if retire:
            environment.stop()

    def remove(self, environment: Environment) -> None:
        with self._cond:
            self._forget(environment)
            self._cond.notify()

    def _forget(self, environment: Environment) -> None:
        if environment in self.environments:
            self.environments.remove(environment)
        if environment in self._idle:
            self._idle.remove(environment)

    def reload(self, warm: bool) -> None:
        """The code changed: idle environments stop now, busy ones when their invocation ends."""
        with self._cond:
            self.generation += 1
            idle, self._idle = self._idle, []
            for environment in idle:
                self._forget(environment)
        for environment in idle:
            environment.stop()
        if warm:
            self.warm()

    def overdue(self, now: float) -> list[tuple[Environment, Invocation]]:
        """Invocations past their function timeout, or waiting on an init past its limit."""
        with self._cond:
            environments = list(self.environments)
        found = []
        for environment in environments:
            invocation = environment.current
            if invocation is not None and now > invocation.deadline:
                found.append((environment, invocation))
            elif (waiting := environment.overdue_init(now)) is not None:
                found.append((environment, waiting))
        return found

    def close(self) -> None:
        with self._cond:
            self._closed = True
            environments = list(self.environments)
            self.environments.clear()
            self._idle.clear()
            self._cond.notify_all()
        for environment in environments:
            environment.stop()
        for environment in environments:
            with contextlib.suppress(subprocess.TimeoutExpired):
                environment.process.wait(timeout=5)


class Watchdog:
    """Enforces each function's Timeout (and the init limit) on running invocations."""

    def __init__(self, pools: Iterable[FunctionPool], interval: float = 0.05) -> None:
        self.pools = list(pools)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            for pool in self.pools:
                for environment, invocation in pool.overdue(now):
                    environment.time_out(invocation)
