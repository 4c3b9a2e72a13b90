"""torchrun with 2 CPU processes (gloo) against one process with the same global batch.

The two must compute the same training run: z is drawn for the global batch on every rank and each rank
takes every other row, as its data shard is every other index of the same epoch order (DistributedSampler),
so the all-gathered batch holds the single process's (real i, fake i) pairs; pairing "all" spans the
global batch; BatchNorm normalises over the global batch (run.sync_batchnorm).

What is compared, and why not the trained weights. The two runs sum in different orders (gloo's all-reduce
adds two half-batch sums; conv and BatchNorm kernels block a batch of 4 differently from one of 8, and AVX2
and AVX-512 kernels differently again), so every gradient differs by float32 rounding. Adam then divides
each gradient by its own running RMS: where a gradient is at rounding level (exactly zero for a bias right
before a BatchNorm, or a near-total cancellation in one weight) that rounding noise becomes a step of about
the learning rate, in a direction that depends on the summation order. On an AVX2 EPYC one such weight of
generator.body.0 ended 8.8e-6 apart after 3 iterations; a bound per element of "iterations x Adam's step"
would hold for *any* two runs from the same initial weights, so it cannot show that the runs are the same.
So both runs train with learning rates of 1e-30: each Adam step (at most ~lr in size) is below half an ulp
of every non-zero initial weight, the weights stay where they started, and Adam's moments record the
gradients of every step of 3 iterations at the same weights. Those gradients, and the per-step losses and
gradient norms, must agree to the rounding bound derived in `rounding_bound`; a wrong shard on one rank, or
real i paired with another fake, changes them by the size of the gradient itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_support import IMAGES, TOY, env, free_port, losses, run_train

from tgan_deploy.checkpoint import load_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.models import build_critic, build_generator

FROZEN = ["--set", "optim.lr_g=1e-30", "--set", "optim.lr_d=1e-30"]  # the weights stay at their initial values
UNIT_ROUNDOFF = 2.0 ** -24  # float32


def rounding_bound(longest_sum: int, reductions: int) -> float:
    """How far apart two float32 evaluations of the same gradient can be, relative to the gradient's size.

    A sum of n terms computed in any order is within gamma_n = n*u/(1 - n*u) ~ n*u of the exact sum, relative
    to the sum of the terms' magnitudes (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
    eq. 4.4; true for every order and blocking, so for gloo, AVX2 and AVX-512 alike; FMA only removes
    roundings). A gradient passes through `reductions` such sums on its longest path (each layer's forward
    sum, its backward sum, two per BatchNorm statistic), each at most `longest_sum` terms long; to first order
    the relative errors add, and the two runs can err in opposite directions: 2 * reductions * n * u.
    """
    return 2 * reductions * longest_sum * UNIT_ROUNDOFF


def reductions_on_path(cfg: TrainConfig) -> int:
    """Sums on the longest path of a generator gradient: forward through G and the critic, then back."""
    nets = [build_generator(cfg.model), build_critic(cfg.model)]
    layers = sum(isinstance(m, torch.nn.Linear | torch.nn.modules.conv._ConvNd) for n in nets for m in n.modules())
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for n in nets for m in n.modules())
    return 2 * (layers + 2 * norms) + 1  # forward and backward through each; + the weight gradient's own sum


def single_and_torchrun(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """The same config trained by one process and by `torchrun --nproc_per_node 2` (gloo)."""
    single, multi = tmp_path / "single", tmp_path / "multi"
    run_train(*args, "--out", str(single))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "tgan_deploy.train", *args, "--out", str(multi)]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return single, multi


def training_differences(one: Path, two: Path, longest_sum: int) -> list[str]:
    """What differs between two runs of 3 iterations at frozen weights by more than rounding (empty: the same)."""
    ckpt_one, ckpt_two = load_checkpoint(one), load_checkpoint(two)
    cfg = TrainConfig.from_dict(ckpt_one["config"])
    tau = rounding_bound(longest_sum, reductions_on_path(cfg))
    found = []
    for a, b in zip(losses(one), losses(two), strict=True):
        # Losses are sums of O(1) terms (log-sigmoids of logits), gradient norms sums of squares: both relative.
        if a[0] != b[0] or a[1:] != pytest.approx(b[1:], rel=tau, abs=tau):
            found.append(f"step {a[0]}: losses / gradient norms {a[1:]} vs {b[1:]} (bound {tau:.2g})")
    beta2 = cfg.optim.beta2
    assert pre_batchnorm(ckpt_one["generator"] | ckpt_one["critic"]), "the nets have BatchNorm: find the exception"
    for net, optim, model in (("generator", "optim_g", build_generator(cfg.model)),
                              ("critic", "optim_d", build_critic(cfg.model))):
        names = [name for name, _ in model.named_parameters()]
        noise_only = pre_batchnorm(ckpt_one[net])
        moments = [(name, ckpt_one[optim]["state"][i], ckpt_two[optim]["state"][i]) for i, name in enumerate(names)]
        # Adam's state after t steps: m = sum_k (1-b1) b1^(t-k) g_k (weights summing to 1 - b1^t <= 1) and
        # v = sum_k (1-b2) b2^(t-k) g_k^2 >= (1-b2) b2^(t-1) g_k^2 for every k, so no step's gradient is larger
        # than sqrt(max v / ((1-b2) b2^(t-1))): the size G of this tensor's gradients. Each g_k differs by at
        # most tau * G between the runs, so m does too.
        def size(state: dict[str, torch.Tensor]) -> float:
            t = int(state["step"])
            return float((state["exp_avg_sq"].max() / ((1 - beta2) * beta2 ** (t - 1))).sqrt())

        # A bias right before a BatchNorm has an exactly zero gradient (BN subtracts the batch mean): both
        # runs hold rounding noise of the size of the terms that cancelled, the net's largest gradients.
        net_size = max(size(s) for _, s, _ in moments)
        for name, s1, s2 in moments:
            if int(s1["step"]) != int(s2["step"]):
                found.append(f"{net}.{name}: {int(s1['step'])} vs {int(s2['step'])} Adam steps")
                continue
            if name in noise_only:
                noise = max(float(s1["exp_avg"].abs().max()), float(s2["exp_avg"].abs().max()))
                if noise > tau * net_size:
                    found.append(f"{net}.{name}: gradient {noise:.3g}, not rounding noise (<= {tau * net_size:.3g})")
                continue
            gap = float((s1["exp_avg"] - s2["exp_avg"]).abs().max())
            if gap > tau * size(s1):
                found.append(f"{net}.{name}: gradients differ by {gap:.3g} > {tau:.2g} x {size(s1):.3g}")
    return found


@pytest.mark.slow
def test_two_process_index_pairing_matches_one_process(tmp_path: Path) -> None:
    # The reference's pairing (real i with fake i) on toy data; the toy generator has BatchNorm.
    # Longest sum: a hidden unit's 16 inputs, or a BatchNorm statistic / weight gradient over the batch of 16.
    args = [*TOY, *FROZEN, "--pairing", "index", "--steps", "3", "--set", "run.log_every=1"]
    single, multi = single_and_torchrun(tmp_path, args)
    assert [r[0] for r in losses(multi)] == [1, 2, 3]
    assert training_differences(single, multi, longest_sum=16) == []
    # The criterion rejects what a wrong shard does: the same initial weights and latents, other real batches
    # (a fixed subset of the data). Measured with a shard broken in the trainer itself: the gradients of a
    # one-rank-twice shard were 40 to 3,400 times the bound apart, index pairs off by one row 14 to 2,300 times.
    other = tmp_path / "other-batches"
    run_train(*args, "--set", "data.limit=1000", "--out", str(other))
    assert sum("gradients differ" in line for line in training_differences(single, other, longest_sum=16)) >= 5


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    # 32 px DCGAN: BatchNorm in G and in E (with faithful spectral norm on E's BN gamma), pairs over all reals x fakes.
    # Longest sum: the last layer's bias gradient, over 8 images x 32 x 32 pixels.
    args = [*IMAGES, *FROZEN, "--pairing", "all", "--steps", "3", "--set", "run.log_every=1",
            "--set", "run.checkpoint_every=3"]
    single, multi = single_and_torchrun(tmp_path, args)
    assert [r[0] for r in losses(multi)] == [1, 2, 3]
    assert training_differences(single, multi, longest_sum=8 * 32 * 32) == []


def pre_batchnorm(state: dict[str, torch.Tensor]) -> set[str]:
    """Biases of layers followed by a BatchNorm ("x.N.bias" with "x.N+1.running_mean")."""
    names = set()
    for name in state:
        prefix, _, last = name.rpartition(".")
        head, _, index = prefix.rpartition(".")
        if last == "bias" and index.isdigit() and f"{head}.{int(index) + 1}.running_mean" in state:
            names.add(name)
    return names
