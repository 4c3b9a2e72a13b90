"""Every architecture is built here from a `ModelConfig`: the reference generator and critic (arch "dcgan",
"mlp") and the imported style models (arch "stylegan2", "stylegan3": constructor kwargs in model.style)."""

from __future__ import annotations

from typing import Any

from torch import nn

from tgan_deploy.config import STYLE_ARCHS, ModelConfig
from tgan_deploy.errors import ConfigError
from tgan_deploy.models.critic import Critic, make_pairs
from tgan_deploy.models.encoder import DCGANEncoder
from tgan_deploy.models.generator import DCGANGenerator
from tgan_deploy.models.heads import PairHead
from tgan_deploy.models.spectral import apply_spectral_norm
from tgan_deploy.models.toy import MLPEncoder, MLPGenerator

__all__ = ["Critic", "PairHead", "build_critic", "build_discriminator", "build_generator", "make_pairs"]


def _style_kwargs(cfg: ModelConfig, role: str) -> dict[str, Any]:
    kwargs = cfg.style.get(role)
    if not isinstance(kwargs, dict):
        raise ConfigError(f"model.style.{role} is missing: this {cfg.arch} config has no {role}")
    return kwargs


def _style_module(cfg: ModelConfig, role: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The style family's generator or discriminator from model.style[role] (docs/stylegan.md), or `kwargs`."""
    from tgan_deploy.models import stylegan2, stylegan3

    families: dict[str, dict[str, Any]] = {
        "stylegan2": {"generator": stylegan2.StyleGAN2Generator, "discriminator": stylegan2.StyleGAN2Discriminator},
        "stylegan3": {"generator": stylegan3.StyleGAN3Generator, "discriminator": stylegan2.StyleGAN2Discriminator},
    }
    if cfg.arch not in families:
        raise ConfigError(f"model.arch {cfg.arch!r}: no style models of that family in this version")
    kwargs = kwargs if kwargs is not None else _style_kwargs(cfg, role)
    try:
        return families[cfg.arch][role](**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.style.{role} does not build a {cfg.arch} {role}: {exc}") from None


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    """The style models' discriminator: image [B, C, R, R] (+ label [B]) -> logits [B, 1]."""
    return _style_module(cfg, "discriminator")


def build_generator(cfg: ModelConfig) -> nn.Module:
    """G: z [B, latent_dim] -> images [B, C, R, R] in [-1, 1], or points [B, 2] for arch "mlp"; style archs:
    the contract's generator (mapping / synthesis / w_avg, docs/stylegan.md)."""
    if cfg.arch in STYLE_ARCHS:
        return _style_module(cfg, "generator")
    if cfg.arch == "mlp":
        return MLPGenerator(cfg.latent_dim, cfg.toy_hidden, cfg.toy_depth, cfg.layer_defaults,
                            cfg.num_classes, cfg.label_embed_dim)
    return DCGANGenerator(cfg.latent_dim, cfg.resolution, cfg.channels, cfg.base_channels, cfg.layer_defaults,
                          cfg.num_classes, cfg.label_embed_dim)


def build_critic(cfg: ModelConfig, single_sample: bool = False) -> Critic:
    """E + D (+ the projection embedding v if conditional), spectrally normalised per `cfg.spectral_norm`
    (the reference normalises E and D; Miyato & Koyama normalise v too).

    arch "stylegan2": E is StyleGAN2's discriminator trunk (model.style.discriminator without its output layer;
    equalised learning rate and R1 instead of spectral norm, as StyleGAN2 trains it); D is the pair head for the
    T-objectives, or, for the single-sample objectives (`single_sample`), the discriminator's own output layer.
    Only the head the objective uses is built: DistributedDataParallel needs every parameter to take part."""
    encoder: nn.Module
    head: nn.Module
    if cfg.arch in STYLE_ARCHS:
        from tgan_deploy.models.stylegan_layers import FullyConnectedLayer

        d_kwargs = {**_style_kwargs(cfg, "discriminator"), "num_classes": 0, "cmap_dim": None, "with_output": False}
        encoder = _style_module(cfg, "discriminator", d_kwargs)
        feature_dim = int(d_kwargs["widths"][0])  # the trunk ends in the 4x4 epilogue's fc: the 4x4 width
        head = FullyConnectedLayer(feature_dim, 1) if single_sample else apply_spectral_norm(
            PairHead(feature_dim, cfg.head_hidden, cfg.negative_slope, layer_defaults=cfg.layer_defaults),
            cfg.spectral_norm)
    else:
        plain = MLPEncoder(cfg.toy_hidden, 2, cfg.negative_slope, cfg.layer_defaults) if cfg.arch == "mlp" else \
            DCGANEncoder(cfg.resolution, cfg.channels, cfg.base_channels, cfg.negative_slope, cfg.layer_defaults)
        feature_dim = plain.feature_dim
        encoder = apply_spectral_norm(plain, cfg.spectral_norm)
        head = apply_spectral_norm(PairHead(feature_dim, cfg.head_hidden, cfg.negative_slope,
                                            layer_defaults=cfg.layer_defaults), cfg.spectral_norm)
    projection = None
    if cfg.num_classes > 0:
        projection = nn.Embedding(cfg.num_classes, feature_dim)
        nn.init.xavier_uniform_(projection.weight)  # as Miyato & Koyama's reference code initialises it
        projection = apply_spectral_norm(projection, cfg.spectral_norm)
    return Critic(encoder, head, projection)
