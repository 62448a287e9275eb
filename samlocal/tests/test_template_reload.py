"""A running emulator applies template changes without a restart: a handler, an environment variable, a
route, a zip's code; a template that no longer parses keeps the previous one, and the console says why."""

from __future__ import annotations

import shutil
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from samlocal.testing import LocalApi

HERE = Path(__file__).resolve().parent

TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  HttpFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: http/
      Handler: {handler}
      Runtime: python3.13
      Environment: {{Variables: {{GREETING: {greeting}}}}}
      Events:
{events}
  ZippedFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: zipped.zip
      Handler: zipped.handler
      Runtime: python3.13
      Events:
        Zipped: {{Type: HttpApi, Properties: {{Path: /zipped, Method: get}}}}
"""
HELLO = "        Hello: {Type: HttpApi, Properties: {Path: /hello, Method: get}}"
BYE = "        Bye: {Type: HttpApi, Properties: {Path: /bye, Method: get}}"


def write_template(folder: Path, *, handler: str = "app.handler", greeting: str = "one", events: str = HELLO) -> None:
    path = folder / "template.yaml"
    path.write_text(TEMPLATE.format(handler=handler, greeting=greeting, events=events))


def write_zip(folder: Path, answer: str) -> None:
    with zipfile.ZipFile(folder / "zipped.zip", "w") as bundle:
        bundle.writestr("zipped.py", f"def handler(event, context):\n    return {answer!r}\n")


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[LocalApi, Path]]:
    shutil.copytree(HERE / "functions" / "http", tmp_path / "http")
    (tmp_path / "http" / "other.py").write_text(
        textwrap.dedent(
            """\
            def handler(event, context):
                return {"handler": "other"}
            """
        )
    )
    write_template(tmp_path)
    write_zip(tmp_path, "first zip")
    local_api = LocalApi(tmp_path / "template.yaml", tmp_path / "console.log")
    try:
        yield local_api, tmp_path
    finally:
        local_api.close()


def wait_for_change(api: LocalApi, count: int, text: str = "template.yaml changed: ", timeout: float = 15.0) -> str:
    """The console once `text` appears `count` times (the reloader polls every half second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = api.output()
        if output.count(text) >= count:
            return output
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not seen {count} times:\n{api.output()[-3000:]}")


def test_environment_routes_and_handler_changes_apply_without_a_restart(reloading: tuple[LocalApi, Path]) -> None:
    api, folder = reloading
    assert api.get("/hello").json()["greeting"] == "one"
    missing = api.get("/bye")
    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    pid = api.process.pid

    write_template(folder, greeting="two", events=f"{HELLO}\n{BYE}")
    output = wait_for_change(api, 1)

    assert "HttpFunction restarts (environment)" in output
    assert "+ GET /bye -> HttpFunction" in output
    assert api.get("/hello").json()["greeting"] == "two"
    assert api.get("/bye").json()["greeting"] == "two"

    write_template(folder, handler="other.handler", greeting="two", events=BYE)
    output = wait_for_change(api, 2)

    assert "HttpFunction restarts (handler)" in output
    assert "- GET /hello -> HttpFunction" in output
    assert api.get("/bye").json() == {"handler": "other"}
    assert api.get("/hello").status_code == 404
    assert api.process.pid == pid and api.process.poll() is None


def test_a_template_that_no_longer_parses_keeps_the_previous_one(reloading: tuple[LocalApi, Path]) -> None:
    api, folder = reloading
    assert api.get("/hello").json()["greeting"] == "one"

    (folder / "template.yaml").write_text("Resources:\n  Broken: {Type: [\n")
    output = wait_for_change(api, 1, "cannot be served; the previous version is kept")

    assert "template.yaml is not valid YAML" in output
    assert api.get("/hello").json()["greeting"] == "one"

    write_template(folder, greeting="fixed")
    wait_for_change(api, 1)
    assert api.get("/hello").json()["greeting"] == "fixed"


def test_a_changed_zip_is_extracted_again_and_served(reloading: tuple[LocalApi, Path]) -> None:
    api, folder = reloading
    assert api.get("/zipped").text == "first zip"

    write_zip(folder, "second zip")
    output = wait_for_change(api, 1)

    assert "ZippedFunction restarts (code_dir)" in output
    assert api.get("/zipped").text == "second zip"
