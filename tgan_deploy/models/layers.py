"""Layer factories that mirror the reference's Keras defaults, switchable to PyTorch's.

Keras (the reference's framework) differs from PyTorch in three defaults that change training:
Glorot-uniform kernels with zero bias, BatchNorm momentum 0.99 (= 0.01 in PyTorch's convention)
with eps 1e-3, and "same" padding (for a 5x5 stride-2 conv: padding 2; its transposed twin:
padding 2, output_padding 1). docs/method.md §5.2.
"""

from __future__ import annotations

from torch import nn

KERNEL = 5


def batch_norm(num_features: int, layer_defaults: str, dims: int = 2) -> nn.Module:
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    if layer_defaults == "keras":
        return cls(num_features, momentum=0.01, eps=1e-3)
    return cls(num_features)


def conv_down(in_ch: int, out_ch: int) -> nn.Conv2d:
    """5x5 stride-2 conv, Keras "same" padding: halves the spatial size."""
    return nn.Conv2d(in_ch, out_ch, KERNEL, stride=2, padding=2)


def conv_up(in_ch: int, out_ch: int) -> nn.ConvTranspose2d:
    """5x5 stride-2 transposed conv, Keras "same" padding: doubles the spatial size."""
    return nn.ConvTranspose2d(in_ch, out_ch, KERNEL, stride=2, padding=2, output_padding=1)


def init_weights(module: nn.Module, layer_defaults: str) -> None:
    """Keras: Glorot-uniform kernels, zero biases, BN gamma 1 / beta 0. "torch": leave PyTorch's."""
    if layer_defaults != "keras":
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
