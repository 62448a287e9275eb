"""Max Memory Used per invocation, and the function's MemorySize enforced as Lambda does."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from samlocal import memory
from samlocal.testing import LocalApi

TEMPLATE = Path(__file__).resolve().parent / "templates" / "runtime.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _report(api: LocalApi, request_id: str) -> str:
    output = api.wait_for_output(f"REPORT RequestId: {request_id}")
    return next(line for line in output.splitlines() if f"REPORT RequestId: {request_id}" in line)


def _max_memory_used(report: str) -> int:
    match = re.search(r"Max Memory Used: (\d+) MB", report)
    assert match, report
    return int(match.group(1))


def test_max_memory_used_is_the_peak_of_each_invocation(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log")
    try:
        light = api.get("/work").json()
        heavy = api.get("/work?mb=160").json()
        after = api.get("/work").json()
        assert light["pid"] == heavy["pid"] == after["pid"]  # one warm environment
        assert heavy["allocated_mb"] == 160
        baseline = _max_memory_used(_report(api, light["request_id"]))
        peak = _max_memory_used(_report(api, heavy["request_id"]))
        assert 10 < baseline < 120
        assert peak >= baseline + 150
        assert "Memory Size: 512 MB" in _report(api, heavy["request_id"])
        # the next invocation is measured on its own, not as the environment's all-time peak
        assert _max_memory_used(_report(api, after["request_id"])) < peak - 100
    finally:
        api.close()


def test_an_environment_past_its_memory_size_is_killed_and_answers_502(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log")
    try:
        pid = api.get("/small").json()["pid"]
        response = api.get("/small?mb=300&seconds=1")
        assert response.status_code == 502
        assert response.json() == {"message": "Internal server error"}
        output = api.wait_for_output("Error Type: Runtime.OutOfMemory")
        assert re.search(r"\[SmallFunction\] RequestId: \S+ Error: Runtime exited with error: signal: killed", output)
        assert "[SmallFunction] Runtime.ExitError" in output
        report = next(line for line in output.splitlines() if "Runtime.OutOfMemory" in line)
        assert "Memory Size: 128 MB" in report
        assert _max_memory_used(report) > 128
        assert "Status: error\tError Type: Runtime.OutOfMemory" in report
        assert "SmallFunction: function error Runtime.OutOfMemory" in output
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
        # a new environment serves the next request
        after = api.get("/small?mb=16")
        assert after.status_code == 200
        assert after.json()["pid"] != pid
    finally:
        api.close()


def test_no_memory_limit_lets_an_environment_pass_its_memory_size(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--no-memory-limit")
    try:
        assert re.search(r"SmallFunction: .*memory 128 MB \(not enforced\)", api.output())
        response = api.get("/small?mb=300")
        assert response.status_code == 200
        assert response.json()["allocated_mb"] == 300
        assert _max_memory_used(_report(api, response.json()["request_id"])) > 300
    finally:
        api.close()


class _Environment:
    """What the watcher watches: this test's own process, never over a limit."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.memory_limit_kb: int | None = None
        self.samples: list[int] = []

    def memory_sample(self, kb: int) -> None:
        self.samples.append(kb)

    def out_of_memory(self, kb: int) -> None:
        raise AssertionError(f"no limit, yet out of memory at {kb} kB")


def test_short_invocations_share_one_walk_of_the_process_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment is active only while it runs an invocation; its list of descendants, a walk of /proc, is
    refreshed every few samples across invocations, not at the first sample of each one."""
    walks: list[int] = []
    walk = memory.descendants

    def counted(pid: int) -> list[int]:
        walks.append(pid)
        return walk(pid)

    monkeypatch.setattr(memory, "descendants", counted)
    watcher = memory.MemoryWatcher(interval=0.001)
    environment = _Environment()
    try:
        for _ in range(60):
            watcher.activate(environment)
            time.sleep(0.004)
            watcher.deactivate(environment)
    finally:
        watcher.stop()

    assert len(environment.samples) >= 30
    assert all(kb > 0 for kb in environment.samples)
    assert len(walks) <= len(environment.samples) // 10 + 1


def test_a_stopped_environment_is_forgotten() -> None:
    watcher = memory.MemoryWatcher(interval=0.001)
    environment = _Environment()
    try:
        watcher.activate(environment)
        time.sleep(0.01)
        watcher.forget(environment)
        time.sleep(0.005)  # a sample already under way ends
        sampled = len(environment.samples)
        time.sleep(0.02)
        assert len(environment.samples) == sampled > 0
    finally:
        watcher.stop()
