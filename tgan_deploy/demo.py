"""`make demo`: the main job end to end on a built-in default. Grows as the parts land."""

from __future__ import annotations

import click

from tgan_deploy.cli import TganCommand


@click.command(cls=TganCommand)
@click.option("--out", default="demo-out", show_default=True, help="Directory for everything the demo writes.")
def main(out: str) -> None:
    """Train briefly on built-in MNIST, export, sample, check parity, write a grid."""
    import torch

    from tgan_deploy.config import TrainConfig
    from tgan_deploy.models import build_critic, build_generator
    from tgan_deploy.objectives import get_objective, scores

    cfg = TrainConfig()
    cfg.model.resolution, cfg.model.channels, cfg.model.base_channels = 32, 1, 16
    g, d = build_generator(cfg.model), build_critic(cfg.model)
    obj = get_objective(cfg.objective.name)
    fake = g(torch.randn(8, cfg.model.latent_dim))
    a, b = scores(obj, d, torch.rand_like(fake) * 2 - 1, fake)
    click.echo(f"demo: {obj.name} critic loss {obj.critic_loss(a, b).item():.4f} (trainer not yet wired)")
