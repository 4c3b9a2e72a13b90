"""Class conditioning of the generators: a learned label embedding concatenated with z.

G(z, y) = G'([z, e(y)]) (docs/method.md §7.1, the simpler of the two usual designs): the
first layer sees the class through `label_embed_dim` extra inputs, so every architecture gets the same
treatment and the exported graph adds only a Gather and a Concat in front of today's network.
Conditional BatchNorm (BigGAN) would touch every BN layer and give the 2-D MLP and the DCGANs different
code paths for the same idea. An unconditional generator has no embedding at all: its state_dict and its
exported graph are exactly those of a generator built before conditioning existed.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelEmbedding(nn.Module):
    """[z, e(label)]: z [B, latent_dim], label int64 [B] -> [B, latent_dim + embed_dim]."""

    def __init__(self, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(num_classes, embed_dim)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.table(label)], dim=1)


def make_label_embedding(num_classes: int, embed_dim: int) -> LabelEmbedding | None:
    return LabelEmbedding(num_classes, embed_dim) if num_classes > 0 else None


def generator_input(embedding: LabelEmbedding | None, z: torch.Tensor, label: torch.Tensor | None) -> torch.Tensor:
    """What the first layer of a (possibly conditional) generator reads; a missing or surplus label fails."""
    if embedding is None:
        if label is not None:
            raise ValueError("this generator is unconditional (model.num_classes 0): it takes no label")
        return z
    if label is None:
        raise ValueError(f"this generator is class-conditional ({embedding.table.num_embeddings} classes): "
                         "pass one label per latent")
    return embedding(z, label)
