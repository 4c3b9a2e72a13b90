"""The reference DCGAN generator G (docs/method.md §5.3).

Dense 4*4*C0 -> BN -> ReLU -> reshape; k x [ConvTranspose 5x5 s2 -> BN -> ReLU] with channels halving
down to `base` ; ConvTranspose 5x5 s2 to the image channels -> tanh. No spectral norm on G.
With base = 64: 32 px 256->128,64; 64 px 512->256,128,64; 128 px 1024->...64; 256 px 2048->...64.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from tgan_deploy.models.conditioning import generator_input, make_label_embedding
from tgan_deploy.models.layers import batch_norm, conv_up, init_weights


def generator_channels(resolution: int, base: int) -> list[int]:
    """Channels of the 4x4 input and of each hidden upsampling layer, widest first."""
    hidden_layers = int(math.log2(resolution)) - 3  # 4 -> resolution takes log2(res/4) upsamplings
    return [base * 2 ** (hidden_layers - i) for i in range(hidden_layers + 1)]


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, resolution: int, channels: int, base_channels: int = 64,
                 layer_defaults: str = "keras", num_classes: int = 0, label_embed_dim: int = 0) -> None:
        super().__init__()
        widths = generator_channels(resolution, base_channels)
        self.latent_dim, self.resolution, self.channels = latent_dim, resolution, channels
        self.num_classes = num_classes
        self.start_channels = widths[0]
        self.label_embedding = make_label_embedding(num_classes, label_embed_dim)
        stem_inputs = latent_dim + (label_embed_dim if num_classes else 0)
        self.stem = nn.Sequential(
            nn.Linear(stem_inputs, 4 * 4 * widths[0]),
            batch_norm(4 * 4 * widths[0], layer_defaults, dims=1),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            blocks += [conv_up(c_in, c_out), batch_norm(c_out, layer_defaults), nn.ReLU()]
        blocks += [conv_up(widths[-1], channels), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        init_weights(self, layer_defaults)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, latent_dim] (and label int64 [B] if conditional) -> images [B, channels, R, R] in [-1, 1]."""
        x = self.stem(generator_input(self.label_embedding, z, label)).view(z.shape[0], self.start_channels, 4, 4)
        return self.body(x)
