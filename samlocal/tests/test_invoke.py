"""`samlocal invoke`: one event, one invocation in a real runtime worker; the result on stdout, logs on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "templates" / "api.yaml"


def invoke(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "samlocal", "invoke", "--template", str(TEMPLATE), *arguments],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_a_named_function_answers_the_event_with_lambda_s_log_lines() -> None:
    event = {"resource": "/echo", "path": "/echo", "httpMethod": "GET", "marker": "m-1"}
    completed = invoke("EchoFunction", "--event", "-", stdin=json.dumps(event))
    assert completed.returncode == 0, completed.stderr
    body = json.loads(json.loads(completed.stdout)["body"])
    assert body["event"]["marker"] == "m-1"
    assert body["function_name"] == "EchoFunction"
    assert "[EchoFunction] START RequestId:" in completed.stderr
    assert "[EchoFunction] REPORT RequestId:" in completed.stderr
    assert "Init Duration:" in completed.stderr


def test_without_a_name_the_route_of_an_api_event_chooses_the_function(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"resource": "/slow/sleep", "path": "/slow/sleep", "httpMethod": "GET"}))
    completed = invoke("--event", str(event))
    assert completed.returncode == 0, completed.stderr
    assert json.loads(json.loads(completed.stdout)["body"])["function_name"] == "SlowFunction"


def test_a_function_error_is_printed_and_exits_1() -> None:
    completed = invoke("EchoFunction", "-e", "-", stdin=json.dumps({"resource": "/error", "httpMethod": "GET"}))
    assert completed.returncode == 1
    error = json.loads(completed.stdout)
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "the function failed on purpose"


def test_a_timeout_is_lambda_s_and_exits_1() -> None:
    event = {"resource": "/slow/sleep", "httpMethod": "GET", "queryStringParameters": {"seconds": "5"}}
    completed = invoke("SlowFunction", "-e", "-", stdin=json.dumps(event))
    assert completed.returncode == 1
    assert "Task timed out after 1.00 seconds" in completed.stdout + completed.stderr


def test_what_cannot_be_invoked_says_why_and_exits_2() -> None:
    ambiguous = invoke("-e", "-", stdin="{}")
    unknown = invoke("Nope", "-e", "-", stdin="{}")
    not_json = invoke("EchoFunction", "-e", "-", stdin="{oops")
    assert (ambiguous.returncode, unknown.returncode, not_json.returncode) == (2, 2, 2)
    assert "the template has several functions" in ambiguous.stderr
    assert "no function 'Nope'" in unknown.stderr
    assert "the event is not JSON" in not_json.stderr
