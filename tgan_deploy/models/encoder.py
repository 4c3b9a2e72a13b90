"""The reference encoder E (docs/method.md §5.3): images -> feature vectors.

Conv 5x5 s2 -> LReLU; then [Conv 5x5 s2 -> BN -> LReLU] per further layer; global average pool.
Spectral norm (on every kernel and, faithful mode, BN gamma) is applied by the critic builder.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from tgan_deploy.models.layers import batch_norm, conv_down, init_weights

# Conv widths per resolution at base 64 (the reference); the last is the feature dimension.
ENCODER_WIDTHS = {
    32: [64, 128, 256],
    64: [64, 128, 256, 512],
    128: [128, 256, 512, 1024],
    256: [128, 256, 512, 1024, 2048],
}


def encoder_channels(resolution: int, base: int) -> list[int]:
    return [w * base // 64 for w in ENCODER_WIDTHS[resolution]]


class DCGANEncoder(nn.Module):
    def __init__(self, resolution: int, channels: int, base_channels: int = 64,
                 negative_slope: float = 0.3, layer_defaults: str = "keras") -> None:
        super().__init__()
        widths = encoder_channels(resolution, base_channels)
        layers: list[nn.Module] = [conv_down(channels, widths[0]), nn.LeakyReLU(negative_slope)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [conv_down(c_in, c_out), batch_norm(c_out, layer_defaults), nn.LeakyReLU(negative_slope)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[-1]
        init_weights(self, layer_defaults)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B, C, R, R] -> features [B, feature_dim]."""
        return self.body(x).mean(dim=(2, 3))
