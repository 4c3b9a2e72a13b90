"""GAN objectives, one small pair of loss functions each, chosen by name from `OBJECTIVES`.

Every objective shares one signature: `critic_loss(a, b)` and `generator_loss(a, b)` -> scalar.
  pairwise objectives (T-*):  a = s+ = D(E(x_r) - E(x_f)),  b = s- = D(E(x_f) - E(x_r)), one per pair
  single-sample baselines:    a = C(x_r),                    b = C(x_f),                  one per sample
`scores()` computes (a, b) for either kind; WGAN-GP adds `gradient_penalty()` to its critic loss.
Formulas: docs/method.md §2.2 (T-GAN) and §2.3 (baselines). softplus(-x) = -log sigmoid(x),
the stable form of the reference's -log(sigmoid(x) + 1e-9).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.functional import relu, softplus

from tgan_deploy.models.critic import Critic
from tgan_deploy.models.heads import PairHead

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class Objective:
    name: str
    pairwise: bool  # scores pairs (T-GAN) or single samples
    critic_loss: LossFn
    generator_loss: LossFn
    generator_uses_real: bool = True  # False: the generator step need not encode reals
    gradient_penalty: bool = False  # add gp_weight * gradient_penalty() to the critic loss
    # The critic's 0 means "undecided" (sgan's logit, hinge's margin): ADA reads sign(C(x_r)). The others
    # (pairs, relativistic, Wasserstein) only score differences, so ADA reads sign(a - b) (train/augment.py).
    absolute_critic: bool = False
    source: str = ""


# -- T-GAN: Su, "Training Generative Adversarial Networks Via Turing Test", arXiv:1810.10948 -------
# The reference (bojone/T-GANs) sums the two terms, no 1/2.

def t_sgan_critic(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return (softplus(-s_pos) + softplus(s_neg)).mean()


def t_sgan_generator(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return (softplus(s_pos) + softplus(-s_neg)).mean()


def t_wgan_critic(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    # Raw scores (no sigmoid), Lipschitz through spectral norm of E and D only.
    return (s_neg - s_pos).mean()


def t_wgan_generator(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return (s_pos - s_neg).mean()


# -- Our extensions of the T-GAN scheme (not in the paper): least squares and hinge on pairs -------

def t_lsgan_critic(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return ((s_pos - 1) ** 2 + (s_neg + 1) ** 2).mean()


def t_lsgan_generator(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return ((s_pos + 1) ** 2 + (s_neg - 1) ** 2).mean()


def t_hinge_critic(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return (relu(1 - s_pos) + relu(1 + s_neg)).mean()


def t_hinge_generator(s_pos: Tensor, s_neg: Tensor) -> Tensor:
    return (relu(1 + s_pos) + relu(1 - s_neg)).mean()


# -- Baselines on single-sample critic logits c_r = C(x_r), c_f = C(x_f) ---------------------------

def sgan_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # Goodfellow et al., arXiv:1406.2661: BCE(C_r, 1) + BCE(C_f, 0)
    return softplus(-c_r).mean() + softplus(c_f).mean()


def sgan_generator(c_r: Tensor, c_f: Tensor) -> Tensor:
    # the non-saturating generator loss BCE(C_f, 1)
    return softplus(-c_f).mean()


def rsgan_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # Jolicoeur-Martineau, arXiv:1807.00734: BCE(C_r - C_f, 1), pairs i with i
    return softplus(c_f - c_r).mean()


def rsgan_generator(c_r: Tensor, c_f: Tensor) -> Tensor:
    return softplus(c_r - c_f).mean()


def rasgan_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # arXiv:1807.00734 (relativistic average): [BCE(C_r - m(C_f), 1) + BCE(C_f - m(C_r), 0)] / 2
    return (softplus(-(c_r - c_f.mean())).mean() + softplus(c_f - c_r.mean()).mean()) / 2


def rasgan_generator(c_r: Tensor, c_f: Tensor) -> Tensor:
    return (softplus(c_r - c_f.mean()).mean() + softplus(-(c_f - c_r.mean())).mean()) / 2


def ralsgan_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # arXiv:1807.00734 (relativistic average least squares)
    return (((c_r - c_f.mean() - 1) ** 2).mean() + ((c_f - c_r.mean() + 1) ** 2).mean()) / 2


def ralsgan_generator(c_r: Tensor, c_f: Tensor) -> Tensor:
    return (((c_r - c_f.mean() + 1) ** 2).mean() + ((c_f - c_r.mean() - 1) ** 2).mean()) / 2


def hinge_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # Miyato et al. (SNGAN), arXiv:1802.05957; Lim & Ye, arXiv:1705.02894
    return relu(1 - c_r).mean() + relu(1 + c_f).mean()


def wasserstein_generator(c_r: Tensor, c_f: Tensor) -> Tensor:
    # -m(C_f): the generator loss of both hinge (SNGAN) and WGAN(-GP)
    return -c_f.mean()


def wgan_critic(c_r: Tensor, c_f: Tensor) -> Tensor:
    # Gulrajani et al., arXiv:1704.00028; the critic loss adds gp_weight * gradient_penalty()
    return c_f.mean() - c_r.mean()


OBJECTIVES: dict[str, Objective] = {o.name: o for o in [
    Objective("t-sgan", True, t_sgan_critic, t_sgan_generator, source="arXiv:1810.10948"),
    Objective("t-wgan", True, t_wgan_critic, t_wgan_generator, source="arXiv:1810.10948"),
    Objective("t-lsgan", True, t_lsgan_critic, t_lsgan_generator, source="tgan-deploy (ours)"),
    Objective("t-hinge", True, t_hinge_critic, t_hinge_generator, source="tgan-deploy (ours)"),
    Objective("sgan", False, sgan_critic, sgan_generator, generator_uses_real=False, absolute_critic=True,
              source="arXiv:1406.2661"),
    Objective("rsgan", False, rsgan_critic, rsgan_generator, source="arXiv:1807.00734"),
    Objective("rasgan", False, rasgan_critic, rasgan_generator, source="arXiv:1807.00734"),
    Objective("ralsgan", False, ralsgan_critic, ralsgan_generator, source="arXiv:1807.00734"),
    Objective("hinge", False, hinge_critic, wasserstein_generator, generator_uses_real=False,
              absolute_critic=True, source="arXiv:1802.05957"),
    Objective("wgan-gp", False, wgan_critic, wasserstein_generator, generator_uses_real=False,
              gradient_penalty=True, source="arXiv:1704.00028"),
]}


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}") from None


def scores(objective: Objective, critic: Critic, x_real: Tensor | None, x_fake: Tensor,
           pairs: str | Tensor = "index", impl: str = "auto", labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(a, b) for `objective`'s loss functions. `x_real` may be None only for single-sample
    objectives' generator step when `generator_uses_real` is False (then a is an empty tensor).
    `labels`: conditional critics only, the class of real i and of fake i (fakes drawn on the reals' labels)."""
    if objective.pairwise:
        if x_real is None:
            raise ValueError(f"{objective.name} scores (real, fake) pairs: x_real is required")
        return critic.pair_scores(x_real, x_fake, pairs, impl, labels)
    c_f = _single(critic, x_fake, labels)
    c_r = _single(critic, x_real, labels) if x_real is not None else c_f.new_empty(0)
    return c_r, c_f


def _single(critic: Critic, x: Tensor, labels: Tensor | None) -> Tensor:
    """C(x), or C(x, y) for a conditional critic (any single-sample critic module works unconditionally)."""
    return critic(x) if labels is None else critic(x, labels)


def gradient_penalty(critic: Critic, x_real: Tensor, x_fake: Tensor, generator: torch.Generator | None = None,
                     labels: Tensor | None = None) -> Tensor:
    """WGAN-GP's mean((||grad_x C(x_hat)||_2 - 1)^2) on x_hat = eps x_r + (1 - eps) x_f, eps ~ U[0, 1]
    (conditional: C(x_hat, y), x_r and x_f share the label y)."""
    eps_shape = (x_real.shape[0],) + (1,) * (x_real.dim() - 1)
    eps = torch.rand(eps_shape, device=x_real.device, dtype=x_real.dtype, generator=generator)
    x_hat = (eps * x_real.detach() + (1 - eps) * x_fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(_single(critic, x_hat, labels).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(critic: Critic, x_real: Tensor, x_fake: Tensor, labels: Tensor | None = None) -> Tensor:
    """R1 (Mescheder et al., arXiv:1801.04406; StyleGAN2's lazy form): mean_i ||grad_{x_r,i} score_i||^2 on the
    images the critic saw. Single-sample critics: score = C(x_r). Pair critics (docs/method.md §7.4, ours): the
    true-order score s+ of index pair (real i, fake i), fakes held fixed, through the head's plain layers (the
    fused pair op has no double backward)."""
    x = x_real.detach().requires_grad_(True)
    if isinstance(critic.head, PairHead):
        delta = critic.encoder(x) - critic.encoder(x_fake.detach()).detach()
        score = critic.head(delta)
        if critic.projection is not None:
            score = score + critic.projected(delta, labels)
    else:
        score = _single(critic, x, labels)
    (grad,) = torch.autograd.grad(score.sum(), x, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1).mean()
