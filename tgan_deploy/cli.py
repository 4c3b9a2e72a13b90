"""`tgan` / `python -m tgan_deploy`: one entry point over the per-part commands.

Each part owns its command (`tgan_deploy/<part>/cli.py`); this group imports a part only when its
command runs, so `tgan sample` works with the base install (no torch).
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import click

from tgan_deploy import __version__
from tgan_deploy._extras import EXTRA_OF, missing
from tgan_deploy.errors import MissingExtraError, TganError

# command name -> ("module:attribute" of its click command, one-line help)
SUBCOMMANDS = {
    "train": ("tgan_deploy.train.cli:main", "Train a T-GAN or a baseline GAN."),
    "export": ("tgan_deploy.export.cli:main", "Export a generator to ONNX / TensorRT with a parity report."),
    "sample": ("tgan_deploy.runtime.cli:sample_main", "Sample images from an export or a checkpoint."),
    "bench": ("tgan_deploy.runtime.cli:bench_main", "Measure sampling latency and throughput."),
    "eval": ("tgan_deploy.metrics.cli:main", "Evaluate a run or model (mode coverage, feature distances)."),
    "serve": ("tgan_deploy.serve.cli:main", "Serve exports over HTTP (Triton protocol, seed PNGs, a page)."),
    "demo": ("tgan_deploy.demo:main", "Train briefly on built-in MNIST, export, sample, check parity."),
}


def refusal(command: str, exc: MissingExtraError) -> str:
    """The one line a command prints when an optional dependency it needs is missing."""
    return f"{command} needs the [{exc.extra}] extra: {exc}" if exc.extra else f"{command}: {exc}"


class TganCommand(click.Command):
    """A click command that turns user errors into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MissingExtraError as exc:
            click.echo(f"error: {refusal(ctx.command_path, exc)}", err=True)
            ctx.exit(exc.exit_code)
        except TganError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def load_command(name: str) -> click.Command:
    """The click command of `name` (a SUBCOMMANDS key), imported now; MissingExtraError if its extra is missing.

    A part's package checks its extra on import (`require("torch", ...)`); a plain `import yaml` deeper down
    is turned into the same error, so no missing optional module surfaces as a traceback.
    """
    module_name, attr = SUBCOMMANDS[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except MissingExtraError:
        raise
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] not in EXTRA_OF:
            raise  # not an optional dependency: a broken install, worth its traceback
        raise missing(exc.name) from exc
    command: click.Command = getattr(module, attr)
    return command


def _run_script(name: str) -> None:
    """A console script (`tgan-<name>`): its command, or one line naming the missing extra and exit 2."""
    script = f"tgan-{name}"
    try:
        command = load_command(name)
    except MissingExtraError as exc:
        click.echo(f"error: {refusal(script, exc)}", err=True)
        sys.exit(exc.exit_code)
    command.main(prog_name=script)


# The console scripts of pyproject.toml: each imports its part only inside _run_script, so that a missing
# extra is answered in one line instead of an import-time traceback.
train_script = functools.partial(_run_script, "train")
export_script = functools.partial(_run_script, "export")
sample_script = functools.partial(_run_script, "sample")
bench_script = functools.partial(_run_script, "bench")
eval_script = functools.partial(_run_script, "eval")
serve_script = functools.partial(_run_script, "serve")


def int_list(text: str, what: str) -> list[int]:
    """A comma-separated option value (seeds, batch sizes) as integers; TganError naming the option if not."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise TganError(f"{what} must be comma-separated integers, e.g. 1,8,64; got {text!r}") from None
    if not values:
        raise TganError(f"{what} is empty: give comma-separated integers")
    return values


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Static help: listing the commands must not import torch or TensorRT.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in SUBCOMMANDS.items()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        short_help = SUBCOMMANDS[cmd_name][1]
        try:
            command = load_command(cmd_name)
        except MissingExtraError as exc:  # say which extra, when the command is used (`tgan --help` still lists it)
            message, exit_code = refusal(f"{ctx.command_path} {cmd_name}", exc), exc.exit_code

            @click.command(cmd_name, short_help=short_help, add_help_option=False,
                           context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args: tuple[str, ...]) -> None:
                click.echo(f"error: {message}", err=True)
                sys.exit(exit_code)

            return unavailable
        command.short_help = command.short_help or short_help
        return command


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="tgan-deploy")
def main() -> None:
    """tgan-deploy: train T-GANs, export generators to ONNX/TensorRT, sample them fast."""
