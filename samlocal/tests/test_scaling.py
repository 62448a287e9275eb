"""Execution environments scale on demand up to a concurrency limit, are throttled beyond it as Lambda does,
stay warm, and are stopped after an idle period."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from samlocal.testing import LocalApi

TEMPLATE = Path(__file__).resolve().parent / "templates" / "runtime.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _parallel(api: LocalApi, paths: list[str]) -> list[requests.Response]:
    def call(path: str) -> requests.Response:
        with requests.Session() as session:  # a connection of its own
            return session.get(api.url + path, timeout=60)

    with ThreadPoolExecutor(len(paths)) as executor:
        return list(executor.map(call, paths))


def test_parallel_requests_run_in_parallel_each_in_a_new_environment(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log")
    try:
        started = time.monotonic()
        responses = _parallel(api, ["/work?seconds=1"] * 8)
        elapsed = time.monotonic() - started
        assert [response.status_code for response in responses] == [200] * 8
        assert len({response.json()["pid"] for response in responses}) == 8
        # 8 handlers of 1 s at once: about 1 s plus the cold starts, never 8 s one after the other
        assert elapsed < 4.0
        output = api.wait_for_output("REPORT RequestId")
        assert len(re.findall(r"\[WorkFunction\] REPORT .*Init Duration: \d+\.\d\d ms", output)) == 8
        # warm now: the same 8 environments answer the next burst, with no cold start
        again = _parallel(api, ["/work?seconds=0.5"] * 8)
        assert {response.json()["pid"] for response in again} == {response.json()["pid"] for response in responses}
        assert len(re.findall(r"Init Duration", api.output())) == 8
    finally:
        api.close()


def test_beyond_the_concurrency_limit_a_request_is_throttled_at_once(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--max-concurrency", "2")
    try:
        started = time.monotonic()
        responses = _parallel(api, ["/work?seconds=1.5", "/work?seconds=1.5", "/work?seconds=0&third"])
        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 200, 500]
        throttled = next(response for response in responses if response.status_code == 500)
        assert throttled.json() == {"message": "Internal server error"}
        assert throttled.headers["x-amzn-ErrorType"] == "InternalServerErrorException"
        # it did not wait for a free environment (nor for the integration timeout)
        assert throttled.elapsed.total_seconds() < 1.0
        assert time.monotonic() - started < 5
        output = api.wait_for_output("TooManyRequestsException")
        assert "WorkFunction: Rate Exceeded. (all 2 execution environment(s) are busy (--max-concurrency 2))" in output
        # once one is free again, requests are served
        assert api.get("/work").status_code == 200
    finally:
        api.close()


def test_a_per_function_limit_and_reserved_concurrency_cap_a_function(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--max-concurrency", "WorkFunction=3")
    try:
        output = api.output()
        assert "ReservedFunction: app.handler" in output
        reserved = r"ReservedFunction: .*up to 1 environment\(s\) at once \(ReservedConcurrentExecutions\)"
        assert re.search(reserved, output)
        assert re.search(r"WorkFunction: .*up to 3 environment\(s\) at once \(--max-concurrency WorkFunction\)", output)
        assert re.search(r"SmallFunction: .*up to 10 environment\(s\) at once \(--max-concurrency\)", output)
        responses = _parallel(api, ["/reserved?seconds=1", "/reserved?seconds=1"])
        assert sorted(response.status_code for response in responses) == [200, 500]
        work = _parallel(api, ["/work?seconds=1"] * 4)
        assert sorted(response.status_code for response in work) == [200, 200, 200, 500]
    finally:
        api.close()


def test_the_former_pool_size_option_still_sets_the_limit(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--pool-size", "1")
    try:
        assert re.search(r"WorkFunction: .*up to 1 environment\(s\) at once", api.output())
    finally:
        api.close()


def test_idle_environments_are_stopped_after_the_idle_timeout(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--environment-idle-timeout", "1")
    try:
        pid = api.get("/work").json()["pid"]
        assert api.get("/work").json()["pid"] == pid  # warm within the idle period
        api.wait_for_output("WorkFunction: environment 1 stopped after 1 s idle (2 invocation(s), peak memory")
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
        again = api.get("/work")
        assert again.status_code == 200
        assert again.json()["pid"] != pid  # a cold start
        # Its REPORT line, with the new environment's Init Duration, is written just after the answer.
        deadline = time.monotonic() + 5
        while api.output().count("Init Duration") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.output().count("Init Duration") == 2
    finally:
        api.close()


def test_eager_start_keeps_one_environment_warm_past_the_idle_timeout(tmp_path: Path) -> None:
    api = LocalApi(
        TEMPLATE, tmp_path / "console.log", "--warm-containers", "eager", "--environment-idle-timeout", "0.5"
    )
    try:
        pid = api.get("/work").json()["pid"]
        time.sleep(1.5)
        assert api.get("/work").json()["pid"] == pid
        assert "stopped after" not in api.output()
    finally:
        api.close()


def test_a_reserved_concurrency_of_zero_throttles_every_request(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        TEMPLATE.read_text()
        .replace("ReservedConcurrentExecutions: 1", "ReservedConcurrentExecutions: 0")
        .replace("../functions/runtime/", str(TEMPLATE.parent.parent / "functions" / "runtime") + "/")
    )
    api = LocalApi(template, tmp_path / "console.log", "--warm-containers", "eager")
    try:
        assert re.search(r"ReservedFunction: .*up to 0 environment\(s\) at once", api.output())
        response = api.get("/reserved")
        assert response.status_code == 500
        assert response.json() == {"message": "Internal server error"}
        api.wait_for_output("ReservedConcurrentExecutions is 0: every invocation is throttled")
        assert "[ReservedFunction] START" not in api.output()
        assert api.get("/work").status_code == 200
    finally:
        api.close()
