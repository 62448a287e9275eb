"""An API of a template served in this process as an HTTP API (`Api.kind == "HTTP"`) with the properties a
test gives it: real sockets and real Lambda runtime workers, the gateway's HTTP API rules applied."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from samlocal.cli import LocalApi, parse_args
from samlocal.console import Console
from samlocal.gateway import Gateway


class ServedHttpApi:
    def __init__(self, local_api: LocalApi, console: io.StringIO) -> None:
        self.local_api = local_api
        self.console = console
        self.url = local_api.url
        self.session = requests.Session()

    @property
    def gateway(self) -> Gateway:
        return self.local_api.server.gateway

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def output(self) -> str:
        return self.console.getvalue()


@contextmanager
def serve_as_http_api(
    template: Path,
    api_id: str,
    properties: Mapping[str, Any],
    *options: str,
    definition: Mapping[str, Any] | None = None,
) -> Iterator[ServedHttpApi]:
    args = parse_args(["--template", str(template), "--port", "0", "--no-reload", *options])
    stream = io.StringIO()
    console = Console(stream)
    local_api = LocalApi(args, console)
    api = local_api.stack.apis[api_id]
    api.kind = "HTTP"
    api.stage_name = "$default"
    api.properties = properties
    api.definition = definition
    # An HTTP API's routes take payload 2.0 unless they say otherwise.
    api.routes = [
        dataclasses.replace(route, payload_format_version="2.0") for route in api.routes if route.integration is None
    ]
    local_api.server.gateway = Gateway(
        local_api.stack,
        local_api.pools,
        console,
        port=local_api.port,
        disable_authorizer=bool(args.disable_authorizer),
    )
    local_api.start()
    served = ServedHttpApi(local_api, stream)
    try:
        yield served
    finally:
        served.session.close()
        local_api.stop()
