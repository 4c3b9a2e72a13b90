"""Fine-tuning: a new run that starts from a trained model's weights (run.init_from), and FreezeD.

`load_parent` reads the parent (a checkpoint file, or a run directory: its best.pt, else its newest step, or an
imported StyleGAN2 file: NVlabs .pkl, rosinality .pt, whose discriminator becomes the critic's encoder) and
refuses, in one line and before anything is written, a parent whose images the new model cannot make
(another architecture, resolution or channel count). `init_weights` then copies every tensor of G, the
critic (E, D, projection) and the EMA generator whose name and shape match, and names what stayed fresh: a
changed class count re-initialises only the label tables (the embedding of G, the critic's projection),
since everything else keeps its shape. Optimiser state is always fresh: the new data is a new problem.

FreezeD (Mo et al., arXiv:2002.10964, "Freeze the Discriminator"): the critic's first N encoder blocks (a
block = one conv or linear layer and the normalisation after it) keep the parent's weights, which
transfers its low-level features and leaves fewer parameters to overfit a small target set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from tgan_deploy.checkpoint_metadata import WEIGHT_KEYS, sampling_weights
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import TganError

MUST_MATCH = ("arch", "resolution", "channels")


def read_parent(source: str) -> dict[str, Any]:
    """A checkpoint of ours or a run directory (load_checkpoint's dict); or a StyleGAN2 file, an NVlabs .pkl or a
    rosinality .pt, converted by foreign/convert.py (which executes nothing of the file) into the same dict."""
    from tgan_deploy.checkpoint import checked_classes, load_checkpoint
    from tgan_deploy.errors import CheckpointError

    path = Path(source)
    if not path.is_file() or _is_zip(path):  # ours (torch.save's zip) or a run directory, else a foreign pickle
        try:
            return load_checkpoint(source)
        except CheckpointError:
            if not path.is_file():
                raise
    from tgan_deploy.foreign.convert import convert_file

    try:
        parent = convert_file(source)
    except TganError as exc:
        raise CheckpointError(f"--init-from {source} is neither a tgan-deploy checkpoint nor a StyleGAN2 file "
                              f"(NVlabs .pkl, rosinality .pt): {str(exc).removeprefix(f'{source}: ')}") from None
    parent["config_obj"] = TrainConfig.from_dict(parent["config"])
    model = parent["config_obj"].model
    parent["classes"] = checked_classes(parent.get("classes"), model.num_classes, source)
    parent["path"] = source
    return parent


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def load_parent(cfg: TrainConfig) -> dict[str, Any]:
    """The parent checkpoint of run.init_from, checked against cfg.model; raises a one-line TganError."""
    from tgan_deploy.io import file_sha256

    parent = read_parent(cfg.run.init_from)
    theirs = parent["config_obj"].model
    for name in MUST_MATCH:
        if getattr(theirs, name) != getattr(cfg.model, name) and not (cfg.model.arch == "mlp" and name != "arch"):
            raise TganError(f"--init-from {parent['path']} has model.{name} {getattr(theirs, name)!r}, this run "
                            f"{getattr(cfg.model, name)!r}: fine-tune from a parent with the same {name} "
                            f"(or set model.{name} {getattr(theirs, name)!r})")
    if parent.get("origin") and parent.get("critic") is not None:  # an imported StyleGAN2: its D, in our names
        from tgan_deploy.objectives import get_objective
        from tgan_deploy.train.style import critic_state_from_discriminator

        single_sample = not get_objective(cfg.objective.name).pairwise
        parent["critic"] = critic_state_from_discriminator(parent["critic"], single_sample)
    parent["sha256"] = file_sha256(parent["path"])
    return parent


def copy_matching(module: nn.Module, source: dict[str, Any] | None) -> list[str]:
    """Load every tensor of `source` whose name and shape match; returns the names left fresh."""
    own = module.state_dict()
    source = source or {}
    taken = {k: v for k, v in source.items() if k in own and getattr(v, "shape", None) == own[k].shape}
    module.load_state_dict(own | taken)
    return [k for k in own if k not in taken]


def init_weights(parent: dict[str, Any], G: nn.Module, critic: nn.Module, ema_model: nn.Module | None) -> str:
    """Copy the parent's weights into the new models; returns the one line that says what was loaded."""
    fresh: dict[str, list[str]] = {
        "G": copy_matching(G, parent.get("generator")),
        "critic": copy_matching(critic, parent.get("critic")),
    }
    if ema_model is not None:
        fresh["EMA"] = copy_matching(ema_model, parent.get(WEIGHT_KEYS[sampling_weights(parent)]))
    total = len(G.state_dict()) + len(critic.state_dict()) + (len(ema_model.state_dict()) if ema_model else 0)
    new = sum(len(names) for names in fresh.values())
    detail = "; ".join(f"{who}: {', '.join(_layers(names))}" for who, names in fresh.items() if names)
    return (f"init-from {parent['path']} (step {parent.get('step')}): loaded {total - new} of {total} tensors, "
            f"fresh optimiser state" + (f"; fresh: {detail}" if detail else ""))


def _layers(names: list[str]) -> list[str]:
    """State-dict keys -> the layers they belong to ("body.0.weight" -> "body.0"), first-seen order."""
    seen: dict[str, None] = {}
    for name in names:
        seen[name.removesuffix(".original").rsplit(".", 1)[0].replace(".parametrizations", "")] = None
    return list(seen)


def encoder_blocks(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """The encoder's blocks in input order: each conv/linear layer with the normalisation layers after it;
    StyleGAN2's trunk: its resolution blocks b{R} ... b8, then the 4x4 epilogue (StyleGAN2-ADA's --freezed)."""
    from tgan_deploy.models.stylegan2 import StyleGAN2Discriminator

    if isinstance(encoder, StyleGAN2Discriminator):
        return [list(getattr(encoder, f"b{res}").parameters()) for res in [*encoder.resolutions, 4]]
    blocks: list[list[nn.Parameter]] = []
    for module in encoder.modules():
        # parameters() of the layer itself includes a spectral-norm parametrisation's `original` weight
        if isinstance(module, nn.Conv2d | nn.Linear):
            blocks.append(list(module.parameters()))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and blocks:
            blocks[-1].extend(module.parameters())
    return blocks


def freeze_blocks(critic: nn.Module, n: int) -> list[nn.Parameter]:
    """FreezeD: the parameters of the critic's first n encoder blocks, to keep out of training."""
    if n == 0:
        return []
    blocks = encoder_blocks(critic.encoder)  # type: ignore[arg-type]
    if n > len(blocks):
        raise TganError(f"optim.freeze_d {n} is more than the critic's {len(blocks)} encoder blocks: "
                        f"pick 1..{len(blocks)}")
    frozen = [p for block in blocks[:n] for p in block]
    for p in frozen:
        p.requires_grad_(False)
    return frozen
