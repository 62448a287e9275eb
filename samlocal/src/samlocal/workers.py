"""Execution environments: real Lambda runtime workers (`awslambdaric`), started on demand and kept warm.

An environment is one worker process running awslambdaric's loop (`python -m samlocal.runtime <handler>`,
see there) against the emulator's Runtime API. It serves one invocation at a time. A function's pool scales
as Lambda does: an invocation goes to an idle environment, or to a new one (a cold start) when all are busy,
up to the function's concurrency limit (`--max-concurrency`, capped by the template's
ReservedConcurrentExecutions).
At the limit a synchronous invocation is throttled at once (Lambda's 429 TooManyRequestsException), so no
request ever waits for a free environment. Idle environments stay warm and are stopped after an idle period.

Faults, as Lambda handles them or better:
- The function's Timeout: the environment is killed and replaced (`Task timed out`).
- MemorySize: an environment whose process tree's resident memory passes it is killed (`Runtime.OutOfMemory`).
- A crash during an invocation: `Runtime.ExitError`.
- An environment that can no longer take work (its process died, was stopped, or does not ask for the next
  invocation in time): nothing was delivered, so the invocation goes to another environment.
After a code change an environment is retired when it next becomes idle, so no request is cut short by a reload.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from samlocal.console import Console
from samlocal.memory import MemoryWatcher, peak_kb, reset_peak, to_mb
from samlocal.runtime_api import RuntimeApiServer, closed_unread, next_response, peer_open, unread_by_peer
from samlocal.sandbox import worker_environment
from samlocal.template import Function

# Lambda's synchronous invocation limits: 6 MiB for the request, 6 MiB + 100 bytes for the response.
REQUEST_PAYLOAD_LIMIT = 6 * 1024 * 1024
RESPONSE_PAYLOAD_LIMIT = 6 * 1024 * 1024 + 100
# Lambda gives the init phase 10 s; past that, init is retried inside the invocation's own timeout.
INIT_TIME_LIMIT = 10.0
DEFAULT_MAX_CONCURRENCY = 10
# Lambda keeps an idle environment for minutes (not documented; 5 to 15 are observed).
DEFAULT_IDLE_TIMEOUT = 300.0
# A warm runtime asks for its next invocation within a millisecond of answering the last one; one that has
# not within this long is stopped or stuck, and its queued invocation goes elsewhere.
PICKUP_LIMIT = 2.0
# A runtime found stopped this long after its invocation was sent is checked for having read it at all.
_UNREAD_CHECK_AFTER = 0.2
# How many environments an undelivered invocation is offered to before it fails.
_DELIVERY_ATTEMPTS = 3


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


class ThrottledError(Exception):
    """Every environment the function may run is busy: Lambda throttles (429 TooManyRequestsException)."""

    def __init__(self, function_id: str, limit: int, reason: str) -> None:
        super().__init__(f"{function_id}: Rate Exceeded. ({reason})")
        self.function_id = function_id
        self.limit = limit
        self.reason = reason


class Invocation:
    __slots__ = (
        "_done",
        "_lock",
        "attempts",
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
        self.attempts = 0
        # Held until the outcome is recorded: a waiter blocks on it (cheaper than an Event's condition).
        self._done = threading.Lock()
        self._done.acquire()
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
        self._done.release()
        return True

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome, or None if there is none after `timeout` seconds; any number of waits, in any threads."""
        if self._done.acquire(timeout=max(timeout, 0.0)):
            self._done.release()  # for the next waiter
        return self.outcome


def _stopped(pid: int) -> bool:
    """True while the worker (a child of this process) is stopped (SIGSTOP): it would never answer."""
    try:
        # WNOWAIT leaves the state to be seen again; a microsecond, where /proc/<pid>/stat costs tens.
        return os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False  # already reaped: its closed connection tells


def _exit_reason(code: int) -> str:
    if code < 0:
        return "signal: killed" if code == -signal.SIGKILL else f"signal: {signal.Signals(-code).name}"
    return f"exit status {code}"


class Environment:
    """One execution environment: a runtime process and the Runtime API serving it."""

    def __init__(self, pool: FunctionPool, number: int) -> None:
        self.pool = pool
        self.function = pool.function
        self.function_arn = pool.function.arn
        self.number = number
        self.generation = pool.generation
        self.started = time.monotonic()
        self.idle_since = self.started
        self.ready = False  # the runtime finished init and asked for work
        self.dead = False
        self.current: Invocation | None = None
        self.invocations = 0
        self.init_duration_ms: float | None = None
        self.memory_limit_kb = pool.function.memory_size * 1024 if pool.memory_limit else None
        self.peak_kb = 0  # during the current invocation (sampled over the process tree)
        self.lifetime_peak_kb = 0
        self._out_of_memory_kb: int | None = None
        self._init_reported = False
        self._init_error: tuple[str, bytes] | None = None
        self._pending: Invocation | None = None
        self._pending_since = 0.0
        self._parked: socket.socket | None = None  # the runtime's `next`, waiting for work
        self._delivered_on: socket.socket | None = None  # the connection the current invocation went out on
        self._in_transit: Invocation | None = None  # taken from `submit`, not yet written to the runtime
        self._cond = threading.Condition()
        self.server = RuntimeApiServer(self)
        log_stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + os.urandom(16).hex()
        environment = worker_environment(self.function, pool.opt_dir, self.server.address, pool.env_vars, log_stream)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "samlocal.runtime", self.function.handler],
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
        self.pid = self.process.pid
        pool.console.debug(f"{self.function.logical_id}: environment {number} started (pid {self.pid})")
        pool.watcher.activate(self)  # init counts against MemorySize too
        assert self.process.stdout is not None
        threading.Thread(target=self._pump_output, args=(self.process.stdout,), daemon=True).start()

    # Gateway side ---------------------------------------------------------------------------------

    def submit(self, invocation: Invocation) -> bool:
        """Delivers the invocation to the runtime waiting in `next`, or queues it for its next `next`; False if
        the environment has stopped."""
        with self._cond:
            if self.dead:
                return False
            connection = self._parked
            if connection is None:
                self._pending = invocation
                self._pending_since = time.monotonic()
                return True
            self._parked = None
            self._take(invocation, connection)
            self._in_transit = invocation
        self._send(invocation, connection)
        return True

    def _take(self, invocation: Invocation, connection: socket.socket) -> None:
        invocation.deliver()
        self.current = invocation
        self._delivered_on = connection
        self.invocations += 1

    def _send(self, invocation: Invocation, connection: socket.socket) -> None:
        """Answers the parked `next` with the invocation; a runtime no longer there gets nothing, and the
        invocation goes to another environment."""
        # A stopped or dead process would never answer.
        reachable = not _stopped(self.pid) and peer_open(connection)
        with self._cond:
            if self.current is not invocation:
                return  # the process exited meanwhile, and the invocation went elsewhere
            if not reachable:
                self.current = self._in_transit = None
        if not reachable:
            self._abandon(invocation, "its runtime is stopped or gone")
            return
        self._started(invocation)
        with contextlib.suppress(OSError):  # a runtime that dies now resets the connection: see `_exited`
            connection.sendall(next_response(invocation, self.function_arn))
        with self._cond:  # in transit until written: a process that exits before then never saw it
            if self._in_transit is invocation:
                self._in_transit = None

    def _started(self, invocation: Invocation) -> None:
        self.peak_kb = 0
        self.pool.watcher.activate(self)
        if not self.pool.console.quiet:
            self.pool.console.function(self.function.name, f"START RequestId: {invocation.request_id} Version: $LATEST")

    def stop(self) -> None:
        """Stops the environment now (retired, timed out, out of memory, or the emulator is stopping)."""
        with self._cond:
            self.dead = True
            self._cond.notify_all()
        self.pool.watcher.forget(self)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.server.close()

    def overdue_init(self, now: float) -> Invocation | None:
        """The invocation waiting on an init that outlived Lambda's init limit plus the function timeout."""
        with self._cond:
            if self.ready or self._pending is None:
                return None
            if now - self.started <= INIT_TIME_LIMIT + self.function.timeout:
                return None
            return self._pending

    def stalled(self, now: float) -> Invocation | None:
        """The invocation queued for a warm runtime that has not asked for it within PICKUP_LIMIT."""
        with self._cond:
            if not self.ready or self.dead or self._pending is None:
                return None
            if now - self._pending_since <= PICKUP_LIMIT:
                return None
            return self._pending

    def unread(self, now: float) -> Invocation | None:
        """The current invocation, if the runtime was stopped before it read it (sent, never received)."""
        with self._cond:
            invocation, connection = self.current, self._delivered_on
        if invocation is None or connection is None or invocation.delivered_at is None:
            return None
        if now - invocation.delivered_at < _UNREAD_CHECK_AFTER or not _stopped(self.pid):
            return None
        return invocation if unread_by_peer(connection) > 0 else None

    def abandon_unread(self, invocation: Invocation) -> None:
        with self._cond:
            if self.current is not invocation:
                return
            self.current = None
        self._abandon(invocation, "its runtime was stopped before it read the invocation")

    # Runtime API side -----------------------------------------------------------------------------

    def next_invocation(self, connection: socket.socket) -> Invocation | None:
        """The runtime asks for work: the invocation waiting for it, or None (parked until `submit`)."""
        with self._cond:
            if not self.ready:
                self.ready = True
                self.init_duration_ms = (time.monotonic() - self.started) * 1000
                reset_peak(self.pid)  # the first invocation's peak starts after init
            if self.dead:
                return None
            invocation = self._pending
            if invocation is None:
                self._parked = connection
                self.pool.watcher.deactivate(self)
                return None
            self._pending = None
            self._take(invocation, connection)
        self._started(invocation)
        return invocation

    def connection_closed(self, connection: socket.socket, unread: bool) -> bool:
        with self._cond:
            if self._parked is connection:
                self._parked = None
            invocation = self.current
            if invocation is None or self._delivered_on is not connection:
                return False
            if not unread:
                # An end of stream: the invocation may still be on its way (written just after the runtime
                # closed); `_exited` looks at the socket once the process is gone, and closes it.
                return True
            # The process closed the connection without reading its invocation: it died before the handler ran.
            self.current = None
        self._abandon(invocation, "its runtime exited before reading the invocation")
        return False

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

    # Memory (called by the watcher) ---------------------------------------------------------------------

    def memory_sample(self, kb: int) -> None:
        self.peak_kb = max(self.peak_kb, kb)
        self.lifetime_peak_kb = max(self.lifetime_peak_kb, kb)

    def out_of_memory(self, kb: int) -> None:
        """The process tree passed MemorySize: killed, as Lambda's sandbox is."""
        self._out_of_memory_kb = kb
        self.memory_sample(kb)
        self.pool.console.debug(
            f"{self.function.logical_id}: environment {self.number} uses {to_mb(kb)} MB, "
            f"above its MemorySize of {self.function.memory_size} MB: killed"
        )
        with self._cond:
            self.dead = True
            self._cond.notify_all()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

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

    def abandon_stalled(self, invocation: Invocation) -> None:
        """The warm runtime did not take its queued invocation: stop it, and deliver the invocation elsewhere."""
        with self._cond:
            if self._pending is not invocation:
                return
            self._pending = None
        self._abandon(invocation, f"it did not ask for the next invocation within {PICKUP_LIMIT:g} s")

    def _abandon(self, invocation: Invocation, why: str) -> None:
        self.pool.console.info(
            f"{self.function.logical_id}: environment {self.number} (pid {self.pid}) is replaced: {why}; "
            f"request {invocation.request_id} goes to another environment"
        )
        self.stop()
        self.pool.remove(self)
        self.pool.redeliver(invocation)

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
            was_stopped = self.dead and self._out_of_memory_kb is None
            self.dead = True
            running, pending = self.current, self._pending
            if running is not None and running is self._in_transit:
                running, pending = None, running  # never written to the runtime
            elif running is not None and self._delivered_on is not None and closed_unread(self._delivered_on):
                running, pending = None, running  # written, but never read: as good as queued
            if self._delivered_on is not None:
                self._delivered_on.close()  # kept open by `connection_closed` for the check above
            self.current = self._pending = None
            self._cond.notify_all()
        self.pool.watcher.forget(self)
        self.server.close()
        self.pool.remove(self)
        if running is None and pending is not None and self.ready and self._out_of_memory_kb is None:
            # It died between two invocations: the queued one was never delivered.
            self.pool.console.info(
                f"{self.function.logical_id}: environment {self.number} exited ({_exit_reason(code)}) "
                f"before taking request {pending.request_id}, which goes to another environment"
            )
            self.pool.redeliver(pending)
            return
        invocation = running or pending
        if invocation is not None:
            self._finish(invocation, self._exit_outcome(invocation, code))
        elif self._out_of_memory_kb is not None:
            self._print_exit(None, code)
            self.pool.console.function(self.function.name, "INIT_REPORT Status: error\tError Type: Runtime.OutOfMemory")
        elif not was_stopped:
            self.pool.console.function(self.function.name, f"execution environment exited ({_exit_reason(code)})")

    def _exit_outcome(self, invocation: Invocation, code: int) -> Outcome:
        if self._out_of_memory_kb is None and self._init_error is not None:
            error_type, payload = self._init_error
            return Outcome(payload, error_type, "error")
        message = self._print_exit(invocation, code)
        if self._out_of_memory_kb is not None:
            return _error_outcome("Runtime.OutOfMemory", message)
        return _error_outcome("Runtime.ExitError", message)

    def _print_exit(self, invocation: Invocation | None, code: int) -> str:
        """Lambda's lines for a runtime that exited (or was killed); the error message."""
        message = f"Error: Runtime exited with error: {_exit_reason(code)}"
        if invocation is not None:
            message = f"RequestId: {invocation.request_id} {message}"
        self.pool.console.function(self.function.name, f"{message}\nRuntime.ExitError")
        return message

    def _finish(self, invocation: Invocation, outcome: Outcome) -> None:
        # The caller took the invocation from this environment, so it ends here once. The environment is
        # free again before the client hears back: the client's next request must find it warm. The runtime
        # waits for this call to return before it asks for more, so measuring after `complete` is exact.
        self.pool.release(self)
        completed = invocation.complete(outcome)
        if self.pool.console.quiet:
            return  # no REPORT to print: nothing to measure
        self._measure()
        if completed:
            self._report(invocation, outcome)

    def _measure(self) -> None:
        # The kernel's high-water mark sees every page touched between two samples; it restarts for the next.
        if self._out_of_memory_kb is None and not self.dead:
            self.memory_sample(peak_kb(self.pid))
            reset_peak(self.pid)

    def _report(self, invocation: Invocation, outcome: Outcome) -> None:
        function = self.function
        started = invocation.delivered_at or invocation.finished_at or 0.0
        duration = ((invocation.finished_at or started) - started) * 1000
        fields = [
            f"REPORT RequestId: {invocation.request_id}",
            f"Duration: {duration:.2f} ms",
            f"Billed Duration: {max(1, math.ceil(duration))} ms",
            f"Memory Size: {function.memory_size} MB",
            f"Max Memory Used: {to_mb(self.peak_kb) or '-'} MB",
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
    """The execution environments of one function: at most `size` at once (its concurrency limit).

    `reason` says where the limit comes from, for the console.
    """

    def __init__(
        self,
        function: Function,
        *,
        size: int = DEFAULT_MAX_CONCURRENCY,
        opt_dir: Path,
        env_vars: Mapping[str, Mapping[str, str]],
        console: Console,
        reason: str = "--max-concurrency",
        memory_limit: bool = True,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        keep_warm: int = 0,
        watcher: MemoryWatcher | None = None,
    ) -> None:
        self.function = function
        self.size = max(0, size)
        self.reason = reason
        self.opt_dir = opt_dir
        self.env_vars = env_vars
        self.console = console
        self.memory_limit = memory_limit
        self.idle_timeout = idle_timeout
        self.keep_warm = min(keep_warm, self.size)
        self.watcher = watcher or MemoryWatcher()
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
        """Starts environments now (up to `keep_warm`, at least one), so the first request finds them initialized."""
        with self._cond:
            while not self._closed and len(self.environments) < max(1, self.keep_warm) <= self.size:
                self._idle.append(self._spawn())

    def dispatch(self, invocation: Invocation) -> None:
        """Hands the invocation to an idle environment, or to a new one; at the limit, ThrottledError at once
        (a synchronous Invoke is never queued)."""
        while True:
            environment = self._acquire(None)
            if environment is None:
                raise ThrottledError(self.function.logical_id, self.size, self._throttle_reason())
            if environment.submit(invocation):
                return
            self.remove(environment)  # it stopped while idle: take another one

    def invoke(self, invocation: Invocation, wait_until: float) -> bool:
        """Hands the invocation to an environment, waiting for one to be free (as an event source's poller
        retries a throttle); False if none became free before `wait_until`."""
        while True:
            environment = self._acquire(wait_until)
            if environment is None:
                return False
            if environment.submit(invocation):
                return True
            self.remove(environment)

    def _throttle_reason(self) -> str:
        if self.size == 0:
            return f"{self.reason} is 0: every invocation is throttled"
        return f"all {self.size} execution environment(s) are busy ({self.reason} {self.size})"

    def _acquire(self, wait_until: float | None) -> Environment | None:
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
                remaining = -1.0 if wait_until is None else wait_until - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def redeliver(self, invocation: Invocation) -> None:
        """An invocation no environment received: offered to another one, in the background."""
        invocation.attempts += 1
        threading.Thread(target=self._redeliver, args=(invocation,), daemon=True).start()

    def _redeliver(self, invocation: Invocation) -> None:
        if invocation.attempts < _DELIVERY_ATTEMPTS:
            with contextlib.suppress(PoolClosedError, OSError):
                if self.invoke(invocation, time.monotonic() + INIT_TIME_LIMIT):
                    return
        message = "no execution environment could take the invocation"
        invocation.complete(_error_outcome("Runtime.Unavailable", message))

    def release(self, environment: Environment) -> None:
        retire = False
        with self._cond:
            environment.idle_since = time.monotonic()
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

    def reap(self, now: float) -> list[Environment]:
        """Stops environments idle for longer than `idle_timeout` (keeping `keep_warm` of them)."""
        with self._cond:
            expired = [
                environment
                for environment in self._idle
                if environment.ready and now - environment.idle_since > self.idle_timeout
            ]
            expired = expired[: max(0, len(self.environments) - self.keep_warm)]
            for environment in expired:
                self._forget(environment)
        for environment in expired:
            self.console.info(
                f"{self.function.logical_id}: environment {environment.number} stopped after "
                f"{self.idle_timeout:g} s idle ({environment.invocations} invocation(s), "
                f"peak memory {to_mb(environment.lifetime_peak_kb)} MB)"
            )
            environment.stop()
        return expired

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

    def stalled(self, now: float) -> list[tuple[Environment, Invocation]]:
        """Invocations queued for a warm environment that does not take them."""
        with self._cond:
            environments = list(self.environments)
        return [
            (environment, invocation)
            for environment in environments
            if (invocation := environment.stalled(now)) is not None
        ]

    def unread(self, now: float) -> list[tuple[Environment, Invocation]]:
        """Invocations sent to a runtime that was stopped before reading them."""
        with self._cond:
            busy = [environment for environment in self.environments if environment not in self._idle]
        return [(environment, invocation) for environment in busy if (invocation := environment.unread(now))]

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self.environments) - len(self._idle)

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
    """Enforces each function's Timeout (and the init limit) on running invocations, hands invocations queued
    for a stalled environment to another one, and stops environments idle for too long."""

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
                for environment, invocation in pool.stalled(now):
                    environment.abandon_stalled(invocation)
                for environment, invocation in pool.unread(now):
                    environment.abandon_unread(invocation)
                pool.reap(now)
