"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"; the StyleGAN2-ADA code
base's networks): generator = mapping network + synthesis network, and the discriminator. One module for NVlabs'
and rosinality's files: foreign/convert.py maps both key layouts onto these layers (named as NVlabs names them).

Written for inference and export as well as training:
- modulated convolution with the style applied to the activations and the demodulation after the convolution
  (StyleGAN2 eq. 1-3 scale the weights; a convolution is linear, so scaling input channel i by s_i and output
  channel j by 1/sigma_j is the same product; NVlabs' fused_modconv=False path computes it this way too): no
  per-sample weights, no batch-sized grouped conv, so the batch stays dynamic in ONNX;
- FIR up/down-sampling with the [1,3,3,1] filter (normalised to sum 1, gain 4 when up-sampling) as plain pad +
  (transposed) convolution ops, no custom CUDA op; each resampling layer keeps its filter as a `resample_filter`
  buffer [4, 4] (stored normalised, as NVlabs stores it), read from the file like every other tensor;
- per-layer noise from the constant `noise_const` buffers with a learned strength (NVlabs noise_mode='const',
  rosinality randomize_noise=False): nothing random in a forward pass;
- fp32 throughout (NVlabs' fp16 blocks are a training-speed option; the fixtures were computed with force_fp32).
Widths come from `widths` (one per resolution 4, 8, ..., resolution), read from the file's tensor shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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

FIR_TAPS = (1, 3, 3, 1)  # StyleGAN2's resampling filter (binomial, after Zhang 2019 "Making CNNs shift-invariant")
DEMOD_EPS = 1e-8  # eq. 3 of StyleGAN2: sigma_j = sqrt(sum w^2 + eps)
RESNET_GAIN = math.sqrt(0.5)  # residual blocks add two branches, each scaled by sqrt(1/2) to keep the variance
D_ARCHITECTURES = ("resnet", "orig")


def nvlabs_widths(resolution: int, channel_base: int = 32768, channel_max: int = 512) -> list[int]:
    """NVlabs' width rule, min(channel_base // res, channel_max) for res 4 ... resolution: `widths` for a model
    built without a file (StyleGAN2-ADA's paper256 config: channel_base 16384, channel_max 512)."""
    return [min(channel_base // 2**i, channel_max) for i in range(2, int(math.log2(resolution)) + 1)]


def fir_filter(taps: Sequence[int | float]) -> torch.Tensor:
    """The separable 2-D FIR filter of 1-D taps, normalised to sum 1 (NVlabs' setup_filter, rosinality's
    make_kernel): the initial value of the `resample_filter` buffers. The buffers are loaded from the file (any
    4x4 filter, need not be separable or symmetric); the paddings below are derived for 4 taps."""
    if len(taps) != 4:
        raise ValueError(f"resample filter {list(taps)}: only 4-tap filters are supported")
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def fir(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Per-channel 2-D convolution with f (a true convolution: f flipped for torch's correlation), zero padding
    `pad` on every side."""
    c = x.shape[1]
    kernel = (f.flip([0, 1]) * gain)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kernel, padding=pad, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x up-sampling: zeros inserted between pixels, then the FIR f with gain 4, padding (2, 1) (NVlabs'
    upsample2d, rosinality's Upsample). As one transposed conv: out[n] = sum_i x[i] f[n + 1 - 2i], which is that
    zero-insert + pad (2, 1) + convolve, written out."""
    c = x.shape[1]
    kernel = (f * 4)[None, None].repeat(c, 1, 1, 1)
    return F.conv_transpose2d(x, kernel, stride=2, padding=1, groups=c)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (StyleGAN2 eq. 1-3), optionally 2x up-sampling, + noise, bias, leaky ReLU, clamp.

    `equalized_weight`: rosinality multiplies the conv weight by 1/sqrt(fan_in) before modulating it (equalised
    learning rate); NVlabs does not (demodulation cancels the scale but for eps, and the scale sets the training
    step size). Keys: weight [out, in, 3, 3], bias, noise_strength [], noise_const [res, res], affine.*."""

    noise_const: torch.Tensor
    resample_filter: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 conv_clamp: float | None = None, resample_filter: Sequence[int] = FIR_TAPS,
                 equalized_weight: bool = False) -> None:
        super().__init__()
        self.up, self.conv_clamp = up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)  # styles start at 1 (StyleGAN2 App. B)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if up:
            self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.weight_gain = 1 / math.sqrt(in_channels * 9) if equalized_weight else 1.0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # s_i, [B, in]
        weight = self.weight * self.weight_gain
        # eq. 3: sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2 + eps) = sqrt(sum_i s_i^2 (sum_k w_ijk^2) + eps):
        # one [B, in] x [in, out] product instead of a per-sample weight tensor.
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + DEMOD_EPS).rsqrt()  # [B, out]
        x = x * styles[:, :, None, None]  # eq. 1 moved onto the activations
        if self.up:
            # transposed stride-2 conv (weight as [in, out, 3, 3]), then the FIR with gain 4 and padding 1:
            # (2H + 1) + 2 - 3 = 2H pixels, aligned as NVlabs' conv2d_resample(up=2, padding=1).
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = fir(x, self.resample_filter, pad=1, gain=4.0)
        else:
            x = F.conv2d(x, weight, padding=1)
        x = x * dcoefs[:, :, None, None] + self.noise_const * self.noise_strength
        return bias_act(x, self.bias, "lrelu", LRELU_GAIN, self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, not demodulated; the equalised-lr gain 1/sqrt(fan_in) is
    applied to the styles (NVlabs; rosinality applies it to the weight: the same product)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight)
        return bias_act(x, self.bias, "linear", 1.0, self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator (StyleGAN2 Fig. 7b): [const | up-conv0], conv1, ToRGB added to the
    up-sampled image of the previous block. Uses num_conv + 1 ws: the ToRGB shares its w with the next block's
    first conv (NVlabs' w indexing; rosinality's too)."""

    resample_filter: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None, resample_filter: Sequence[int], equalized_weight: bool) -> None:
        super().__init__()
        self.in_channels = in_channels
        layer = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, resample_filter=resample_filter,
                     equalized_weight=equalized_weight)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))  # the learned 4x4 input
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=True, **layer)  # type: ignore[arg-type]
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)  # type: ignore[arg-type]
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        if in_channels:  # up-samples the previous block's image
            self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None,
                ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0])
        else:
            x = self.conv0(x, ws[:, 0])
            x = self.conv1(x, ws[:, 1])
        rgb = self.torgb(x, ws[:, self.num_conv])
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, channels, resolution, resolution] (not clamped): blocks b4 ... b{res}."""

    def __init__(self, w_dim: int, resolution: int, channels: int, widths: Sequence[int],
                 conv_clamp: float | None = None, resample_filter: Sequence[int] = FIR_TAPS,
                 equalized_weight: bool = False) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        if resolution < 4 or 2**log2 != resolution or len(widths) != log2 - 1:
            raise ValueError(f"resolution {resolution} with widths {list(widths)}: a power of two >= 4 and one width "
                             "per resolution 4, 8, ..., resolution")
        self.resolutions = [2**i for i in range(2, log2 + 1)]
        self.w_dim, self.resolution, self.channels = w_dim, resolution, channels
        for i, res in enumerate(self.resolutions):
            in_channels = widths[i - 1] if i else 0
            self.add_module(f"b{res}", SynthesisBlock(in_channels, widths[i], w_dim, res, channels, conv_clamp,
                                                      resample_filter, equalized_weight))
        self.num_ws = sum(block.num_conv for block in self.blocks()) + 1  # + the last block's ToRGB

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.resolutions]

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        x = img = None
        w_idx = 0
        for block in self.blocks():
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + 1])
            w_idx += block.num_conv
        assert img is not None
        return img


class StyleGAN2Generator(StyleGenerator):
    """StyleGAN2's generator with the contract's interface (StyleGenerator). Constructor kwargs = config
    model.style["generator"]."""

    def __init__(self, z_dim: int, w_dim: int, resolution: int, channels: int, widths: Sequence[int],
                 num_classes: int = 0, mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 embed_features: int | None = None, layer_features: int | None = None, w_avg_beta: float = 0.995,
                 conv_clamp: float | None = None, resample_filter: Sequence[int] = FIR_TAPS,
                 equalized_weight: bool = False) -> None:
        synthesis = SynthesisNetwork(w_dim, resolution, channels, widths, conv_clamp, resample_filter,
                                     equalized_weight)
        super().__init__(synthesis, MappingNetwork(z_dim, num_classes, w_dim, synthesis.num_ws, mapping_layers,
                                                   embed_features, layer_features, mapping_lr_multiplier,
                                                   w_avg_beta), resolution, channels)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution (weight * 1/sqrt(fan_in)), bias, activation, clamp; `down`: the FIR filter with
    padding k//2 + 1, then a stride-2 convolution (NVlabs' conv2d_resample(down=2), rosinality's Blur + conv)."""

    resample_filter: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: bool = False, conv_clamp: float | None = None,
                 resample_filter: Sequence[int] = FIR_TAPS) -> None:
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if down:
            self.register_buffer("resample_filter", fir_filter(resample_filter))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.down:
            x = F.conv2d(fir(x, self.resample_filter, pad=self.padding + 1), weight, stride=2)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, self.act_gain * gain, clamp)


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: [fromrgb], conv0, down-conv1; "resnet" adds a 1x1 down-sampled skip,
    both branches scaled by sqrt(1/2) (StyleGAN2 Fig. 7c); "orig" has no skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str, conv_clamp: float | None, resample_filter: Sequence[int]) -> None:
        super().__init__()
        self.architecture = architecture
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=True, conv_clamp=conv_clamp,
                                 resample_filter=resample_filter)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=True,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "fromrgb"):
            x = self.fromrgb(x)
        if self.architecture == "resnet":
            y = self.skip(x, gain=RESNET_GAIN)
            return y + self.conv1(self.conv0(x), gain=RESNET_GAIN)
        return self.conv1(self.conv0(x))


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation over groups of `group_size` samples (sample i is in group i mod N/G),
    averaged over channels and pixels, as `num_channels` feature maps (Karras et al. 2018 §3)."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels  # group_size None: the whole batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g, f = min(self.group_size or n, n), self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end: minibatch std, conv, fc, out; conditional: the projection (out . cmap) / sqrt(cmap_dim)
    (Miyato & Koyama 2018, with cmap the class mapped by the D's own mapping network)."""

    def __init__(self, in_channels: int, cmap_dim: int, mbstd_group_size: int | None, mbstd_num_channels: int,
                 conv_clamp: float | None, resolution: int = 4, with_output: bool = True) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        if with_output:  # without: the trunk only (features): the T-GAN encoder E
            self.out = FullyConnectedLayer(in_channels, cmap_dim or 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden features [B, in_channels] (after fc, before out): what the T-GAN encoder E returns."""
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.fc(self.conv(x).flatten(1))

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        x = self.out(self.features(x))
        if cmap is not None:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class StyleGAN2Discriminator(nn.Module):
    """image [B, channels, R, R] (+ class index [B]) -> logits [B, 1]. `widths`: one per resolution 4 ... R.
    Constructor kwargs = config model.style["discriminator"]."""

    def __init__(self, resolution: int, channels: int, widths: Sequence[int], num_classes: int = 0,
                 architecture: str = "resnet", conv_clamp: float | None = None, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1, cmap_dim: int | None = None, mapping_layers: int = 8,
                 mapping_lr_multiplier: float = 0.01, resample_filter: Sequence[int] = FIR_TAPS,
                 with_output: bool = True) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        if resolution < 8 or 2**log2 != resolution or len(widths) != log2 - 1:
            raise ValueError(f"resolution {resolution} with widths {list(widths)}: a power of two >= 8 and one width "
                             "per resolution 4, 8, ..., resolution")
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"discriminator architecture {architecture!r}: supported are {D_ARCHITECTURES}")
        self.resolution, self.channels, self.num_classes = resolution, channels, num_classes
        width = dict(zip([2**i for i in range(2, log2 + 1)], widths, strict=True))
        self.resolutions = [2**i for i in range(log2, 2, -1)]
        for res in self.resolutions:
            self.add_module(f"b{res}", DiscriminatorBlock(width[res] if res < resolution else 0, width[res],
                                                          width[res // 2], channels, architecture, conv_clamp,
                                                          resample_filter))
        cmap_dim = (width[4] if cmap_dim is None else cmap_dim) if num_classes else 0
        if num_classes:
            self.mapping = MappingNetwork(0, num_classes, cmap_dim, None, mapping_layers,
                                          lr_multiplier=mapping_lr_multiplier, w_avg_beta=None)
        if num_classes and not with_output:
            raise ValueError("a discriminator without its output layer has no class projection (num_classes 0)")
        self.b4 = DiscriminatorEpilogue(width[4], cmap_dim, mbstd_group_size, mbstd_num_channels, conv_clamp,
                                        with_output=with_output)
        self.feature_dim, self.with_output = width[4], with_output

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """The trunk: blocks b{R} ... b8, then the epilogue up to its last hidden layer -> [B, feature_dim]
        (the T-GAN encoder E of a stylegan2 trained by tgan-train: models/__init__.py build_critic)."""
        return self.b4.features(self._blocks(img))

    def forward(self, img: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, 1]; built `with_output=False` (the trunk), the features [B, feature_dim]."""
        if not self.with_output:
            return self.features(img)
        cmap = self.mapping(None, label) if self.num_classes else None
        return self.b4(self._blocks(img), cmap)

    def _blocks(self, img: torch.Tensor) -> torch.Tensor:
        x = img
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x)
        return x
