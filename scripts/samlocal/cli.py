"""`python -m samlocal`: `sam local start-api` without Docker.

    PYTHONPATH=scripts .venv/bin/python -m samlocal -t template.yaml -p 3000 --env-vars env.json

Options follow `sam local start-api` where they exist (--template/-t, --port/-p, --host, --env-vars/-n,
--parameter-overrides, --warm-containers, --debug); --pool-size, --integration-timeout and --no-reload are
this emulator's own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from samlocal.console import Console
from samlocal.gateway import DEFAULT_INTEGRATION_TIMEOUT, Gateway, GatewayServer
from samlocal.intrinsics import TemplateError
from samlocal.reloader import Reloader
from samlocal.sandbox import EnvVarsError, OptDirs, read_env_vars
from samlocal.template import Stack, read_stack
from samlocal.workers import FunctionPool, Watchdog

DEFAULT_POOL_SIZE = 2


_LONG_FORM = re.compile(r"ParameterKey=([^,]+),ParameterValue=(.*)")


def _parameter_overrides(values: Sequence[str]) -> dict[str, str]:
    """SAM's two spellings: `Name=Value Other=Value` and `ParameterKey=Name,ParameterValue=Value`."""
    overrides: dict[str, str] = {}
    for item in values:
        for pair in item.split():
            long_form = _LONG_FORM.fullmatch(pair)
            if long_form:
                overrides[long_form.group(1)] = long_form.group(2)
            elif "=" in pair:
                name, _, value = pair.partition("=")
                overrides[name] = value
            else:
                raise argparse.ArgumentTypeError(f"--parameter-overrides takes Name=Value pairs, got {pair!r}")
    return overrides


def _pool_sizes(values: Sequence[str], stack: Stack) -> dict[str, int]:
    default = DEFAULT_POOL_SIZE
    sizes: dict[str, int] = {}
    for item in values:
        name, _, number = item.rpartition("=")
        try:
            size = int(number)
        except ValueError as error:
            raise SystemExit(f"--pool-size takes N or Function=N, got {item!r}") from error
        if size < 1:
            raise SystemExit(f"--pool-size must be at least 1, got {item!r}")
        if not name:
            default = size
        elif name in stack.functions:
            sizes[name] = size
        else:
            raise SystemExit(f"--pool-size: no function {name!r} in the template")
    return {logical_id: sizes.get(logical_id, default) for logical_id in stack.functions}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="samlocal",
        description="Serve the API Gateway REST API of a SAM template locally, without Docker, "
        "with real Lambda runtime workers.",
    )
    parser.add_argument("-t", "--template", type=Path, default=Path("template.yaml"), help="SAM template")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("PORT", "3000")), help="0: any free port")
    parser.add_argument(
        "-n", "--env-vars", type=Path, help='JSON environment variables: {"Parameters": {..}, "<Function>": {..}}'
    )
    parser.add_argument(
        "--parameter-overrides", action="append", default=[], metavar="NAME=VALUE", help="template parameters"
    )
    parser.add_argument(
        "--pool-size",
        action="append",
        default=[],
        metavar="N|FUNCTION=N",
        help=f"execution environments per function, each serving one request at a time (default {DEFAULT_POOL_SIZE})",
    )
    parser.add_argument(
        "--warm-containers",
        choices=("eager", "lazy"),
        default="lazy",
        help="eager: start one environment per function at start-up; lazy: on the first request (cold start)",
    )
    parser.add_argument(
        "--integration-timeout",
        type=float,
        metavar="SECONDS",
        help="API Gateway's integration timeout "
        f"(default: the route's timeoutInMillis, else {DEFAULT_INTEGRATION_TIMEOUT:g})",
    )
    parser.add_argument("--no-reload", action="store_true", help="do not watch the code for changes")
    parser.add_argument("--quiet", action="store_true", help="no access log and no function output")
    parser.add_argument("--debug", action="store_true", help="log each event, environment start and HTTP exchange")
    return parser.parse_args(argv)


class LocalApi:
    """Everything `samlocal` runs: the gateway server, the function pools, the watchdog and the reloader."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.stack = read_stack(args.template, _parameter_overrides(args.parameter_overrides))
        env_vars = read_env_vars(args.env_vars)
        self.opt_dirs = OptDirs()
        sizes = _pool_sizes(args.pool_size, self.stack)
        self.pools = {
            logical_id: FunctionPool(
                function,
                size=sizes[logical_id],
                opt_dir=self.opt_dirs.build(function),
                env_vars=env_vars,
                console=console,
            )
            for logical_id, function in self.stack.functions.items()
        }
        self.watchdog = Watchdog(self.pools.values())
        self.reloader = Reloader()
        self.server = GatewayServer(
            args.host,
            args.port,
            lambda port: Gateway(
                self.stack, self.pools, console, port=port, integration_timeout=args.integration_timeout
            ),
        )
        self.port: int = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.args.host if ":" not in self.args.host else f"[{self.args.host}]"
        return f"http://{host}:{self.port}"

    def describe(self) -> str:
        lines = [f"Serving {self.stack.template_path.name} on {self.url} (no Docker)"]
        lines += [f"  warning: {warning}" for warning in self.stack.warnings]
        for api in self.stack.apis.values():
            lines.append(
                f"  {api.logical_id} (stage {api.stage_name}, binary media types: "
                f"{', '.join(api.binary_media_types) or 'none'})"
            )
            lines += [
                f"    {route.method:<7} {self.url}{route.resource_path}  ->  {route.function_id}"
                for route in sorted(api.routes, key=lambda route: (route.resource_path, route.method))
            ]
        for logical_id, pool in self.pools.items():
            function = pool.function
            layers = ", ".join(layer.logical_id for layer in function.layers) or "no layers"
            lines.append(
                f"  {logical_id}: {function.handler} in {_relative(function.code_dir)}, {layers}; "
                f"timeout {function.timeout:g} s, up to {pool.size} environment(s), opt dir {pool.opt_dir}"
            )
        return "\n".join(lines)

    def start(self) -> None:
        self.watchdog.start()
        if not self.args.no_reload:
            for logical_id, pool in self.pools.items():
                function = pool.function
                # A requirements layer's packages come from the virtual environment: nothing there to watch.
                roots = [function.code_dir] + [
                    layer.content_dir for layer in function.layers if not layer.provides_requirements
                ]
                self.reloader.watch(logical_id, roots, self._reload_callback(pool))
            self.reloader.watch("template", [self.stack.template_path], self._template_changed)
            self.reloader.start()
        if self.args.warm_containers == "eager":
            for pool in self.pools.values():
                pool.warm()
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def _reload_callback(self, pool: FunctionPool) -> Callable[[], None]:
        def reload() -> None:
            self.console.info(f"{pool.function.logical_id}: code changed, environments restart with the new code")
            pool.reload(warm=self.args.warm_containers == "eager")

        return reload

    def _template_changed(self) -> None:
        self.console.info(f"{self.stack.template_path.name} changed: restart to apply routes and settings")

    def stop(self) -> None:
        self.reloader.stop()
        self.watchdog.stop()
        self.server.shutdown()
        self.server.server_close()
        for pool in self.pools.values():
            pool.close()
        self.opt_dirs.remove()


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(debug=args.debug, quiet=args.quiet)
    try:
        local_api = LocalApi(args, console)
    except (TemplateError, EnvVarsError, argparse.ArgumentTypeError) as error:
        print(f"samlocal: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"samlocal: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    local_api.start()
    console.info(local_api.describe())
    console.info("Press Ctrl-C to stop.")
    while not stopping.wait(0.5):
        pass
    console.info("Stopping...")
    local_api.stop()
    return 0
