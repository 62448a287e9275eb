"""`samlocal start-api` (also `python -m samlocal`): `sam local start-api` without Docker.

    samlocal start-api -t template.yaml -p 3000 --env-vars env.json
    samlocal start-function-urls [FUNCTION] -t template.yaml -p 3001   # the Lambda Function URLs only

Options are SAM CLI's (--template/-t, --port/-p, --host, --env-vars/-n, --parameter-overrides,
--warm-containers, --disable-authorizer, --config-file, --config-env, --region, --profile, --log-file/-l,
--debug); options that only concern containers are accepted and reported as having no effect.
--max-concurrency, --no-memory-limit, --integration-timeout, --no-reload, --quiet and the HTTP server's limits are
this emulator's own, and --aws-port and --no-aws for the local AWS endpoint that serves the template's buckets,
queues and tables; --function-url-port the first port of the template's Function URLs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from samlocal import __version__
from samlocal.aws_endpoint import DEFAULT_AWS_PORT, AwsEndpointError
from samlocal.config import ConfigError, read_config
from samlocal.console import Console
from samlocal.event_sources import EventSourceError
from samlocal.function_urls import FunctionUrlPortError, FunctionUrlServers
from samlocal.gateway import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_INTEGRATION_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    Gateway,
    GatewayServer,
)
from samlocal.integrations import Integration
from samlocal.intrinsics import REGION, TemplateError
from samlocal.invoke import InvokeError, choose_function, invoke, parse_event
from samlocal.local_aws import LocalAws
from samlocal.memory import MemoryWatcher
from samlocal.provision import ProvisionError
from samlocal.reloader import Reloader
from samlocal.resources import ResourceReader
from samlocal.sandbox import EnvVarsError, OptDirs, read_env_vars
from samlocal.template import DEFAULT_ROUTE, HTTP, Function, Route, Stack, read_stack
from samlocal.workers import DEFAULT_IDLE_TIMEOUT as DEFAULT_ENVIRONMENT_IDLE_TIMEOUT
from samlocal.workers import DEFAULT_MAX_CONCURRENCY, FunctionPool, Watchdog

DEFAULT_SHUTDOWN_GRACE = 10.0
DEFAULT_FUNCTION_URL_PORT = 3001  # the port after the API's, as SAM CLI's start-function-urls proposal
FUNCTION_URLS_COMMAND = "start-function-urls"


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


def _port_range(text: str) -> range:
    """`3001-3010` -> the ports 3001 to 3010."""
    first, _, last = str(text).partition("-")
    try:
        ports = range(int(first), int(last) + 1)
    except ValueError as error:
        raise SystemExit(f"samlocal: --port-range takes FIRST-LAST, such as 3001-3010, got {text!r}") from error
    if not ports or ports.start < 1 or ports.stop > 65536:
        raise SystemExit(f"samlocal: --port-range {text!r} holds no port between 1 and 65535")
    return ports


def _concurrency_limits(values: Sequence[str], stack: Stack) -> dict[str, tuple[int, str]]:
    """Each function's concurrency limit and where it comes from: `Function=N`, else the template's
    ReservedConcurrentExecutions if lower than the default (`N`, or 10)."""
    default = DEFAULT_MAX_CONCURRENCY
    given: dict[str, int] = {}
    for item in values:
        name, _, number = item.rpartition("=")
        try:
            limit = int(number)
        except ValueError as error:
            raise SystemExit(f"--max-concurrency takes N or Function=N, got {item!r}") from error
        if limit < 1:
            raise SystemExit(f"--max-concurrency must be at least 1, got {item!r}")
        if not name:
            default = limit
        elif name in stack.functions:
            given[name] = limit
        else:
            raise SystemExit(f"--max-concurrency: no function {name!r} in the template")
    limits: dict[str, tuple[int, str]] = {}
    for logical_id, function in stack.functions.items():
        reserved = function.reserved_concurrency
        if logical_id in given:
            limits[logical_id] = (given[logical_id], f"--max-concurrency {logical_id}=")
        elif reserved is not None and reserved <= default:
            limits[logical_id] = (max(0, reserved), "ReservedConcurrentExecutions")
        else:
            limits[logical_id] = (default, "--max-concurrency")
    return limits


# SAM CLI options that only make sense with containers: accepted, so a command line or a samconfig.toml
# written for `sam local start-api` works unchanged, and reported as having no effect.
_CONTAINER_OPTIONS = (
    ("--debug-port", "-d"),
    ("--debugger-path",),
    ("--debug-args",),
    ("--debug-function",),
    ("--container-env-vars",),
    ("--docker-volume-basedir", "-v"),
    ("--docker-network",),
    ("--layer-cache-basedir",),
    ("--container-host",),
    ("--container-host-interface",),
    ("--add-host",),
    ("--invoke-image",),
    ("--hook-name",),
    ("--terraform-plan-file",),
)
_CONTAINER_FLAGS = ("--skip-pull-image", "--force-image-build", "--shutdown", "--skip-prepare-infra", "--save-params")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="samlocal",
        description="sam local, without Docker: the APIs of a SAM or CloudFormation template served locally "
        "with real Lambda runtime workers.",
    )
    parser.add_argument("--version", action="version", version=f"samlocal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    start_api = commands.add_parser(
        "start-api",
        help="serve the template's API Gateway APIs (sam local start-api)",
        description="Serve the API Gateway APIs of a SAM template locally, without Docker, "
        "with real Lambda runtime workers.",
    )
    add_start_api_options(start_api)
    start_function_urls = commands.add_parser(
        "start-function-urls",
        help="serve the template's Lambda Function URLs, each on a port of its own",
        description="Serve the Lambda Function URLs of a SAM template locally (FunctionUrlConfig and "
        "AWS::Lambda::Url), each on a port of its own, without Docker; the options of sam local "
        "start-function-urls (SAM CLI's proposal) and of start-api.",
    )
    start_function_urls.add_argument(
        "function", nargs="?", metavar="FUNCTION", help="serve only this function's Function URL(s)"
    )
    start_function_urls.add_argument(
        "--port-range",
        metavar="FIRST-LAST",
        help="the ports Function URLs may take, the first free ones in order (default: from --port up)",
    )
    add_start_api_options(start_function_urls, function_urls_only=True)
    invoke = commands.add_parser(
        "invoke",
        help="invoke a function once with an event (sam local invoke)",
        description="Invoke a function of a SAM template once with an event, without Docker: the result on "
        "standard output, the function's logs and Lambda's START/END/REPORT lines on standard error.",
    )
    invoke.add_argument(
        "function",
        nargs="?",
        help="logical id or name (default: the only function, or the function an API Gateway event's route names)",
    )
    invoke.add_argument("-e", "--event", help="JSON event file, or - for standard input (default: {})")
    invoke.add_argument("-t", "--template", "--template-file", type=Path, help="SAM template (default template.yaml)")
    invoke.add_argument("-n", "--env-vars", type=Path, help="JSON environment variables, as for start-api")
    invoke.add_argument("--parameter-overrides", action="append", metavar="NAME=VALUE", help="template parameters")
    invoke.add_argument("--config-file", type=Path, help="SAM CLI configuration file (default samconfig.toml)")
    invoke.add_argument("--config-env", help="environment of the configuration file (default 'default')")
    invoke.add_argument("--region", help="AWS_REGION of the function (default us-east-1)")
    invoke.add_argument("--profile", help="AWS_PROFILE of the function")
    invoke.add_argument("--debug", action="store_true", default=None, help="log the event and environment start")
    return parser


def add_start_api_options(parser: argparse.ArgumentParser, *, function_urls_only: bool = False) -> None:
    parser.add_argument("-t", "--template", "--template-file", type=Path, help="SAM template (default template.yaml)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, or HOST)")
    function_url_port_help = (
        f"first port of the template's Lambda Function URLs, one port each, in template order (default "
        f"{DEFAULT_FUNCTION_URL_PORT}, or FUNCTION_URL_PORT); 0 picks free ones"
    )
    if function_urls_only:
        parser.add_argument("-p", "--port", "--function-url-port", type=int, help=function_url_port_help)
    else:
        parser.add_argument("-p", "--port", type=int, help="port (default 3000, or PORT); 0 picks a free one")
        parser.add_argument("--function-url-port", type=int, metavar="PORT", help=function_url_port_help)
    parser.add_argument(
        "-n", "--env-vars", type=Path, help='JSON environment variables: {"Parameters": {..}, "<Function>": {..}}'
    )
    parser.add_argument("--parameter-overrides", action="append", metavar="NAME=VALUE", help="template parameters")
    parser.add_argument(
        "--max-concurrency",
        "--pool-size",  # its former name
        dest="max_concurrency",
        action="append",
        metavar="N|FUNCTION=N",
        help="execution environments a function may run at once, started on demand; beyond, a request is "
        f"throttled as Lambda does (default {DEFAULT_MAX_CONCURRENCY}, or the template's ReservedConcurrentExecutions)",
    )
    parser.add_argument(
        "--no-memory-limit",
        action="store_true",
        default=None,
        help="do not kill an environment whose memory passes the function's MemorySize",
    )
    parser.add_argument(
        "--environment-idle-timeout",
        type=float,
        metavar="SECONDS",
        help=f"stop an execution environment idle this long (default {DEFAULT_ENVIRONMENT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--connection-idle-timeout",
        type=float,
        metavar="SECONDS",
        help=f"close a keep-alive connection idle this long (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help=f"client connections at once; beyond, 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        help="on Ctrl-C or SIGTERM, how long requests in flight may take to finish "
        f"(default {DEFAULT_SHUTDOWN_GRACE:g}; a second signal stops at once)",
    )
    parser.add_argument(
        "--warm-containers",
        type=str.lower,
        choices=("eager", "lazy"),
        help="eager: start one environment per function at start-up; lazy (default): on the first request",
    )
    parser.add_argument(
        "--integration-timeout",
        type=float,
        metavar="SECONDS",
        help="API Gateway's integration timeout "
        f"(default: the route's timeoutInMillis, else {DEFAULT_INTEGRATION_TIMEOUT:g})",
    )
    parser.add_argument("--disable-authorizer", action="store_true", default=None, help="do not run authorizers")
    parser.add_argument("--config-file", type=Path, help="SAM CLI configuration file (default samconfig.toml)")
    parser.add_argument("--config-env", help="environment of the configuration file (default 'default')")
    parser.add_argument("--region", help="AWS_REGION of the functions (default us-east-1)")
    parser.add_argument("--profile", help="AWS_PROFILE of the functions")
    parser.add_argument("-l", "--log-file", type=Path, help="write the console to this file")
    parser.add_argument("--no-reload", action="store_true", default=None, help="do not watch the code for changes")
    parser.add_argument(
        "--aws-port",
        type=int,
        help=f"port of the local AWS endpoint (S3, SQS, DynamoDB) for the template's buckets, queues and tables "
        f"(default {DEFAULT_AWS_PORT}, or AWS_PORT); 0 picks a free one",
    )
    parser.add_argument(
        "--no-aws", action="store_true", default=None, help="no local AWS endpoint, resources or event sources"
    )
    parser.add_argument("--quiet", action="store_true", default=None, help="no access log and no function output")
    parser.add_argument(
        "--debug", action="store_true", default=None, help="log each event, environment start and HTTP exchange"
    )
    for names in _CONTAINER_OPTIONS:
        parser.add_argument(*names, dest=_dest(names[0]), action="append", help=argparse.SUPPRESS)
    for flag in _CONTAINER_FLAGS:
        parser.add_argument(flag, dest=_dest(flag), action="store_true", default=None, help=argparse.SUPPRESS)


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


_DEFAULTS: dict[str, Any] = {
    "template": Path("template.yaml"),
    "parameter_overrides": [],
    "max_concurrency": [],
    "no_memory_limit": False,
    "environment_idle_timeout": DEFAULT_ENVIRONMENT_IDLE_TIMEOUT,
    "connection_idle_timeout": DEFAULT_IDLE_TIMEOUT,
    "max_connections": DEFAULT_MAX_CONNECTIONS,
    "shutdown_grace": DEFAULT_SHUTDOWN_GRACE,
    "warm_containers": "lazy",
    "disable_authorizer": False,
    "no_reload": False,
    "no_aws": False,
    "quiet": False,
    "debug": False,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`samlocal start-api [options]`; `samlocal [options]` is start-api too. Values come from the command line,
    then the configuration file (as SAM CLI reads samconfig.toml), then the defaults."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in {"start-api", "start-function-urls", "invoke", "-h", "--help", "--version"}:
        arguments.insert(0, "start-api")
    args = build_parser().parse_args(arguments)
    section = f"local_{args.command.replace('-', '_')}"
    try:
        configured = read_config(args.config_file, args.config_env, section, args.template)
    except ConfigError as error:
        raise SystemExit(f"samlocal: {error}") from error
    for key, value in configured.items():
        name = "max_concurrency" if key == "pool_size" else key  # its former name
        if getattr(args, name, None) is None and hasattr(args, name):
            setattr(args, name, value)
    for name, value in _DEFAULTS.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.command == "invoke":
        args.template = Path(args.template)
        args.env_vars = Path(args.env_vars) if args.env_vars is not None else None
        args.parameter_overrides = (
            [args.parameter_overrides]
            if isinstance(args.parameter_overrides, str)
            else [str(item) for item in args.parameter_overrides]
        )
        return args
    # A string in a configuration file, a list on the command line.
    for name in ("parameter_overrides", "max_concurrency"):
        value = getattr(args, name)
        setattr(args, name, [value] if isinstance(value, str) else [str(item) for item in value])
    args.host = args.host or os.environ.get("HOST", "127.0.0.1")
    if args.command == FUNCTION_URLS_COMMAND:  # its --port is the first Function URL's
        args.function_url_port, args.port = args.port, 0
        args.port_range = _port_range(args.port_range) if args.port_range else None
    else:
        args.function, args.port_range = None, None
    args.port = int(os.environ.get("PORT", "3000")) if args.port is None else int(args.port)
    args.aws_port = int(os.environ.get("AWS_PORT", DEFAULT_AWS_PORT)) if args.aws_port is None else int(args.aws_port)
    if getattr(args, "function_url_port", None) is None:
        args.function_url_port = int(os.environ.get("FUNCTION_URL_PORT", DEFAULT_FUNCTION_URL_PORT))
    args.function_url_port = int(args.function_url_port)
    args.template = Path(args.template)
    args.warm_containers = str(args.warm_containers).lower()
    for name in ("environment_idle_timeout", "connection_idle_timeout", "shutdown_grace"):
        setattr(args, name, float(getattr(args, name)))
    args.max_connections = int(args.max_connections)
    if args.env_vars is not None:
        args.env_vars = Path(args.env_vars)
    args.ignored_options = sorted(
        "--" + name.replace("_", "-")
        for name in [_dest(names[0]) for names in _CONTAINER_OPTIONS] + [_dest(flag) for flag in _CONTAINER_FLAGS]
        if getattr(args, name, None)
    )
    return args


class LocalApi:
    """Everything `samlocal` runs: the gateway server, the function pools, the watchdog and the reloader."""

    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.parameter_overrides = _parameter_overrides(args.parameter_overrides)
        resources = ResourceReader(args.template, self.parameter_overrides)
        self.aws: LocalAws | None = None
        if resources.needs_endpoint and not args.no_aws:
            self.aws = LocalAws(resources, port=args.aws_port, region=args.region or REGION, console=console)
        self.stack = self._read_stack()
        env_vars = platform_env_vars(args)
        if self.aws:  # the local endpoint, below --env-vars
            env_vars = {**env_vars, "Parameters": {**self.aws.function_environment(), **env_vars.get("Parameters", {})}}
        self.env_vars = env_vars
        self.opt_dirs = OptDirs()
        limits = _concurrency_limits(args.max_concurrency, self.stack)
        self.memory_watcher = MemoryWatcher()
        self.pools = {
            logical_id: self._new_pool(function, limits[logical_id])
            for logical_id, function in self.stack.functions.items()
        }
        self.retired: list[FunctionPool] = []  # pools of replaced functions, closed once their work is done
        self._reload_lock = threading.Lock()
        self.watchdog = Watchdog(self.pools.values())
        if self.aws:
            self.aws.connect(self.stack, self.pools)
        self.reloader = Reloader()
        # start-function-urls serves the Function URLs only: the API server is never bound.
        self.serves_apis = args.command != FUNCTION_URLS_COMMAND
        self.server = GatewayServer(
            args.host,
            args.port,
            self._gateway,
            idle_timeout=args.connection_idle_timeout,
            max_connections=args.max_connections,
            listen=self.serves_apis,
        )
        self.port: int = self.server.server_address[1]
        self.function_urls = FunctionUrlServers(
            args.host,
            args.function_url_port,
            console,
            region=args.region or REGION,
            idle_timeout=args.connection_idle_timeout,
            max_connections=args.max_connections,
            port_range=args.port_range,
            only=args.function,
            disable_authorizer=bool(args.disable_authorizer),
        )
        try:
            if not self.serves_apis and not self.function_urls.served(self.stack):
                named = f" for {args.function}" if args.function else ""
                raise FunctionUrlPortError(
                    f"the template has no Function URL{named} (FunctionUrlConfig or AWS::Lambda::Url) to serve"
                )
            self.function_urls.apply(self.stack, self.pools)
        except FunctionUrlPortError:
            self.server.server_close()
            self.function_urls.close()
            raise
        self._thread: threading.Thread | None = None

    def _read_stack(self) -> Stack:
        return read_stack(self.args.template, self.parameter_overrides, self.aws.physical if self.aws else None)

    def _new_pool(self, function: Function, limit: tuple[int, str]) -> FunctionPool:
        return FunctionPool(
            function,
            size=limit[0],
            reason=limit[1],
            opt_dir=self.opt_dirs.build(function),
            env_vars=self.env_vars,
            console=self.console,
            memory_limit=not self.args.no_memory_limit,
            idle_timeout=self.args.environment_idle_timeout,
            keep_warm=1 if self.args.warm_containers == "eager" else 0,
            watcher=self.memory_watcher,
        )

    def _gateway(self, port: int) -> Gateway:
        """The gateway for the current stack and pools (a new one after each template reload)."""
        return Gateway(
            self.stack,
            self.pools,
            self.console,
            port=port,
            integration_timeout=self.args.integration_timeout,
            disable_authorizer=bool(self.args.disable_authorizer),
        )

    @property
    def url(self) -> str:
        host = self.args.host if ":" not in self.args.host else f"[{self.args.host}]"
        return f"http://{host}:{self.port}"

    def describe(self) -> str:
        name = self.stack.template_path.name
        if self.serves_apis:
            lines = [f"Serving {name} on {self.url} (no Docker)"]
        else:
            lines = [f"Serving the Function URLs of {name} (no Docker)"]
        lines += [f"  warning: {warning}" for warning in self.stack.warnings]
        lines += [f"  warning: {warning}" for warning in self.server.gateway.warnings]
        lines += [f"  warning: {warning}" for warning in self.function_urls.warnings()]
        lines += [f"  warning: {option} has no effect: there are no containers" for option in self.args.ignored_options]
        if self.stack.not_served:
            lines.append("  Not served (and what happens instead):")
            lines += [f"    {item}" for item in self.stack.not_served]
        if not self.serves_apis and self.stack.apis:
            apis = ", ".join(self.stack.apis)
            lines.append(f"  Not served by start-function-urls (samlocal start-api serves them): {apis}")
        for api in self.stack.apis.values() if self.serves_apis else []:
            if api.kind == HTTP:
                lines.append(f"  {api.logical_id} (HTTP API, stage {api.stage_name})")
            else:
                lines.append(
                    f"  {api.logical_id} (stage {api.stage_name}, binary media types: "
                    f"{', '.join(api.binary_media_types) or 'none'})"
                )
            lines += [
                f"    {route.method:<7} {_route_target(self.url, route.resource_path)}  ->  {_target(route)}"
                f"{self.server.gateway.describe_route(route)}"
                for route in sorted(api.routes, key=lambda route: (route.resource_path, route.method))
            ]
        lines += self.function_urls.describe()
        if self.aws:
            lines += self.aws.describe()
        for logical_id, pool in self.pools.items():
            function = pool.function
            layers = ", ".join(layer.logical_id for layer in function.layers) or "no layers"
            lines.append(
                f"  {logical_id}: {function.handler} in {_relative(function.code_dir)}, {layers}; "
                f"timeout {function.timeout:g} s, memory {function.memory_size} MB"
                f"{'' if pool.memory_limit else ' (not enforced)'}, up to {pool.size} environment(s) at once "
                f"({pool.reason.rstrip('=')}), opt dir {pool.opt_dir}"
            )
        return "\n".join(lines)

    def start(self) -> None:
        self.watchdog.start()
        if not self.args.no_reload:
            self._watch_stack()
            self.reloader.start()
        if self.args.warm_containers == "eager":
            for pool in self.pools.values():
                pool.warm()
        if self.serves_apis:
            self._thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
            self._thread.start()
        self.function_urls.start()
        if self.aws:
            self.aws.start()

    def _reload_callback(self, pool: FunctionPool) -> Callable[[], None]:
        def reload() -> None:
            self.console.info(f"{pool.function.logical_id}: code changed, environments restart with the new code")
            pool.reload(warm=self.args.warm_containers == "eager")

        return reload

    def _watch_stack(self) -> None:
        """Watches each function's code and layers, and every file the stack was read from."""
        for name in [name for name in self.reloader.watched if name not in self.pools]:
            self.reloader.unwatch(name)
        for logical_id, pool in self.pools.items():
            function = pool.function
            # A requirements layer's packages come from the virtual environment: nothing there to watch.
            roots = [function.code_dir] + [
                layer.content_dir for layer in function.layers if not layer.provides_requirements
            ]
            self.reloader.watch(logical_id, roots, self._reload_callback(pool))
        self.reloader.watch(_TEMPLATE_WATCH, self.stack.sources or [self.stack.template_path], self._template_changed)

    def _template_changed(self) -> None:
        name = self.stack.template_path.name
        try:
            stack = self._read_stack()
        except TemplateError as error:
            self.console.info(f"{name} changed but cannot be served; the previous version is kept: {error}")
            return
        self.console.info(f"{name} changed: {self.apply_stack(stack)}")

    def apply_stack(self, stack: Stack) -> str:
        """Serves a re-read stack: new pools for new or changed functions, the routes rebuilt; what changed."""
        with self._reload_lock:
            previous_stack, previous_pools = self.stack, self.pools
            try:
                limits = _concurrency_limits(self.args.max_concurrency, stack)
            except SystemExit:  # --pool-size names a function the template no longer has
                limits = _concurrency_limits([item for item in self.args.max_concurrency if "=" not in item], stack)
            pools: dict[str, FunctionPool] = {}
            changes: list[str] = []
            for logical_id, function in stack.functions.items():
                pool = previous_pools.get(logical_id)
                if pool is not None and pool.function == function:
                    pools[logical_id] = pool
                    continue
                pools[logical_id] = self._new_pool(function, limits[logical_id])
                if pool is None:
                    changes.append(f"{logical_id} added")
                else:
                    changes.append(f"{logical_id} restarts ({', '.join(_differences(pool.function, function))})")
            gone = [pool for logical_id, pool in previous_pools.items() if logical_id not in stack.functions]
            changes += [f"{pool.function.logical_id} removed" for pool in gone]
            replaced = [pool for logical_id, pool in previous_pools.items() if pools.get(logical_id) is not pool]
            self.stack, self.pools = stack, pools
            self.watchdog.pools = list(pools.values()) + self.retired + replaced
            self.server.gateway = self._gateway(self.port)  # one assignment: requests in flight finish as they began
            try:
                changes += self.function_urls.apply(stack, pools)
            except FunctionUrlPortError as error:
                changes.append(str(error))
            for pool in replaced:
                self._retire(pool)
            if not self.args.no_reload:
                self._watch_stack()
            changes += _route_changes(previous_stack, stack)
            return "; ".join(changes) if changes else "nothing to apply"

    def _retire(self, pool: FunctionPool) -> None:
        """Idle environments stop now; the pool closes once a running invocation has had its full timeout."""
        self.retired.append(pool)
        pool.reload(warm=False)

        def close() -> None:
            pool.close()
            with contextlib.suppress(ValueError):
                self.retired.remove(pool)

        timer = threading.Timer(pool.function.timeout + 1.0, close)
        timer.daemon = True
        timer.start()

    def stop(self, grace: float = 0.0, interrupted: threading.Event | None = None) -> int:
        """Drains the server (requests in flight get up to `grace` seconds), then stops every environment;
        the number of requests still unanswered."""
        self.reloader.stop()
        deadline = time.monotonic() + grace
        unanswered = self.server.drain(grace, interrupted)
        unanswered += self.function_urls.drain(max(0.0, deadline - time.monotonic()), interrupted)
        if self.aws:
            self.aws.stop()
        self.watchdog.stop()
        for pool in [*self.pools.values(), *self.retired]:
            pool.close()
        if unanswered:  # their functions were stopped: they answer 502 now
            self.server.wait_answered(1.0)
            self.function_urls.wait_answered(1.0)
        self.memory_watcher.stop()
        self.server.server_close()
        self.function_urls.close()
        self.opt_dirs.remove()
        return unanswered


def _target(route: Route) -> str:
    if route.integration is not None:
        return Integration.read(route.integration).describe()
    return route.function_id


_TEMPLATE_WATCH = "\0template"  # cannot clash with a function's logical id


def _route_target(url: str, resource_path: str) -> str:
    # an HTTP API's $default route takes every request no other route matches: it has no URL of its own
    return resource_path if resource_path == DEFAULT_ROUTE else f"{url}{resource_path}"


def _differences(before: Function, after: Function) -> list[str]:
    """What changed in a function, by field name (handler, environment, code_dir...)."""
    return [
        item.name for item in dataclasses.fields(Function) if getattr(before, item.name) != getattr(after, item.name)
    ]


def _route_changes(before: Stack, after: Stack) -> list[str]:
    def keys(stack: Stack) -> set[tuple[str, str, str]]:
        return {(route.method, route.resource_path, route.function_id) for route in stack.routes}

    old, new = keys(before), keys(after)
    return [f"+ {method} {path} -> {function}" for method, path, function in sorted(new - old)] + [
        f"- {method} {path} -> {function}" for method, path, function in sorted(old - new)
    ]


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def platform_env_vars(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """--env-vars, with --region and --profile below each function's own variables."""
    env_vars = read_env_vars(args.env_vars)
    platform = {"AWS_REGION": args.region, "AWS_PROFILE": args.profile}
    given = {name: value for name, value in platform.items() if value}
    if given:
        env_vars = {**env_vars, "Parameters": {**given, **env_vars.get("Parameters", {})}}
    return env_vars


def invoke_main(args: argparse.Namespace) -> int:
    """`samlocal invoke`: the result on stdout; exit status 1 when the function failed, 2 when it could not run."""
    console = Console(sys.stderr, debug=bool(args.debug))
    try:
        stack = read_stack(args.template, _parameter_overrides(args.parameter_overrides))
        env_vars = platform_env_vars(args)
        if args.event is None:
            text = "{}"
        elif args.event == "-":
            text = sys.stdin.read()
        else:
            text = Path(args.event).read_text(encoding="utf-8")
        event = parse_event(text)
        function_id = choose_function(stack, args.function, event)
        outcome = invoke(stack, function_id, event, env_vars, console)
    except (TemplateError, EnvVarsError, InvokeError, argparse.ArgumentTypeError) as error:
        print(f"samlocal: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"samlocal: cannot read the event {args.event}: {error.strerror or error}", file=sys.stderr)
        return 2
    sys.stdout.write(outcome.payload.decode("utf-8", errors="replace") + "\n")
    sys.stdout.flush()
    return 0 if outcome.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "invoke":
        return invoke_main(args)
    log_file = args.log_file.open("a", encoding="utf-8") if args.log_file else None
    console = Console(log_file, debug=args.debug, quiet=args.quiet)
    try:
        local_api = LocalApi(args, console)
    except (
        TemplateError,
        EnvVarsError,
        argparse.ArgumentTypeError,
        AwsEndpointError,
        ProvisionError,
        EventSourceError,
        FunctionUrlPortError,
    ) as error:
        print(f"samlocal: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"samlocal: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 2

    stopping = threading.Event()
    interrupted = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            interrupted.set()  # a second signal: stop now
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    local_api.start()
    console.info(local_api.describe())
    console.info("Press Ctrl-C to stop.")
    while not stopping.wait(0.5):
        pass
    in_flight = local_api.server.in_flight + local_api.function_urls.in_flight
    if in_flight:
        console.info(
            f"Stopping... {in_flight} request(s) in flight get up to {args.shutdown_grace:g} s to finish "
            "(Ctrl-C again to stop now)"
        )
    else:
        console.info("Stopping...")
    unanswered = local_api.stop(args.shutdown_grace, interrupted)
    if unanswered:
        console.info(f"Stopped with {unanswered} request(s) cut short")
    return 0
