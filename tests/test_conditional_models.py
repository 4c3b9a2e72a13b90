"""Class-conditional generators and the projection critic (models/conditioning.py, models/critic.py)."""

from __future__ import annotations

import pytest
import torch

from tgan_deploy.config import ModelConfig
from tgan_deploy.models import build_critic, build_generator, make_pairs
from tgan_deploy.models.critic import same_class_pairs

LABELS = torch.tensor([0, 2, 1, 2, 0, 2])


def _config(arch: str, num_classes: int = 3, spectral_norm: str = "faithful") -> ModelConfig:
    return ModelConfig(arch=arch, resolution=32, base_channels=4, latent_dim=8, toy_hidden=16, head_hidden=8,
                       num_classes=num_classes, label_embed_dim=4, spectral_norm=spectral_norm)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_generator_takes_a_label_and_only_the_label_changes(arch: str) -> None:
    torch.manual_seed(0)
    G = build_generator(_config(arch)).eval()
    z = torch.randn(6, 8)
    with torch.no_grad():
        out = G(z, LABELS)
        same = G(z, LABELS)
        other = G(z, (LABELS + 1) % 3)
    assert torch.equal(out, same)
    assert (out - other).flatten(1).abs().amax(dim=1).min() > 0, "a new label must change every sample"
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    with pytest.raises(ValueError, match="unconditional"):
        build_generator(_config(arch, num_classes=0))(z, LABELS)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_unconditional_state_dict_is_unchanged(arch: str) -> None:
    """num_classes 0 builds today's modules: the conditional model differs by the embedding and the first layer."""
    plain = build_generator(_config(arch, num_classes=0)).state_dict()
    cond = build_generator(_config(arch)).state_dict()
    assert not any("label" in k for k in plain)
    assert set(cond) - set(plain) == {"label_embedding.table.weight"}
    first = "stem.0.weight" if arch == "dcgan" else "body.0.weight"
    assert plain[first].shape[1] == 8 and cond[first].shape[1] == 8 + 4
    assert set(build_critic(_config(arch, num_classes=0)).state_dict()) == {
        k for k in build_critic(_config(arch)).state_dict() if not k.startswith("projection.")}


@pytest.mark.parametrize("spectral_norm", ["faithful", "torch", "none"])
def test_projection_term_keeps_the_swap_symmetry(spectral_norm: str) -> None:
    """s+(x_r, x_f) = s-(x_f, x_r) with the projection term, and it changes the scores (v(y) matters)."""
    torch.manual_seed(1)
    critic = build_critic(_config("mlp", spectral_norm=spectral_norm)).eval()
    x_r, x_f = torch.randn(6, 2), torch.randn(6, 2)
    s_pos, s_neg = critic.pair_scores(x_r, x_f, "index", impl="ref", labels=LABELS)
    t_pos, t_neg = critic.pair_scores(x_f, x_r, "index", impl="ref", labels=LABELS)
    torch.testing.assert_close(s_pos, t_neg)
    torch.testing.assert_close(s_neg, t_pos)
    other_pos, _ = critic.pair_scores(x_r, x_f, "index", impl="ref", labels=(LABELS + 1) % 3)
    assert not torch.allclose(s_pos, other_pos)
    # baselines: C(x, y) = D(E(x)) + <v(y), E(x)>
    e = critic.encoder(x_r)
    torch.testing.assert_close(critic(x_r, LABELS), critic.head(e) + (critic.projection.weight[LABELS] * e).sum(1))


def test_same_class_pairs_match_all_pairs_restricted_to_a_class() -> None:
    """"all" under labels = the pair list of same-class pairs: its scores are exactly the all-pairs scores at
    the same-class positions (row-major order), plus the projection term."""
    torch.manual_seed(2)
    critic = build_critic(_config("mlp")).eval()
    x_r, x_f = torch.randn(6, 2), torch.randn(6, 2)
    pairs = make_pairs("all", 6, 6, labels=LABELS)
    assert isinstance(pairs, torch.Tensor)
    expected = [(i, j) for i in range(6) for j in range(6) if LABELS[i] == LABELS[j]]
    assert pairs.tolist() == [list(p) for p in expected]
    assert torch.equal(same_class_pairs(LABELS, LABELS), pairs)
    e_r, e_f = critic.encoder(x_r), critic.encoder(x_f)
    all_pos, all_neg = critic.head.pair_scores(e_r, e_f, "all", impl="ref")
    flat = torch.tensor([i * 6 + j for i, j in expected])
    v = critic.projection.weight
    term = (v[LABELS] * e_r).sum(1)[pairs[:, 0]] - (v[LABELS] * e_f).sum(1)[pairs[:, 1]]
    s_pos, s_neg = critic.pair_scores(x_r, x_f, pairs, impl="ref", labels=LABELS)
    torch.testing.assert_close(s_pos, all_pos[flat] + term)
    torch.testing.assert_close(s_neg, all_neg[flat] - term)
    with pytest.raises(ValueError, match="same-class"):
        critic.pair_scores(x_r, x_f, "all", impl="ref", labels=LABELS)


def test_perm_pairs_stay_inside_a_class() -> None:
    pairs = make_pairs("perm:4", 6, 6, generator=torch.Generator().manual_seed(3), labels=LABELS)
    assert isinstance(pairs, torch.Tensor) and pairs.shape == (30, 2)
    assert torch.equal(LABELS[pairs[:, 0]], LABELS[pairs[:, 1]])
    assert torch.equal(pairs[:6], torch.arange(6).repeat(2, 1).t())  # index pairs first
    for k in range(1, 5):  # each block is a permutation of the fakes
        assert sorted(pairs[6 * k:6 * (k + 1), 1].tolist()) == list(range(6))
    assert len({tuple(p) for p in pairs[6:].tolist()}) > 6, "permutations must differ from index pairing"
