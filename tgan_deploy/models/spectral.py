"""Spectral normalisation, two ways.

"torch":    torch.nn.utils.parametrizations.spectral_norm: a persistent u, 1 power iteration per
            training forward, sigma detached (Miyato et al., arXiv:1802.05957, as PyTorch ships it).
"faithful": the reference's (bojone/T-GANs) re-parametrisation W / sigma(W) recomputed on every
            forward: 5 power iterations starting from u = ones, gradients flowing through sigma.
            It is also applied to BatchNorm's gamma, where it reduces to gamma / ||gamma||_2.

The weight is viewed as a matrix [out, in*kh*kw]; u = ones is permutation-invariant, so Keras'
[kh*kw*in, out] layout gives the same sigma.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils import parametrize

POWER_ITERATIONS = 5
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def faithful_sigma(weight: torch.Tensor, iterations: int = POWER_ITERATIONS) -> torch.Tensor:
    """Largest singular value estimate of `weight` viewed as [out, -1], as the reference computes it."""
    w = weight.reshape(weight.shape[0], -1) if weight.dim() > 1 else weight.reshape(-1, 1)
    # Keras layout is [in, out]: u lives in the input space; ours is w = [out, in].
    u = torch.ones(w.shape[1], dtype=w.dtype, device=w.device)
    for _ in range(iterations):
        v = nn.functional.normalize(w @ u, dim=0, eps=1e-12)
        u = nn.functional.normalize(w.t() @ v, dim=0, eps=1e-12)
    return v @ (w @ u)


class FaithfulSpectralNorm(nn.Module):
    """Parametrisation W -> W / sigma(W), sigma from `faithful_sigma` on every call."""

    def __init__(self, iterations: int = POWER_ITERATIONS) -> None:
        super().__init__()
        self.iterations = iterations

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / faithful_sigma(weight, self.iterations)


def apply_spectral_norm(module: ModuleT, mode: str) -> ModuleT:
    """Spectral-normalise every conv/linear kernel and embedding table in `module` (and BN gammas in faithful mode)."""
    if mode == "none":
        return module
    for m in list(module.modules()):
        if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
            if mode == "faithful":
                parametrize.register_parametrization(m, "weight", FaithfulSpectralNorm())
            else:
                nn.utils.parametrizations.spectral_norm(m)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and mode == "faithful" and m.affine:
            parametrize.register_parametrization(m, "weight", FaithfulSpectralNorm())
    return module
