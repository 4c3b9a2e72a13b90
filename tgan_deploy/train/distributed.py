"""Multi-process training under torchrun: process group, global BatchNorm, differentiable gathers.

`torchrun --nproc_per_node N -m tgan_deploy.train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; we join
a process group (nccl on GPU, gloo on CPU) and wrap the networks in DistributedDataParallel.
Design choices (docs/training.md, "Multi-GPU"):
- Every objective is computed over the *global* batch: encodings (T-objectives) or critic logits
  (baselines) are all-gathered with torch.distributed.nn.functional.all_gather, whose backward sums
  the gradients of every rank's copy back to the owner. Each rank then computes the same global loss;
  DDP's gradient averaging turns (world_size x local contribution) back into the exact global gradient.
- BatchNorm statistics are per process under DDP. With run.sync_batchnorm (default) every BatchNorm
  normalises with the mean/variance of the global batch instead. torch.nn.SyncBatchNorm is GPU-only
  and its converter drops parametrisations (our faithful spectral norm of E's BN gamma), so
  `use_global_batchnorm` swaps in a forward that reduces the statistics with differentiable gathers;
  it works on gloo and nccl alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from tgan_deploy.errors import TganError

T = TypeVar("T")

# torch 2.13 marks torch.distributed.nn.functional deprecated in favour of functional collectives whose
# backward needs reduce_scatter, which gloo lacks; the autograd all_gather below works on both backends.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\..* is deprecated")


@dataclasses.dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device_type: str) -> Context:
    """Join the torchrun process group (if launched by torchrun); single-process otherwise."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Context()
    ctx = Context(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return ctx


def teardown(ctx: Context) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


def gather_cat(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Concatenate `x` [b, ...] of every rank, in rank order, keeping gradients flowing to each owner."""
    if not ctx.enabled:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def mean_over_ranks(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The mean of a per-rank statistic over the ranks (each rank's from an equal share of the global batch, so
    this is the global batch's), without gradients; x itself when single-process."""
    if not ctx.enabled:
        return x
    total = x.clone()
    dist.all_reduce(total)
    return total / ctx.world_size


def any_rank(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (so all ranks take the same branch)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj: object, ctx: Context) -> object:
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(make: Callable[[], T], ctx: Context) -> T | None:
    """`make()` on rank 0 only (None elsewhere); a TganError it raises is raised on every rank, so a refused
    torchrun run stops everywhere instead of leaving the other ranks at a barrier."""
    result, refusal = None, None
    if ctx.is_main:
        try:
            result = make()
        except TganError as exc:
            refusal = exc
    shared = broadcast_object(refusal, ctx)
    if isinstance(shared, TganError):
        raise shared
    return result


# -- BatchNorm over the global batch -------------------------------------------------------------

class _GlobalBatchNormMixin:
    """Training-mode BatchNorm whose mean and variance are those of the global batch (all ranks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        if not (bn.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)  # type: ignore[misc]
        from torch.distributed.nn.functional import all_gather

        dims = [0, *range(2, x.dim())]  # every axis but channels
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device, dtype=torch.float32)
        local = torch.cat([x.sum(dims).float(), count.reshape(1)])
        total = torch.stack(all_gather(local)).sum(0)
        n = total[-1]
        mean = total[:-1] / n
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.reshape(shape).to(x.dtype)
        # Second pass for the variance (more accurate than E[x^2] - E[x]^2).
        sq = torch.stack(all_gather((centred.float() ** 2).sum(dims))).sum(0)
        var = sq / n
        if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
            with torch.no_grad():
                assert bn.num_batches_tracked is not None
                bn.num_batches_tracked.add_(1)
                momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), momentum)
                unbiased = var.detach() * (n / (n - 1)).clamp(min=1.0)
                bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + bn.eps).reshape(shape).to(x.dtype)
        if bn.affine:
            y = y * bn.weight.reshape(shape) + bn.bias.reshape(shape)
        return y


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm in `module` normalise over the global batch under torch.distributed.

    Swaps each instance's class for a subclass of its current class (which may be a parametrised one),
    so weights, buffers, parametrisations and state_dict keys stay exactly as they were.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, _GlobalBatchNormMixin):
            cls = type(m)
            m.__class__ = type(f"Global{cls.__name__}", (_GlobalBatchNormMixin, cls), {})
    return module
