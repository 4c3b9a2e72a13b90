"""The `tgan` entry point and the one-line error contract of every command."""

from __future__ import annotations

import subprocess
import sys

import click
from _subprocess import repo_env
from click.testing import CliRunner

from tgan_deploy import __version__
from tgan_deploy.cli import SUBCOMMANDS, TganCommand
from tgan_deploy.errors import ConfigError, DataError


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=repo_env(), timeout=120,
                          check=False)


def test_help_lists_every_command_without_importing_torch() -> None:
    result = run_module("-m", "tgan_deploy", "--help")
    assert result.returncode == 0, result.stderr
    for name, (_, help_) in SUBCOMMANDS.items():
        assert name in result.stdout and help_ in result.stdout
    assert set(SUBCOMMANDS) == {"train", "export", "sample", "bench", "eval", "serve", "demo"}
    # Listing commands must stay cheap and work on the base install (no torch).
    probe = run_module("-c", "import sys\nfrom tgan_deploy.cli import main\n"
                       "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                       "print('TORCH-LOADED' if 'torch' in sys.modules else 'NO-TORCH')")
    assert probe.stdout.strip().endswith("NO-TORCH"), probe.stdout + probe.stderr


def test_version() -> None:
    result = run_module("-m", "tgan_deploy", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tgan-deploy, version {__version__}"


def test_unknown_command_is_a_usage_error() -> None:
    result = run_module("-m", "tgan_deploy", "trian")
    assert result.returncode == 2 and "No such command 'trian'" in result.stderr


@click.command(cls=TganCommand)
@click.option("--fail", type=click.Choice(["config", "data", "interrupt", "none"]), default="none")
def tiny(fail: str) -> None:
    """A tiny command that fails the way real commands do."""
    if fail == "config":
        raise ConfigError("optim.batch_size must be positive, got 0")
    if fail == "data":
        raise DataError("no images in /nowhere: pass a folder of PNG/JPEG files")
    if fail == "interrupt":
        raise KeyboardInterrupt
    click.echo("ok")


def test_tgan_error_is_one_line_exit_2() -> None:
    for fail, message in [("config", "optim.batch_size must be positive, got 0"),
                          ("data", "no images in /nowhere: pass a folder of PNG/JPEG files")]:
        result = CliRunner().invoke(tiny, ["--fail", fail])
        assert result.exit_code == 2
        assert result.output == f"error: {message}\n"  # stderr is mixed into output; nothing else printed
        assert "Traceback" not in result.output


def test_interrupt_exits_130_and_success_exits_0() -> None:
    result = CliRunner().invoke(tiny, ["--fail", "interrupt"])
    assert result.exit_code == 130 and result.output == "interrupted\n"
    result = CliRunner().invoke(tiny, [])
    assert result.exit_code == 0 and result.output == "ok\n"


def test_tgan_error_in_a_real_process() -> None:
    code = ("import click\nfrom tgan_deploy.cli import TganCommand\nfrom tgan_deploy.errors import CheckpointError\n"
            "@click.command(cls=TganCommand)\ndef cmd():\n    raise CheckpointError('x.pt is truncated: re-save it')\n"
            "cmd()\n")
    result = run_module("-c", code)
    assert result.returncode == 2
    assert result.stderr == "error: x.pt is truncated: re-save it\n" and result.stdout == ""
