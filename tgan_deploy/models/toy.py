"""MLPs for 2-D toy mixtures (ring8, grid25), after PacGAN's setup (arXiv:1712.04086, fjxmlzn/PacGAN):
G is 2 -> 400 -> 400 -> 400 -> 400 -> 2 with BN + ReLU; E mirrors it with LeakyReLU and no output layer.
"""

from __future__ import annotations

import torch
from torch import nn

from tgan_deploy.models.conditioning import generator_input, make_label_embedding
from tgan_deploy.models.layers import batch_norm, init_weights

DATA_DIM = 2


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int = 2, hidden: int = 400, depth: int = 4,
                 layer_defaults: str = "keras", num_classes: int = 0, label_embed_dim: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.label_embedding = make_label_embedding(num_classes, label_embed_dim)
        layers: list[nn.Module] = []
        width = latent_dim + (label_embed_dim if num_classes else 0)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), batch_norm(hidden, layer_defaults, dims=1), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, DATA_DIM))
        self.body = nn.Sequential(*layers)
        init_weights(self, layer_defaults)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, latent_dim] (and label int64 [B] if conditional) -> points [B, 2]."""
        return self.body(generator_input(self.label_embedding, z, label))


class MLPEncoder(nn.Module):
    def __init__(self, hidden: int = 400, depth: int = 2, negative_slope: float = 0.3,
                 layer_defaults: str = "keras") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = DATA_DIM
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(negative_slope)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.feature_dim = hidden
        init_weights(self, layer_defaults)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """points [B, 2] -> features [B, hidden]."""
        return self.body(x)
