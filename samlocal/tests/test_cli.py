"""`samlocal start-api`: SAM CLI's option names, samconfig.toml read as SAM CLI reads it, `python -m samlocal`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from samlocal.cli import parse_args

CONFIG = """
version = 0.1
[default.global.parameters]
stack_name = "demo"
parameter_overrides = "Stage=global"

[default.local_start_api.parameters]
port = 3100
warm_containers = "EAGER"
parameter_overrides = ["Stage=dev", "Size=2"]

[staging.local_start_api.parameters]
host = "0.0.0.0"
port = 3200
env_vars = "staging.json"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "samconfig.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    return tmp_path


def test_the_default_environment_of_samconfig_gives_the_options(project: Path) -> None:
    args = parse_args(["start-api"])
    assert args.port == 3100
    assert args.warm_containers == "eager"
    assert args.parameter_overrides == ["Stage=dev", "Size=2"]  # the command's table beats global
    assert args.template == Path("template.yaml")


def test_the_command_line_beats_the_configuration(project: Path) -> None:
    args = parse_args(["start-api", "--port", "4000", "--warm-containers", "LAZY"])
    assert (args.port, args.warm_containers) == (4000, "lazy")


def test_config_env_and_config_file_choose_another_table(project: Path) -> None:
    other = project / "elsewhere.toml"
    other.write_text(CONFIG.replace("3200", "3300"))
    args = parse_args(["start-api", "--config-file", str(other), "--config-env", "staging"])
    assert (args.host, args.port, args.env_vars) == ("0.0.0.0", 3300, Path("staging.json"))


def test_a_missing_config_env_is_an_error(project: Path) -> None:
    with pytest.raises(SystemExit, match="no environment 'prod'"):
        parse_args(["start-api", "--config-env", "prod"])


def test_without_a_subcommand_it_is_start_api(project: Path) -> None:
    assert parse_args(["-p", "3500"]).port == 3500


def test_container_options_are_accepted_and_reported(project: Path) -> None:
    args = parse_args(["start-api", "--docker-network", "x", "--skip-pull-image"])
    assert args.ignored_options == ["--docker-network", "--skip-pull-image"]


def test_python_dash_m_samlocal_and_the_console_script_agree() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "samlocal", "start-api", "--help"], capture_output=True, text=True, check=True
    )
    script = Path(sys.executable).parent / "samlocal"
    console = subprocess.run([str(script), "start-api", "--help"], capture_output=True, text=True, check=True)
    assert "--disable-authorizer" in module.stdout
    assert module.stdout.replace("__main__.py", "samlocal") == console.stdout
