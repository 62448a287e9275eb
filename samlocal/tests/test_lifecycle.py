"""Start-up, code reloads without a restart, and Ctrl-C, on a copy of the test API that the tests edit."""

from __future__ import annotations

import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from samlocal.testing import LocalApi

HERE = Path(__file__).resolve().parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the test API's functions, layer and template, free to edit."""
    for folder in ("functions", "layers", "templates"):
        shutil.copytree(HERE / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_code_change_is_served_without_a_restart(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log", "--warm-containers", "eager")
    try:
        first = api.get("/echo").json()
        assert "reloaded" not in first
        app = project / "functions" / "echo" / "app.py"
        app.write_text(app.read_text().replace('"pid": os.getpid(),', '"pid": os.getpid(), "reloaded": True,'))
        api.wait_for_output("EchoFunction: code changed")
        second = api.get("/echo").json()
        assert second["reloaded"] is True
        assert second["pid"] != first["pid"]
        assert not _alive(first["pid"])
    finally:
        api.close()


def test_a_layer_change_is_served_without_a_restart(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log")
    try:
        assert api.get("/env").json()["data"] == "hello from /opt/data"
        (project / "layers" / "shared" / "data" / "greeting.txt").write_text("changed\n")
        api.wait_for_output("EchoFunction: code changed")
        assert api.get("/env").json()["data"] == "changed"
    finally:
        api.close()


def test_a_request_running_during_a_reload_finishes_on_the_old_code(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log")
    try:
        with ThreadPoolExecutor(1) as executor:
            running = executor.submit(api.post, "/sleep?seconds=1.5", json={})
            time.sleep(0.7)
            app = project / "functions" / "echo" / "app.py"
            app.write_text(app.read_text().replace('"pid": os.getpid(),', '"pid": os.getpid(), "reloaded": True,'))
            api.wait_for_output("EchoFunction: code changed")
            old = running.result(timeout=10)
        assert old.status_code == 200
        assert "reloaded" not in old.json()
        assert api.get("/echo").json()["reloaded"] is True
    finally:
        api.close()


def test_eager_start_shows_init_errors_before_any_request(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log", "--warm-containers", "eager")
    try:
        api.wait_for_output("[BrokenFunction] INIT_REPORT Status: error\tError Type: Runtime.ImportModuleError")
    finally:
        api.close()


def test_the_integration_timeout_option_applies_to_every_route(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log", "--integration-timeout", "0.5")
    try:
        started = time.monotonic()
        response = api.post("/sleep?seconds=2", json={})
        assert response.status_code == 504
        assert time.monotonic() - started < 1.5
        # The function runs on after the gateway gave up, as in AWS; its environment is busy meanwhile, so
        # another one serves /echo. Its cold start may itself outlast 0.5 s on a busy machine (504, while the
        # environment goes on initialising): the next request finds it ready.
        statuses = [api.get("/echo").status_code]
        while statuses[-1] == 504 and len(statuses) < 20:
            time.sleep(0.25)
            statuses.append(api.get("/echo").status_code)
        assert statuses[-1] == 200, statuses
    finally:
        api.close()


def test_ctrl_c_stops_the_emulator_and_its_workers(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log", "--max-concurrency", "3")
    try:
        pids = {api.post("/sleep?seconds=0.3", json={}).json()["pid"] for _ in range(2)}
        assert all(_alive(pid) for pid in pids)
        assert api.interrupt() == 0
        assert "Stopping..." in api.output()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)
        assert "Traceback" not in api.output()
    finally:
        api.close()


def test_sigterm_stops_the_emulator_too(project: Path) -> None:
    api = LocalApi(project / "templates" / "api.yaml", project / "console.log")
    try:
        api.process.send_signal(signal.SIGTERM)
        assert api.process.wait(timeout=15) == 0
    finally:
        api.close()


def test_a_template_error_is_reported_plainly(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Api:\n    Type: AWS::Serverless::Api\n    Properties: {Path: /a/{b}}\n")
    with pytest.raises(RuntimeError, match=r"samlocal: .*not valid YAML"):
        LocalApi(template, tmp_path / "console.log")
