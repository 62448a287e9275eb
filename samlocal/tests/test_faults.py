"""The local API under faults, over real sockets: stopped and dying workers, malformed and abandoned HTTP
requests, idle connections, and a shutdown while requests are in flight."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from samlocal.testing import LocalApi

TEMPLATE = Path(__file__).resolve().parent / "templates" / "runtime.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


def _connect(api: LocalApi) -> socket.socket:
    host, port = api.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _exchange(api: LocalApi, raw: bytes) -> tuple[bytes, bool]:
    """Sends raw bytes; what the server answered, and whether it then closed the connection."""
    with _connect(api) as connection:
        connection.sendall(raw)
        received = b""
        closed = False
        connection.settimeout(5)
        while True:
            try:
                data = connection.recv(65536)
            except TimeoutError:
                break
            if not data:
                closed = True
                break
            received += data
            if b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                length = re.search(rb"Content-Length: (\d+)", head)
                if length and len(body) >= int(length.group(1)) and b"Connection: close" not in head:
                    break
        return received, closed


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    local_api = LocalApi(TEMPLATE, tmp_path_factory.mktemp("faults") / "console.log")
    try:
        yield local_api
    finally:
        local_api.close()


class TestWorkers:
    def test_a_worker_stopped_while_waiting_for_work_is_replaced_and_the_request_served(self, api: LocalApi) -> None:
        pid = api.get("/reserved").json()["pid"]
        time.sleep(0.3)  # the runtime has asked for its next invocation
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = api.get("/reserved")
            assert response.status_code == 200, api.output()[-3000:]
            assert response.json()["pid"] != pid
            assert time.monotonic() - started < 5  # not the function's 10 s timeout
            api.wait_for_output(f"(pid {pid}) is replaced: its runtime")  # found stopped before or after sending
            assert _wait_dead(pid)  # killed: the function's only slot is free again
            assert api.get("/reserved").status_code == 200
        finally:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def test_a_worker_stopped_before_asking_for_work_is_timed_out_and_the_request_served(self, api: LocalApi) -> None:
        pid = api.get("/reserved?stop-before-next").json()["pid"]
        try:
            started = time.monotonic()
            response = api.get("/reserved")
            elapsed = time.monotonic() - started
            assert response.status_code == 200, api.output()[-3000:]
            assert response.json()["pid"] != pid
            assert 1.5 < elapsed < 8  # the pickup limit (2 s) and a cold start
            api.wait_for_output(f"(pid {pid}) is replaced: it did not ask for the next invocation within 2 s")
            assert _wait_dead(pid)
            assert api.get("/reserved").status_code == 200
        finally:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def test_requests_right_after_a_worker_died_go_to_another_environment(self, api: LocalApi) -> None:
        for _ in range(20):
            pid = api.get("/reserved").json()["pid"]
            os.kill(pid, signal.SIGKILL)
            response = api.get("/reserved")  # within a millisecond of the death
            assert response.status_code == 200, response.text
            assert response.json()["pid"] != pid

    def test_a_worker_that_exits_while_idle_costs_no_request(self, api: LocalApi) -> None:
        for delay in (0.0, 0.001, 0.005, 0.02) * 2:
            first = api.get(f"/reserved?exit-after={delay}")
            assert first.status_code == 200
            pid = first.json()["pid"]
            while _state(pid) not in "ZX":  # the request comes the moment the worker is dead
                time.sleep(0.0005)
            second = api.get("/reserved")
            assert second.status_code == 200, api.output()[-3000:]
            assert second.json()["pid"] != pid
        assert "Runtime exited with error: exit status 5" not in api.output()


class TestHttp:
    def test_an_upload_cut_short_by_the_client_is_dropped_not_invoked(self, api: LocalApi) -> None:
        starts = api.output().count("[WorkFunction] START")
        with _connect(api) as connection:
            connection.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 100)
            time.sleep(0.2)
        api.wait_for_output('"POST /work HTTP/1.1": the client closed the connection before sending its whole body')
        with _connect(api) as connection:
            connection.sendall(b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
            time.sleep(0.2)
        time.sleep(0.3)
        assert api.output().count("the client closed the connection before sending its whole body") == 2
        assert api.output().count("[WorkFunction] START") == starts

    @pytest.mark.parametrize(
        ("raw", "detail"),
        [
            (b"GARBAGE\r\n\r\n", "Bad request line"),
            (b"GET /work\r\n\r\n", "Bad request line"),  # HTTP/0.9
            (b"GET /work HTTP/x.y\r\nHost: x\r\n\r\n", "Bad request version"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nGET /work HTTP/1.1\r\n\r\n", "-5"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", "ten"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "1, 2"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", "zz"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n", "-2"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", "CRLF"),
            (b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "gzip"),
            (
                b"POST /work HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
                "both",
            ),
        ],
    )
    def test_a_malformed_request_is_answered_400_and_the_connection_closed(
        self, api: LocalApi, raw: bytes, detail: str
    ) -> None:
        starts = api.output().count("[WorkFunction] START")
        received, closed = _exchange(api, raw)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received
        assert b"Connection: close" in head
        assert closed
        message = json.loads(body)["message"]
        assert message.startswith("Bad Request")
        assert detail in message
        assert received.count(b"HTTP/1.1") == 1  # nothing after the body is taken as another request
        assert api.output().count("[WorkFunction] START") == starts

    def test_a_well_formed_chunked_upload_is_still_served(self, api: LocalApi) -> None:
        received, _ = _exchange(
            api, b"POST /work HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\n\r\n"
        )
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")


def test_idle_keep_alive_connections_are_closed_and_connections_capped(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--connection-idle-timeout", "1", "--max-connections", "2")
    try:
        with _connect(api) as first:
            first.sendall(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
            assert first.recv(65536).startswith(b"HTTP/1.1 200 OK")
            with _connect(api) as second:
                # two connections held: a third is refused at once
                received, closed = _exchange(api, b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
                assert received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
                assert closed
                # the idle ones are closed by the server after the idle timeout
                started = time.monotonic()
                first.settimeout(5)
                assert first.recv(65536) == b""
                assert 0.5 < time.monotonic() - started < 3
                second.settimeout(5)
                assert second.recv(65536) == b""
        assert api.get("/work").status_code == 200
    finally:
        api.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_shutdown_drains_requests_in_flight_and_refuses_new_ones(tmp_path: Path, stop_signal: int) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log")
    try:
        with ThreadPoolExecutor(3) as executor:
            running = [
                executor.submit(requests.get, f"{api.url}/work?seconds=1.5&n={number}", timeout=30)
                for number in range(3)
            ]
            api.wait_for_output("START RequestId", timeout=10)
            time.sleep(0.3)
            api.process.send_signal(stop_signal)
            output = api.wait_for_output("Stopping...")
            assert "3 request(s) in flight get up to 10 s to finish" in output
            time.sleep(0.2)
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{api.url}/work", timeout=5)
            answers = [future.result(timeout=30) for future in running]
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert all(answer.headers["Connection"] == "close" for answer in answers)
        assert api.process.wait(timeout=15) == 0
        assert "cut short" not in api.output()
        assert "Traceback" not in api.output()
    finally:
        api.close()


def test_requests_still_running_after_the_grace_period_are_cut_short(tmp_path: Path) -> None:
    api = LocalApi(TEMPLATE, tmp_path / "console.log", "--shutdown-grace", "0.5")
    try:
        with ThreadPoolExecutor(1) as executor:
            running = executor.submit(requests.get, f"{api.url}/work?seconds=8", timeout=30)
            api.wait_for_output("START RequestId", timeout=10)
            started = time.monotonic()
            api.process.send_signal(signal.SIGTERM)
            assert api.process.wait(timeout=10) == 0
            assert time.monotonic() - started < 4
            cut_short = running.result(timeout=10)
        assert cut_short.status_code == 502  # its function was stopped
        assert cut_short.json() == {"message": "Internal server error"}
        assert "Stopped with 1 request(s) cut short" in api.output()
    finally:
        api.close()
