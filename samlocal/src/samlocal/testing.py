"""A local API for tests: `samlocal start-api` in a process of its own, on a free port, spoken to over HTTP.

from samlocal.testing import LocalApi

api = LocalApi(Path("template.yaml"), tmp_path / "console.log", "--warm-containers", "eager")
try:
    assert api.get("/health").status_code == 200
finally:
    api.close()
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

_SERVING = re.compile(r"Serving (?:\S+ on (http://\S+)|the Function URLs of \S+)")
_AWS_ENDPOINT = re.compile(r"AWS endpoint \(S3, SQS, DynamoDB\) on (http://[^\s,]+)")
_FUNCTION_URL = re.compile(r"Function URL for (\S+?)(?: \((\S+)\))?: (http://\S+?)/ ")


class LocalApi:
    """A running emulator; its console output is kept in a file (`output()`), its URL in `url`, the URL of its
    local AWS endpoint (on a free port unless `--aws-port` is given) in `aws_url` (None when it has none), the
    URLs of its Function URLs (on free ports) in `function_urls`, by logical id (the function's, or the
    AWS::Lambda::Url resource's), without the trailing slash."""

    def __init__(
        self,
        template: Path,
        log_path: Path,
        *args: str,
        env_vars: dict[str, Any] | None = None,
        cwd: Path | None = None,
        environ: dict[str, str] | None = None,
        command: str = "start-api",
    ) -> None:
        """`command`: start-api, or start-function-urls (then `url` is empty: no API is served)."""
        self.template = template
        self.log_path = log_path
        command_line = [sys.executable, "-m", "samlocal", command, "--template", str(template), "--port", "0"]
        command_line += ["--aws-port", "0", "--function-url-port", "0", *args]
        if env_vars is not None:
            env_file = log_path.with_suffix(".env.json")
            env_file.write_text(json.dumps(env_vars))
            command_line += ["--env-vars", str(env_file)]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command_line,
            cwd=cwd or template.resolve().parent,
            env={**os.environ, **(environ or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = self._wait_for_url()
        endpoint = _AWS_ENDPOINT.search(self.output())
        self.aws_url: str | None = endpoint.group(1) if endpoint else None
        self.function_urls: dict[str, str] = {
            match.group(2) or match.group(1): match.group(3) for match in _FUNCTION_URL.finditer(self.output())
        }
        self.session = requests.Session()

    def _wait_for_url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _SERVING.search(self.output())
            if match:
                return match.group(1) or ""
            if self.process.poll() is not None:
                raise RuntimeError(f"samlocal exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise RuntimeError(f"samlocal did not start within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            if text in output:
                return output
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the console output:\n{self.output()[-4000:]}")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C, as in a terminal; the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        self.session.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
