"""The memory of execution environments: what each invocation used, and Lambda's MemorySize enforced.

Lambda runs each environment in a sandbox of `MemorySize` MB: past it the runtime is killed (`signal:
killed`, `Runtime.OutOfMemory`). Here an environment is a process tree; a watcher thread samples its
resident memory (VmRSS of the worker and of its descendants) every few milliseconds while it initializes or
runs an invocation, and kills the tree when the sum passes MemorySize. RLIMIT_AS is not used: numpy and
ONNX Runtime reserve far more address space than they ever touch.

Max Memory Used is the peak during the invocation: the kernel's VmHWM of the worker, reset when the
previous one ended (`/proc/<pid>/clear_refs`), or the watcher's sampled peak of the whole tree if higher.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from typing import Protocol

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# How often a busy environment's memory is sampled, and how often its list of descendants is refreshed. Each
# wake-up costs about 0.1 ms of CPU on a small VM: every 20 ms, the watcher takes under 2% of a core from the
# functions it watches (3% every 10 ms, 4% with a walk of the process tree through pathlib).
SAMPLE_INTERVAL = 0.02
_TREE_REFRESH = 10
# The watcher keeps its pace this long after the last active environment, so that a stream of short
# invocations never has to wake it.
_LINGER = 2.0


def _read(path: str, size: int) -> bytes:
    # os.open and os.read: a fifth of the cost of open() for these small files read on every invocation.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return os.read(descriptor, size)
    finally:
        os.close(descriptor)


def resident_kb(pid: int) -> int:
    """The process's resident set (0 once it is gone)."""
    try:
        return int(_read(f"/proc/{pid}/statm", 256).split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def peak_kb(pid: int) -> int:
    """The kernel's high-water mark of the process's resident set (VmHWM), since start or the last reset."""
    try:
        status = _read(f"/proc/{pid}/status", 8192)
        start = status.index(b"VmHWM:") + len(b"VmHWM:")
        return int(status[start : status.index(b"kB", start)])
    except (OSError, ValueError):
        return 0


def reset_peak(pid: int) -> None:
    """Starts a new high-water mark from the current resident set (Linux 4.0+)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(f"/proc/{pid}/clear_refs", os.O_WRONLY)
        try:
            os.write(descriptor, b"5")
        finally:
            os.close(descriptor)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the function may start its own, from any of its threads)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")  # noqa: PTH208 - no Path objects at every sample
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):
                children = [int(child) for child in _read(f"/proc/{parent}/task/{task}/children", 65536).split()]
                found += children
                pending += children
    return found


def to_mb(kb: int) -> int:
    return math.ceil(kb / 1024)


class Watched(Protocol):
    """What the watcher asks of an execution environment."""

    pid: int
    memory_limit_kb: int | None  # None: report only

    def memory_sample(self, kb: int) -> None: ...

    def out_of_memory(self, kb: int) -> None: ...


class _Entry:
    __slots__ = ("polls", "tree", "watched")

    def __init__(self, watched: Watched) -> None:
        self.watched = watched
        self.tree: list[int] = []
        self.polls = 0


class MemoryWatcher:
    """One thread for every environment: samples those that are active, sleeps while none is."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.interval = interval
        self._active: dict[int, _Entry] = {}
        # Every environment's entry, active or not: its list of descendants outlives one invocation, so a
        # stream of short invocations does not walk /proc at each one's first sample.
        self._entries: dict[int, _Entry] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._sleeping = False
        self._thread: threading.Thread | None = None

    def activate(self, watched: Watched) -> None:
        """Samples `watched` from now on (it initializes or runs an invocation)."""
        with self._cond:
            if id(watched) in self._active:
                return
            entry = self._entries.get(id(watched))
            if entry is None or entry.watched is not watched:
                entry = self._entries[id(watched)] = _Entry(watched)
            self._active[id(watched)] = entry
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="memory-watcher", daemon=True)
                self._thread.start()
            if self._sleeping:  # only a watcher idle for a while sleeps without a timeout
                self._cond.notify()

    def deactivate(self, watched: Watched) -> None:
        with self._cond:
            self._active.pop(id(watched), None)

    def forget(self, watched: Watched) -> None:
        """`watched` is gone for good (its environment stopped)."""
        with self._cond:
            self._active.pop(id(watched), None)
            self._entries.pop(id(watched), None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        quiet_since = time.monotonic()
        while True:
            with self._cond:
                if self._active:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > _LINGER:
                    self._sleeping = True
                    while not self._active and not self._stopped:
                        self._cond.wait()
                    self._sleeping = False
                self._cond.wait(self.interval)
                if self._stopped:
                    return
                entries = list(self._active.values())
            for entry in entries:
                self._sample(entry)

    def _sample(self, entry: _Entry) -> None:
        watched = entry.watched
        entry.polls += 1
        if entry.polls % _TREE_REFRESH == 1:
            entry.tree = descendants(watched.pid)
        kb = resident_kb(watched.pid) + sum(resident_kb(pid) for pid in entry.tree)
        watched.memory_sample(kb)
        limit = watched.memory_limit_kb
        if limit is not None and kb > limit:
            self.deactivate(watched)
            watched.out_of_memory(kb)
