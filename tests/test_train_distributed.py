"""torchrun with 2 CPU processes (gloo) against one process with the same global batch.

The two must compute the same training run: z is drawn for the global batch on every rank and each rank
takes every other row, as its data shard is every other index of the same epoch order (DistributedSampler),
so the all-gathered batch holds the single process's (real i, fake i) pairs; pairing "all" spans the
global batch; BatchNorm normalises over the global batch (run.sync_batchnorm).
Reduction order differs across processes, so losses and weights agree to float32 rounding, not bit-for-bit.
One exception: a bias right before a BatchNorm has a gradient that is exactly zero in exact arithmetic (BN
subtracts the batch mean), so what it receives is rounding noise, which Adam rescales to steps of about the
learning rate in either run. Those biases (and the running means that integrate them) are compared only
against that bound; everything else must agree to rounding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_support import IMAGES, TOY, env, free_port, losses, run_train

from tgan_deploy.checkpoint import load_checkpoint


def single_and_torchrun(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """The same config trained by one process and by `torchrun --nproc_per_node 2` (gloo); per-step losses match."""
    single, multi = tmp_path / "single", tmp_path / "multi"
    run_train(*args, "--out", str(single))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "tgan_deploy.train", *args, "--out", str(multi)]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = losses(single), losses(multi)
    assert [r[0] for r in two] == [1, 2, 3]
    for a, b in zip(one, two, strict=True):
        assert a[1:] == pytest.approx(b[1:], rel=1e-5, abs=1e-6)
    return single, multi


@pytest.mark.slow
def test_two_process_index_pairing_matches_one_process(tmp_path: Path) -> None:
    # The reference's pairing (real i with fake i) on toy data; the toy generator has BatchNorm.
    single_and_torchrun(tmp_path, [*TOY, "--pairing", "index", "--steps", "3", "--set", "run.log_every=1"])


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path: Path) -> None:
    # 32 px DCGAN: BatchNorm in G and in E (with faithful spectral norm on E's BN gamma), pairs over all reals x fakes.
    args = [*IMAGES, "--pairing", "all", "--steps", "3", "--set", "run.log_every=1", "--set", "run.checkpoint_every=3",
            "--set", "optim.ema_decay=0.5"]
    single, multi = single_and_torchrun(tmp_path, args)
    ckpt_one, ckpt_two = load_checkpoint(single), load_checkpoint(multi)
    lr, updates = 2e-4, 3 * 2  # default learning rate; 3 iterations x 2 generator steps (the most steps any part took)
    for key in ("generator", "generator_ema", "critic"):
        noise_only = pre_batchnorm(ckpt_one[key])
        assert noise_only, "the DCGAN nets have BatchNorm: the exception must be found, not assumed"
        for name, tensor in ckpt_one[key].items():
            other = ckpt_two[key][name]
            if not tensor.is_floating_point():
                assert torch.equal(other, tensor), f"{key}.{name}"
            elif name in noise_only:
                assert (other - tensor).abs().max() <= 2 * lr * updates, f"{key}.{name}"
            else:
                torch.testing.assert_close(other, tensor, rtol=1e-4, atol=2e-6, msg=f"{key}.{name}")


def pre_batchnorm(state: dict[str, torch.Tensor]) -> set[str]:
    """Biases of layers followed by a BatchNorm ("x.N.bias" with "x.N+1.running_mean"), and those running means."""
    names = set()
    for name in state:
        prefix, _, last = name.rpartition(".")
        head, _, index = prefix.rpartition(".")
        if last == "bias" and index.isdigit() and f"{head}.{int(index) + 1}.running_mean" in state:
            names |= {name, f"{head}.{int(index) + 1}.running_mean"}
    return names
