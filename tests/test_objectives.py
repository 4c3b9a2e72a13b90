"""Every objective against its formula (docs/method.md §2.2 and §2.3), written independently.

The expected values use float64 numpy (-log(sigmoid(x)) spelled out) or torch's own BCE-with-logits,
never the softplus forms the implementation uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from tgan_deploy.config import OBJECTIVE_NAMES, ModelConfig
from tgan_deploy.models import build_critic
from tgan_deploy.objectives import OBJECTIVES, get_objective, gradient_penalty, scores


def neg_log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.log(1.0 / (1.0 + np.exp(-x)))


def BCE(x: np.ndarray, target: float) -> float:
    t = torch.from_numpy(x)
    return float(bce(t, torch.full_like(t, target), reduction="mean"))


def m(x: np.ndarray) -> float:
    return float(np.mean(x))


# name -> (critic loss, generator loss) as functions of (a, b): (s+, s-) for T-*, (C_r, C_f) otherwise.
EXPECTED = {
    # §2: the reference writes -log(sigmoid(x) + 1e-9) and sums the two terms.
    "t-sgan": (lambda sp, sn: m(neg_log_sigmoid(sp) + neg_log_sigmoid(-sn)),
               lambda sp, sn: m(neg_log_sigmoid(-sp) + neg_log_sigmoid(sn))),
    "t-wgan": (lambda sp, sn: m(sn - sp), lambda sp, sn: m(sp - sn)),
    # Ours (§2 "natural extensions"): the critic pushes s+ -> +1 and s- -> -1; the generator swaps targets.
    "t-lsgan": (lambda sp, sn: m((sp - 1) ** 2 + (sn + 1) ** 2),
                lambda sp, sn: m((sp + 1) ** 2 + (sn - 1) ** 2)),
    "t-hinge": (lambda sp, sn: m(np.maximum(0, 1 - sp) + np.maximum(0, 1 + sn)),
                lambda sp, sn: m(np.maximum(0, 1 + sp) + np.maximum(0, 1 - sn))),
    # §6 baselines.
    "sgan": (lambda cr, cf: BCE(cr, 1) + BCE(cf, 0), lambda cr, cf: BCE(cf, 1)),
    "rsgan": (lambda cr, cf: BCE(cr - cf, 1), lambda cr, cf: BCE(cf - cr, 1)),
    "rasgan": (lambda cr, cf: (BCE(cr - m(cf), 1) + BCE(cf - m(cr), 0)) / 2,
               lambda cr, cf: (BCE(cr - m(cf), 0) + BCE(cf - m(cr), 1)) / 2),
    "ralsgan": (lambda cr, cf: (m((cr - m(cf) - 1) ** 2) + m((cf - m(cr) + 1) ** 2)) / 2,
                lambda cr, cf: (m((cr - m(cf) + 1) ** 2) + m((cf - m(cr) - 1) ** 2)) / 2),
    "hinge": (lambda cr, cf: m(np.maximum(0, 1 - cr)) + m(np.maximum(0, 1 + cf)), lambda cr, cf: -m(cf)),
    "wgan-gp": (lambda cr, cf: m(cf) - m(cr), lambda cr, cf: -m(cf)),  # + gp_weight * GP, added by the trainer
}


def test_every_objective_has_a_formula() -> None:
    assert set(OBJECTIVES) == set(EXPECTED)
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES  # the names config validates against, without importing us
    assert {n for n, o in OBJECTIVES.items() if o.pairwise} == {"t-sgan", "t-wgan", "t-lsgan", "t-hinge"}
    assert [n for n, o in OBJECTIVES.items() if o.gradient_penalty] == ["wgan-gp"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_formula(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Scales that reach both saturated and linear regions of the losses; hinge kinks are hit with prob. 0.
    a, b = rng.normal(0.3, 2.0, size=37), rng.normal(-0.2, 2.0, size=37)
    obj = OBJECTIVES[name]
    critic_expected, generator_expected = EXPECTED[name]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert obj.critic_loss(ta, tb).item() == pytest.approx(critic_expected(a, b), rel=1e-12, abs=1e-12)
    assert obj.generator_loss(ta, tb).item() == pytest.approx(generator_expected(a, b), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sign_conventions(name: str) -> None:
    """A critic that gets it right (s+ high, s- low; C_r high, C_f low) has the lower critic loss,
    and the generator's loss falls as its samples are scored more real."""
    obj = OBJECTIVES[name]
    right = (torch.full((8,), 3.0), torch.full((8,), -3.0))
    wrong = (torch.full((8,), -3.0), torch.full((8,), 3.0))
    assert obj.critic_loss(*right) < obj.critic_loss(*wrong)
    assert obj.generator_loss(*wrong) < obj.generator_loss(*right)


@pytest.mark.parametrize("name", ["t-sgan", "t-wgan", "t-lsgan", "t-hinge"])
def test_pairwise_generator_loss_is_the_critic_loss_with_pairs_swapped(name: str) -> None:
    # T-GAN's generator wants the swapped joint Q judged as P: its loss is the critic's on (s-, s+).
    obj = OBJECTIVES[name]
    a, b = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    torch.testing.assert_close(obj.generator_loss(a, b), obj.critic_loss(b, a))


def test_t_sgan_is_stable_where_the_reference_form_saturates() -> None:
    # -log(sigmoid(-100) + 1e-9) caps at 20.7; softplus gives the exact 100.
    loss = get_objective("t-sgan").critic_loss(torch.tensor([-100.0]), torch.tensor([-100.0]))
    assert loss.item() == pytest.approx(100.0, rel=1e-6)


def test_get_objective_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown objective 'tsgan'"):
        get_objective("tsgan")


def toy_critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_critic(ModelConfig(arch="mlp", toy_hidden=16, head_hidden=8)).double()


def test_s_neg_is_a_separate_evaluation_not_minus_s_pos() -> None:
    critic = toy_critic()
    with torch.no_grad():
        critic.head.fc1.bias.uniform_(-1.0, 1.0)  # Keras init leaves b1 = 0, where s- = -s+ could hide a bug
    x_r, x_f = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    s_pos, s_neg = critic.pair_scores(x_r, x_f, "index", impl="ref")
    delta = critic.encoder(x_r) - critic.encoder(x_f)
    torch.testing.assert_close(s_pos, critic.head(delta))  # D(delta) through the ordinary layers
    torch.testing.assert_close(s_neg, critic.head(-delta))
    assert not torch.allclose(s_neg, -s_pos, atol=1e-3)


@pytest.mark.parametrize("pairs", ["index", "all"])
def test_scores_pairwise(pairs: str) -> None:
    critic = toy_critic()
    x_r, x_f = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    a, b = scores(get_objective("t-sgan"), critic, x_r, x_f, pairs, impl="ref")
    expected = critic.pair_scores(x_r, x_f, pairs, impl="ref")
    assert a.shape == b.shape == ((4,) if pairs == "index" else (16,))
    torch.testing.assert_close((a, b), expected)
    with pytest.raises(ValueError, match="x_real is required"):
        scores(get_objective("t-wgan"), critic, None, x_f)


def test_scores_single_sample() -> None:
    critic = toy_critic()
    x_r, x_f = torch.randn(5, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    c_r, c_f = scores(get_objective("hinge"), critic, x_r, x_f)
    torch.testing.assert_close(c_r, critic.head(critic.encoder(x_r)))
    torch.testing.assert_close(c_f, critic.head(critic.encoder(x_f)))
    # The non-saturating generator step need not encode reals.
    assert not get_objective("sgan").generator_uses_real and get_objective("rsgan").generator_uses_real
    c_r, c_f = scores(get_objective("sgan"), critic, None, x_f)
    assert c_r.numel() == 0 and c_f.shape == (3,)


class LinearCritic(nn.Module):
    """C(x) = w . flatten(x) + c: its input gradient is w everywhere, so GP = (||w|| - 1)^2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 1, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)).squeeze(1)


def test_gradient_penalty_linear_critic() -> None:
    critic = LinearCritic(3 * 4 * 4)
    x_r = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    x_f = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    gp = gradient_penalty(critic, x_r, x_f)  # type: ignore[arg-type]
    norm = critic.fc.weight.norm()
    torch.testing.assert_close(gp, (norm - 1) ** 2)
    # create_graph: the penalty trains the critic, d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
    grad_w, grad_x_f = torch.autograd.grad(gp, [critic.fc.weight, x_f], allow_unused=True)
    torch.testing.assert_close(grad_w, 2 * (norm - 1) * critic.fc.weight / norm)
    assert grad_x_f is None  # the penalty does not reach the generator through x_fake (detached)


class QuadraticCritic(nn.Module):
    """C(x) = ||x||^2 / 2: input gradient x, so GP = mean((||x_hat|| - 1)^2) with x_hat known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.flatten(1) ** 2).sum(1)


def test_gradient_penalty_interpolates_per_sample() -> None:
    x_r = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    x_f = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    gp = gradient_penalty(QuadraticCritic(), x_r, x_f, generator=torch.Generator().manual_seed(7))  # type: ignore[arg-type]
    eps = torch.rand((6, 1, 1, 1), dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    x_hat = eps * x_r + (1 - eps) * x_f
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(gp, expected)
