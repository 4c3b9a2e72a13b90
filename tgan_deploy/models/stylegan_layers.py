"""Layers StyleGAN2 and StyleGAN3 share: the equalised-learning-rate fully-connected layer, bias + activation with
StyleGAN's gain and clamp, and the mapping network z (+ class) -> w (Karras et al. 2019 §2; 2020 "Analyzing and
Improving the Image Quality of StyleGAN", App. B). Written from the papers and the originals' documented behaviour
(NVlabs stylegan2-ada-pytorch / stylegan3 `training/networks*.py`, rosinality `model.py`); key names follow NVlabs'
(`fc0`, `embed`, `w_avg`) so an NVlabs state dict loads as it is.

Only plain torch ops: no custom CUDA kernel, nothing random, a dynamic batch everywhere (ONNX export)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # He gain of leaky ReLU, so activations keep unit variance (StyleGAN's "def_gain")
ACTIVATIONS = ("linear", "lrelu")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the features (StyleGAN's pixel norm of z and of the class embedding)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """NVlabs' bias_act in plain ops, in its order: + bias (over dim 1), activation, * gain, clamp to [-c, c]
    (the conv clamp that keeps fp16 in range; it is part of the model, so it is applied in fp32 too)."""
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnectedLayer(nn.Module):
    """y = act(x W^T * gain + b * lr_multiplier): equalised learning rate (Karras et al. 2018 §4.1), the weight
    stored at N(0, 1/lr_multiplier^2) scale and multiplied by lr_multiplier / sqrt(fan_in) at run time."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: StyleGAN's layers use one of {ACTIVATIONS}")
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain)
        gain = LRELU_GAIN if self.activation == "lrelu" else 1.0
        return bias_act(x, self.bias * self.bias_gain, self.activation, gain)


class MappingNetwork(nn.Module):
    """z [B, z_dim] (+ class index [B]) -> w, broadcast to [B, num_ws, w_dim] (or [B, w_dim] when num_ws is None,
    as the discriminator's class mapping uses it).

    z and the class embedding are each normalised to unit second moment, concatenated, then `num_layers`
    leaky-ReLU FC layers at learning-rate multiplier `lr_multiplier` (0.01: StyleGAN §C). `w_avg` is the moving
    average of w that truncation pulls towards (w' = w_avg + psi (w - w_avg), StyleGAN §3.1)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta  # the trainer's EMA rate of w_avg; inference only reads w_avg
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            self.add_module(f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], "lrelu", lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, label: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        if self.z_dim:
            if z is None:
                raise ValueError(f"this mapping network needs z [B, {self.z_dim}]")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim:
            if label is None:
                raise ValueError(f"this model is class-conditional ({self.c_dim} classes): pass label [B] (int64)")
            one_hot = torch.eye(self.c_dim, dtype=torch.float32, device=label.device)[label]
            parts.append(normalize_2nd_moment(self.embed(one_hot)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is None:
            return x
        return x.unsqueeze(1).repeat(1, self.num_ws, 1)

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """w_avg + psi (w - w_avg) on layers [0, cutoff) (all when None), as NVlabs' mapping(truncation_psi,
        truncation_cutoff)."""
        w_avg = self.get_buffer("w_avg")
        truncated = w_avg + psi * (ws - w_avg)
        if cutoff is None:
            return truncated
        return torch.cat([truncated[:, :cutoff], ws[:, cutoff:]], dim=1)


class StyleGenerator(nn.Module):
    """The contract's style generator (docs/stylegan.md), shared by StyleGAN2 and StyleGAN3: a mapping network and
    a family's synthesis network (with `num_ws`). mapping(z, label) -> ws, synthesis(ws) -> image, forward(z, label)
    = synthesis(mapping(z, label)) at psi 1; `w_avg`, `truncate`, `num_ws`, `z_dim`, `w_dim`, `num_classes`,
    `resolution`, `channels`."""

    def __init__(self, synthesis: nn.Module, mapping: MappingNetwork, resolution: int, channels: int) -> None:
        super().__init__()
        self.synthesis = synthesis
        self.mapping = mapping
        self.z_dim, self.w_dim, self.num_classes = mapping.z_dim, mapping.w_dim, mapping.c_dim
        self.num_ws = int(mapping.num_ws or 0)
        self.resolution, self.channels = resolution, channels

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.get_buffer("w_avg")

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        return self.mapping.truncate(ws, psi, cutoff)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, label))
