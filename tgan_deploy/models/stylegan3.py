"""StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"): the synthesis network, written
with plain torch ops so that it exports to ONNX with a dynamic batch; the mapping network is StyleGAN2's.

What the paper changes against StyleGAN2 (section 3, appendix F):
- the input is a set of Fourier features (`FourierFeatures`) whose frequencies are rotated and translated by an
  affine of the first w (and by the user-settable `transform` buffer: translation / rotation of the output);
- every layer treats its feature map as a band-limited continuous signal: modulated conv (3x3 for -T, 1x1 for -R),
  then the non-linearity runs at a temporarily higher sampling rate: up-sample with a low-pass FIR filter, leaky
  ReLU, low-pass filter and down-sample ("filtered leaky ReLU", eq. 3 / fig. 4); -R uses a radially symmetric
  (jinc) down-sampling filter in the layers that are not critically sampled;
- no noise, no skip ToRGB: a magnitude EMA normalises each layer's input, one ToRGB at the end, times
  `output_scale`.

The layer geometry (sizes, sampling rates, cutoffs, paddings, up/down factors, filter lengths) is computed here
from the constructor arguments exactly as the paper's schedule (appendix F.1) defines it; the FIR filters
themselves (Kaiser-windowed sinc / jinc, designed by the original with scipy) are buffers that come from the
converted file, never redesigned here, so a module built from kwargs alone has zero filters until its state
dict is loaded. Parameter and buffer names follow the original's state dict (`synthesis.L3_36_64.affine.weight`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tgan_deploy.models.stylegan_layers import (
    LRELU_GAIN,
    FullyConnectedLayer,
    MappingNetwork,
    StyleGenerator,
    bias_act,
)

# The original's defaults for the arguments a snapshot's `init_kwargs` may leave out (SynthesisNetwork,
# SynthesisLayer, MappingNetwork of NVlabs/stylegan3 training/networks_stylegan3.py).
SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "channel_base": 32768, "channel_max": 512, "num_layers": 14, "num_critical": 2, "first_cutoff": 2.0,
    "first_stopband": 2 ** 2.1, "last_stopband_rel": 2 ** 0.3, "margin_size": 10, "output_scale": 0.25,
    "conv_kernel": 3, "filter_size": 6, "lrelu_upsampling": 2, "use_radial_filters": False, "conv_clamp": 256,
}
# Training-only arguments (fp16 layer choice, EMA decay rates): accepted so that a file's kwargs round-trip,
# without effect on what the network computes here (everything runs in float32, EMAs are frozen).
TRAINING_ONLY = ("num_fp16_res", "magnitude_ema_beta")


@dataclasses.dataclass(frozen=True)
class LayerGeometry:
    """One synthesis layer's shape and filtering, as NVlabs' SynthesisLayer derives it (square images)."""

    name: str
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    is_torgb: bool
    conv_kernel: int
    up_factor: int
    up_taps: int
    down_factor: int
    down_taps: int
    down_radial: bool
    padding: tuple[int, int, int, int]  # x lo, x hi, y lo, y hi of the up-sampled signal (negative: crop)


@dataclasses.dataclass(frozen=True)
class InputGeometry:
    channels: int
    size: int
    sampling_rate: float
    bandwidth: float


def synthesis_geometry(resolution: int, channels: int, cfg: dict[str, Any]) -> tuple[InputGeometry,
                                                                                      list[LayerGeometry]]:
    """Appendix F.1: cutoffs f_c and stopbands f_t rise geometrically from the first layer to the last
    `num_critical` (critically sampled) layers; each layer's sampling rate is the power of two that holds its
    stopband, its size adds `margin_size` on each side (except the last two, at the output resolution)."""
    n = cfg["num_layers"]
    last_cutoff = resolution / 2
    last_stopband = last_cutoff * cfg["last_stopband_rel"]
    exponents = np.minimum(np.arange(n + 1) / (n - cfg["num_critical"]), 1)
    cutoffs = cfg["first_cutoff"] * (last_cutoff / cfg["first_cutoff"]) ** exponents
    stopbands = cfg["first_stopband"] * (last_stopband / cfg["first_stopband"]) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    sizes = rates + cfg["margin_size"] * 2
    sizes[-2:] = resolution
    widths = np.rint(np.minimum((cfg["channel_base"] / 2) / cutoffs, cfg["channel_max"]))
    widths[-1] = channels
    layers = []
    for idx in range(n + 1):
        prev = max(idx - 1, 0)
        is_torgb = idx == n
        kernel = 1 if is_torgb else cfg["conv_kernel"]
        tmp_rate = max(rates[prev], rates[idx]) * (1 if is_torgb else cfg["lrelu_upsampling"])
        up = int(np.rint(tmp_rate / rates[prev]))
        down = int(np.rint(tmp_rate / rates[idx]))
        up_taps = cfg["filter_size"] * up if up > 1 and not is_torgb else 1
        down_taps = cfg["filter_size"] * down if down > 1 and not is_torgb else 1
        in_size, out_size = int(sizes[prev]), int(sizes[idx])
        # Padding of the up-sampled signal so that the down-sampled output has out_size samples, split so that
        # sample locations follow the symmetric interpretation (appendix C.3).
        pad_total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        layers.append(LayerGeometry(
            name=f"L{idx}_{out_size}_{int(widths[idx])}", in_channels=int(widths[prev]),
            out_channels=int(widths[idx]), in_size=in_size, out_size=out_size, is_torgb=is_torgb,
            conv_kernel=kernel, up_factor=up, up_taps=up_taps, down_factor=down, down_taps=down_taps,
            down_radial=bool(cfg["use_radial_filters"]) and idx < n - cfg["num_critical"],
            padding=(pad_lo, pad_hi, pad_lo, pad_hi)))
    first = InputGeometry(channels=int(widths[0]), size=int(sizes[0]), sampling_rate=float(rates[0]),
                          bandwidth=float(cutoffs[0]))
    return first, layers


def _crop_or_pad(x: torch.Tensor, lo: int, hi: int, dim: int) -> torch.Tensor:
    """Remove `lo` / `hi` samples from the start / end of `dim` (2 or 3), zero-padding where they are negative."""
    if lo < 0 or hi < 0:
        spec = [max(-lo, 0), max(-hi, 0)] if dim == 3 else [0, 0, max(-lo, 0), max(-hi, 0)]
        x = F.pad(x, spec)
    lo, hi = max(lo, 0), max(hi, 0)
    return x.narrow(dim, lo, x.shape[dim] - lo - hi)


def upsample_fir(x: torch.Tensor, f: torch.Tensor, up: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Insert up-1 zeros after every sample, pad by `padding`, convolve with the separable filter f (x and y) at
    gain up per axis: NVlabs' upfirdn2d(x, f, up, padding, gain=up**2). Done as one depthwise transposed conv per
    axis (the zeros are never materialised), then the crop / pad that the padding amounts to."""
    taps = f.shape[0]
    channels = x.shape[1]
    for dim, (lo, hi) in ((3, padding[0:2]), (2, padding[2:4])):
        shape = (channels, 1, 1, taps) if dim == 3 else (channels, 1, taps, 1)
        stride = (1, up) if dim == 3 else (up, 1)
        x = F.conv_transpose2d(x, (f * up).reshape(1, 1, *shape[2:]).expand(shape), stride=stride, groups=channels)
        # The transposed conv's output sample m is the padded up-sampled signal's sample m - (taps - 1 - lo).
        x = _crop_or_pad(x, taps - 1 - lo, taps - up - hi, dim)
    return x


def downsample_fir(x: torch.Tensor, f: torch.Tensor, down: int) -> torch.Tensor:
    """Convolve with f (1-D: separable in x and y; 2-D: radial) without padding, keep every down-th sample:
    NVlabs' upfirdn2d(x, f, down=down). Convolution, so the filter is flipped for torch's cross-correlation."""
    channels = x.shape[1]
    if f.dim() == 2:
        kernel = f.flip((0, 1)).reshape(1, 1, *f.shape).expand(channels, 1, *f.shape)
        return F.conv2d(x, kernel, stride=down, groups=channels)
    taps = f.shape[0]
    flipped = f.flip(0)
    x = F.conv2d(x, flipped.reshape(1, 1, 1, taps).expand(channels, 1, 1, taps), stride=(1, down), groups=channels)
    return F.conv2d(x, flipped.reshape(1, 1, taps, 1).expand(channels, 1, taps, 1), stride=(down, 1),
                    groups=channels)


class FourierFeatures(nn.Module):
    """The synthesis input (section 3.1, appendix F): `channels` sinusoids of fixed frequencies and phases sampled
    on a `size` x `size` grid at `sampling_rate`, rotated and translated per sample by an affine of w (then by
    the user's `transform`), frequencies beyond the band faded out, mixed by a learned channel matrix."""

    transform: torch.Tensor
    freqs: torch.Tensor
    phases: torch.Tensor
    grid: torch.Tensor

    def __init__(self, w_dim: int, geometry: InputGeometry) -> None:
        super().__init__()
        self.channels = geometry.channels
        self.sampling_rate = geometry.sampling_rate
        self.bandwidth = geometry.bandwidth
        self.weight = nn.Parameter(torch.zeros(geometry.channels, geometry.channels))
        # (cos, sin) of a rotation and an (x, y) translation; the original initialises its bias to (1, 0, 0, 0).
        self.affine = FullyConnectedLayer(w_dim, 4)
        # A user transform of the output (3x3 homogeneous; NVlabs' gen_images.py sets the inverse of a
        # translate / rotate matrix here). Identity unless set.
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.zeros(geometry.channels, 2))
        self.register_buffer("phases", torch.zeros(geometry.channels))
        # Sample positions: pixel centres, in units where the input spans size / sampling_rate.
        coords = (torch.arange(geometry.size, dtype=torch.float64) + 0.5 - geometry.size / 2) / self.sampling_rate
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij")[::-1], dim=-1)  # [H, W, (x, y)]
        self.register_buffer("grid", grid.reshape(-1, 2).float(), persistent=False)
        self.size = geometry.size

    def set_output_transform(self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> None:
        """Move the output image by `translate` (x, y, in image widths: 1/resolution is one output pixel; +x is to
        the right, +y down) and rotate it by `rotate` degrees, as NVlabs' gen_images.py --translate / --rotate:
        the buffer holds the inverse of that motion (the input samples the signal at the moved-back positions)."""
        angle = math.radians(rotate)
        c, s = math.cos(angle), math.sin(angle)
        motion = np.array([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]])
        self.transform.copy_(torch.from_numpy(np.linalg.inv(motion)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # unit (cos, sin): a pure rotation
        cos, sin, tx, ty = t.unbind(1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # Inverse rotation, then inverse translation of the image, then the user's transform.
        rotate = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
        translate = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(-1, 3, 3)
        transforms = rotate @ translate @ self.transform
        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # [B, C]
        freqs = self.freqs @ transforms[:, :2, :2]  # [B, C, 2]
        # A transform can push frequencies past the band; fade them linearly to 0 at the Nyquist rate.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth))
        amplitudes = amplitudes.clamp(0, 1)
        x = self.grid @ freqs.transpose(1, 2)  # [B, H*W, C]
        x = torch.sin((x + phases.unsqueeze(1)) * (2 * math.pi)) * amplitudes.unsqueeze(1)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.reshape(-1, self.size, self.size, self.channels).permute(0, 3, 1, 2)


class AliasFreeLayer(nn.Module):
    """One synthesis layer (NVlabs' SynthesisLayer): modulated conv, then the filtered leaky ReLU (bias, up-sample,
    leaky ReLU with gain sqrt(2), clamp, low-pass and down-sample); the ToRGB layer is a 1x1 modulated conv
    without demodulation, bias and clamp only."""

    magnitude_ema: torch.Tensor

    def __init__(self, w_dim: int, geometry: LayerGeometry, conv_clamp: float | None) -> None:
        super().__init__()
        g = geometry
        self.geometry = g
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, g.in_channels)
        self.weight = nn.Parameter(torch.zeros(g.out_channels, g.in_channels, g.conv_kernel, g.conv_kernel))
        self.bias = nn.Parameter(torch.zeros(g.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_filter: torch.Tensor | None
        self.down_filter: torch.Tensor | None
        self.register_buffer("up_filter", torch.zeros(g.up_taps) if g.up_taps > 1 else None)
        down_shape = (g.down_taps, g.down_taps) if g.down_radial else (g.down_taps,)
        self.register_buffer("down_filter", torch.zeros(down_shape) if g.down_taps > 1 else None)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        styles = self.affine(w)
        weight: torch.Tensor = self.weight
        if g.is_torgb:
            styles = styles * (1 / math.sqrt(g.in_channels * g.conv_kernel ** 2))
        else:
            # Pre-normalisation (fp16 range): weights to unit RMS per output channel, styles to unit RMS. The
            # original takes the styles' RMS over the whole batch; demodulation cancels any per-sample scale up
            # to its 1e-8 epsilon, so per sample keeps every sample independent of the batch it runs in.
            weight = weight * weight.square().mean((1, 2, 3), keepdim=True).rsqrt()
            styles = styles * styles.square().mean(1, keepdim=True).rsqrt()
        # Modulation on the activations, not on a per-sample weight: one conv for any batch size (the input
        # magnitude normalisation, 1/sqrt(EMA of E[x^2]), rides along, after demodulation as in the original).
        x = x * (styles * self.magnitude_ema.rsqrt()).unsqueeze(2).unsqueeze(3)
        x = F.conv2d(x, weight, padding=g.conv_kernel - 1)
        if not g.is_torgb:
            # Demodulation (StyleGAN2 eq. 3): each output channel of the modulated weight to unit L2 norm.
            demod = (styles.square() @ weight.square().sum((2, 3)).t() + 1e-8).rsqrt()
            x = x * demod.unsqueeze(2).unsqueeze(3)
        return self._filtered_lrelu(x)

    def _filtered_lrelu(self, x: torch.Tensor) -> torch.Tensor:
        """NVlabs' filtered_lrelu (its reference path): bias at the input rate, up-sample (gain up^2), leaky ReLU
        (gain sqrt(2)) and clamp at the temporary rate, low-pass and down-sample. The ToRGB layer: bias, clamp."""
        g = self.geometry
        x = bias_act(x, self.bias, "linear")
        if self.up_filter is not None:
            x = upsample_fir(x, self.up_filter, g.up_factor, g.padding)
        if g.is_torgb:
            return bias_act(x, None, "linear", clamp=self.conv_clamp)
        x = bias_act(x, None, "lrelu", LRELU_GAIN, self.conv_clamp)
        if self.down_filter is not None:
            x = downsample_fir(x, self.down_filter, g.down_factor)
        return x


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, C, R, R]: ws[:, 0] drives the Fourier input, ws[:, i] layer i-1."""

    def __init__(self, w_dim: int, resolution: int, channels: int, **kwargs: Any) -> None:
        super().__init__()
        unknown = set(kwargs) - set(SYNTHESIS_DEFAULTS) - set(TRAINING_ONLY)
        if unknown:
            raise ValueError(f"StyleGAN3 synthesis arguments not understood: {sorted(unknown)}")
        cfg = {**SYNTHESIS_DEFAULTS, **kwargs}
        first, layers = synthesis_geometry(resolution, channels, cfg)
        self.output_scale = float(cfg["output_scale"])
        self.num_ws = cfg["num_layers"] + 2
        self.input = FourierFeatures(w_dim, first)
        self.layer_names = [g.name for g in layers]
        for g in layers:
            self.add_module(g.name, AliasFreeLayer(w_dim, g, cfg["conv_clamp"]))

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.input(ws[:, 0])
        for idx, name in enumerate(self.layer_names):
            x = getattr(self, name)(x, ws[:, idx + 1])
        return x * self.output_scale


class StyleGAN3Generator(StyleGenerator):
    """StyleGAN3's generator with the contract's interface (StyleGenerator): StyleGAN2's mapping network (2 layers
    by default in StyleGAN3) and the alias-free synthesis network. Constructor kwargs = config
    model.style["generator"]; `synthesis` holds NVlabs' SynthesisNetwork arguments (SYNTHESIS_DEFAULTS)."""

    def __init__(self, z_dim: int, w_dim: int, resolution: int, channels: int, num_classes: int = 0,
                 mapping_layers: int = 2, mapping_lr_multiplier: float = 0.01, w_avg_beta: float = 0.998,
                 synthesis: dict[str, Any] | None = None) -> None:
        network = SynthesisNetwork(w_dim, resolution, channels, **(synthesis or {}))
        super().__init__(network, MappingNetwork(z_dim, num_classes, w_dim, network.num_ws, mapping_layers,
                                                 lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta),
                         resolution, channels)
