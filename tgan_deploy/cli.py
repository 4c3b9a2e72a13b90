"""`tgan` / `python -m tgan_deploy`: one entry point over the per-part commands.

Each part owns its command (`tgan_deploy/<part>/cli.py`); this group imports a part only when its
command runs, so `tgan sample` works with the base install (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from tgan_deploy import __version__
from tgan_deploy.errors import TganError

# command name -> "module:attribute" of its click command
SUBCOMMANDS = {
    "train": ("tgan_deploy.train.cli:main", "Train a T-GAN or a baseline GAN."),
    "export": ("tgan_deploy.export.cli:main", "Export a generator to ONNX / TensorRT with a parity report."),
    "sample": ("tgan_deploy.runtime.cli:sample_main", "Sample images from an export or a checkpoint."),
    "bench": ("tgan_deploy.runtime.cli:bench_main", "Measure sampling latency and throughput."),
    "eval": ("tgan_deploy.metrics.cli:main", "Evaluate a run or model (mode coverage, feature distances)."),
    "serve": ("tgan_deploy.serve.cli:main", "Serve exports over HTTP (Triton protocol, seed PNGs, a page)."),
    "demo": ("tgan_deploy.demo:main", "Train briefly on built-in MNIST, export, sample, check parity."),
}


class TganCommand(click.Command):
    """A click command that turns user errors into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TganError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


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
        target, short_help = SUBCOMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            command: click.Command = getattr(importlib.import_module(module_name), attr)
        except TganError as exc:  # a missing extra: say which, when the command is used
            message = str(exc)

            @click.command(cmd_name, short_help=short_help, context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args: tuple[str, ...]) -> None:
                raise click.ClickException(message)

            return unavailable
        command.short_help = command.short_help or short_help
        return command


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="tgan-deploy")
def main() -> None:
    """tgan-deploy: train T-GANs, export generators to ONNX/TensorRT, sample them fast."""
