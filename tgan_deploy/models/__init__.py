"""Reference architectures: build a generator and a critic from a `ModelConfig`."""

from __future__ import annotations

from torch import nn

from tgan_deploy.config import ModelConfig
from tgan_deploy.models.critic import Critic, make_pairs
from tgan_deploy.models.encoder import DCGANEncoder
from tgan_deploy.models.generator import DCGANGenerator
from tgan_deploy.models.heads import PairHead
from tgan_deploy.models.spectral import apply_spectral_norm
from tgan_deploy.models.toy import MLPEncoder, MLPGenerator

__all__ = ["Critic", "PairHead", "build_critic", "build_generator", "make_pairs"]


def build_generator(cfg: ModelConfig) -> nn.Module:
    """G: z [B, latent_dim] -> images [B, C, R, R] in [-1, 1], or points [B, 2] for arch "mlp"."""
    if cfg.arch == "mlp":
        return MLPGenerator(cfg.latent_dim, cfg.toy_hidden, cfg.toy_depth, cfg.layer_defaults,
                            cfg.num_classes, cfg.label_embed_dim)
    return DCGANGenerator(cfg.latent_dim, cfg.resolution, cfg.channels, cfg.base_channels, cfg.layer_defaults,
                          cfg.num_classes, cfg.label_embed_dim)


def build_critic(cfg: ModelConfig) -> Critic:
    """E + D (+ the projection embedding v if conditional), spectrally normalised per `cfg.spectral_norm`
    (the reference normalises E and D; Miyato & Koyama normalise v too)."""
    encoder: nn.Module
    if cfg.arch == "mlp":
        encoder = MLPEncoder(cfg.toy_hidden, 2, cfg.negative_slope, cfg.layer_defaults)
    else:
        encoder = DCGANEncoder(cfg.resolution, cfg.channels, cfg.base_channels, cfg.negative_slope,
                               cfg.layer_defaults)
    head = PairHead(encoder.feature_dim, cfg.head_hidden, cfg.negative_slope, layer_defaults=cfg.layer_defaults)
    projection = None
    if cfg.num_classes > 0:
        projection = nn.Embedding(cfg.num_classes, encoder.feature_dim)
        nn.init.xavier_uniform_(projection.weight)  # as Miyato & Koyama's reference code initialises it
        projection = apply_spectral_norm(projection, cfg.spectral_norm)
    return Critic(apply_spectral_norm(encoder, cfg.spectral_norm), apply_spectral_norm(head, cfg.spectral_norm),
                  projection)
