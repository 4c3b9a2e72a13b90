"""Reference architectures (docs/method.md §5): shapes, sizes, spectral norm, Keras defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from tgan_deploy.config import ModelConfig
from tgan_deploy.models import build_critic, build_generator, make_pairs
from tgan_deploy.models.spectral import FaithfulSpectralNorm

# Small widths keep 128 / 256 px fast; 64 px also runs at the reference width elsewhere.
BASE = {32: 8, 64: 8, 128: 4, 256: 2}


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_model_shapes(resolution: int, channels: int) -> None:
    cfg = ModelConfig(resolution=resolution, channels=channels, base_channels=BASE[resolution], latent_dim=10)
    g, critic = build_generator(cfg), build_critic(cfg)
    images = g(torch.randn(2, 10))
    assert images.shape == (2, channels, resolution, resolution)
    assert images.abs().max() <= 1  # tanh
    assert critic(images).shape == (2,)
    s_pos, s_neg = critic.pair_scores(images, images.flip(0), "all", impl="ref")
    assert s_pos.shape == s_neg.shape == (4,)
    # §5: feature width = the last conv's: 64 px 512, 128 px 1024, 256 px 2048 at base 64; 32 px (ours) 256.
    expected_features = {32: 256, 64: 512, 128: 1024, 256: 2048}[resolution] * BASE[resolution] // 64
    assert critic.encoder(images).shape == (2, expected_features)


def conv_params(c_in: int, c_out: int, k: int = 5) -> int:
    return c_in * c_out * k * k + c_out  # kernel + bias (Keras' default use_bias=True)


def bn_params(c: int) -> int:
    return 2 * c  # gamma, beta


def test_parameter_counts_at_reference_width_64px() -> None:
    """Counts implied by §5 for 64 px RGB, z 100: G Dense 4*4*512 -> BN -> 512,256,128,64 -> 3; E 64..512; D 512."""
    g_expected = (100 * 4 * 4 * 512 + 4 * 4 * 512 + bn_params(4 * 4 * 512)
                  + sum(conv_params(a, b) + bn_params(b) for a, b in [(512, 256), (256, 128), (128, 64)])
                  + conv_params(64, 3))
    e_expected = conv_params(3, 64) + sum(conv_params(a, b) + bn_params(b)
                                          for a, b in [(64, 128), (128, 256), (256, 512)])
    d_expected = 512 * 512 + 512 + 512  # Dense 512 with bias, Dense 1 without
    for mode in ("faithful", "torch", "none"):
        cfg = ModelConfig(spectral_norm=mode)
        g, critic = build_generator(cfg), build_critic(cfg)
        assert sum(p.numel() for p in g.parameters()) == g_expected == 5_150_723
        assert sum(p.numel() for p in critic.encoder.parameters()) == e_expected
        assert sum(p.numel() for p in critic.head.parameters()) == d_expected


def test_mlp_toy_models() -> None:
    cfg = ModelConfig(arch="mlp", latent_dim=2, toy_hidden=32, toy_depth=4)
    g, critic = build_generator(cfg), build_critic(cfg)
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 32), (32, 32), (32, 32), (32, 32), (32, 2)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in g.modules()) == 4
    points = g(torch.randn(7, 2))
    assert points.shape == (7, 2)
    assert critic.encoder.feature_dim == 32 and critic(points).shape == (7,)
    assert critic.pair_scores(points, torch.randn(3, 2), "all", impl="ref")[0].shape == (21,)


def layers_with_weights(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules()
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("mode", ["faithful", "torch", "none"])
def test_spectral_norm_registered_on_critic_only(mode: str) -> None:
    cfg = ModelConfig(resolution=32, base_channels=8, spectral_norm=mode)
    g, critic = build_generator(cfg), build_critic(cfg)
    assert not any(parametrize.is_parametrized(m) for m in g.modules())  # G never
    kernels = [m for m in critic.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    norms = [m for m in critic.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(kernels) == 3 + 2 and len(norms) == 2  # 32 px: 3 convs, 2 BN; head: 2 dense
    for m in kernels:
        assert parametrize.is_parametrized(m, "weight") == (mode != "none")
        if mode != "none":
            (p,) = m.parametrizations.weight
            assert isinstance(p, FaithfulSpectralNorm) == (mode == "faithful")
            assert type(p).__name__ == ("FaithfulSpectralNorm" if mode == "faithful" else "_SpectralNorm")
    for m in norms:  # BN gamma: only the reference's own (faithful) mode normalises it
        assert parametrize.is_parametrized(m, "weight") == (mode == "faithful")
        assert not parametrize.is_parametrized(m, "bias")


def test_faithful_bn_gamma_is_unit_norm_in_forward() -> None:
    critic = build_critic(ModelConfig(resolution=32, base_channels=8))
    bn = next(m for m in critic.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        bn.parametrizations.weight.original.uniform_(0.5, 2.0)
    torch.testing.assert_close(bn.weight.norm(), torch.tensor(1.0))


def glorot_bound(m: nn.Module) -> float:
    w = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
    fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
    return math.sqrt(6 / (fan_in + fan_out))


def raw_weight(m: nn.Module) -> torch.Tensor:
    return m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight


@pytest.mark.parametrize("defaults", ["keras", "torch"])
def test_layer_defaults(defaults: str) -> None:
    cfg = ModelConfig(resolution=32, base_channels=16, layer_defaults=defaults)
    g, critic = build_generator(cfg), build_critic(cfg)
    for module in (g, critic):
        bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert bns
        for bn in bns:  # Keras momentum 0.99 is PyTorch's 0.01 (new = (1 - m) old + m batch)
            assert (bn.momentum, bn.eps) == ((0.01, 1e-3) if defaults == "keras" else (0.1, 1e-5))
        for m in module.modules():
            if not isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
                continue
            w, bound = raw_weight(m), glorot_bound(m)
            if defaults == "keras":  # Glorot-uniform kernel, zero bias
                assert w.abs().max() <= bound
                if w.numel() >= 1000:  # U(-b, b) has std b / sqrt(3)
                    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
                assert m.bias is None or not m.bias.any()
            elif m.bias is not None:  # PyTorch's default: uniform bias, not zero
                assert m.bias.any()


def test_layers_use_same_padding() -> None:
    # 5x5 stride-2 convs with "same" padding halve / double the size exactly at every layer.
    g = build_generator(ModelConfig(resolution=64, base_channels=8))
    sizes = []
    x = g.stem(torch.randn(2, 100)).view(2, -1, 4, 4)
    for layer in g.body:
        x = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            sizes.append(x.shape[-1])
            assert (layer.kernel_size, layer.stride, layer.padding, layer.output_padding) == (
                (5, 5), (2, 2), (2, 2), (1, 1))
    assert sizes == [8, 16, 32, 64]


def test_make_pairs() -> None:
    assert make_pairs("index", 4, 4) == "index"
    assert make_pairs("all", 4, 6) == "all"
    pairs = make_pairs("perm:3", 5, 5, generator=torch.Generator().manual_seed(0))
    assert isinstance(pairs, torch.Tensor) and pairs.dtype == torch.int64 and pairs.shape == (20, 2)
    assert torch.equal(pairs[:, 0], torch.arange(5).repeat(4))
    assert torch.equal(pairs[:5, 1], torch.arange(5))  # the reference's index pairs come first
    for k in range(1, 4):  # then K permutations of the fakes
        assert sorted(pairs[5 * k:5 * (k + 1), 1].tolist()) == list(range(5))
    again = make_pairs("perm:3", 5, 5, generator=torch.Generator().manual_seed(0))
    other = make_pairs("perm:3", 5, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(pairs, again) and not torch.equal(pairs, other)
    with pytest.raises(ValueError, match="equal batches"):
        make_pairs("perm:1", 4, 5)
    from tgan_deploy.errors import ConfigError

    with pytest.raises(ConfigError, match="perm:K"):
        make_pairs("perm:0", 4, 4)


def test_perm_pairs_feed_pair_scores() -> None:
    cfg = ModelConfig(arch="mlp", toy_hidden=8, head_hidden=4)
    critic = build_critic(cfg)
    pairs = make_pairs("perm:2", 6, 6)
    s_pos, s_neg = critic.pair_scores(torch.randn(6, 2), torch.randn(6, 2), pairs, impl="ref")
    assert s_pos.shape == s_neg.shape == (18,)
