"""A foreign StyleGAN file -> OUR checkpoint dict (tgan_deploy/checkpoint.py; docs/stylegan.md).

- NVlabs snapshots (foreign/nvlabs.py): our modules use NVlabs' key names, so their state dicts carry over; the
  unused `resample_filter` buffers of non-resampling layers are dropped. Architecture kwargs come from the
  records' init kwargs and attributes, widths and depths from the tensor shapes.
- rosinality checkpoints (foreign/rosinality.py): `_rosinality_*_keys` map their names onto the same layers; each
  tensor is reshaped to our layer's shape ([1, C, 4, 4] const -> [C, 4, 4], [1, out, in, k, k] -> [out, in, k, k],
  [1] noise weight -> [], [1, 1, R, R] noise -> [R, R]) and the up-sampling kernels, stored with their gain 4, are
  divided by 4 (exact) into NVlabs' normalised form. The file has no tracked w average: `rosinality_w_avg`.

The result loads with torch.load(weights_only=True) (tensors and plain values only) and with load_checkpoint.

NVlabs snapshots dispatch on `snapshot.family` through FAMILY_CONVERTERS; StyleGAN3 takes the same path with its
generator kwargs from foreign/stylegan3.py (checked against the file's layer schedule) and StyleGAN2's
discriminator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.checkpoint import load_state_dict_checked, save_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import CheckpointError, ConfigError
from tgan_deploy.foreign.nvlabs import NVlabsSnapshot, read_nvlabs_snapshot
from tgan_deploy.foreign.rosinality import RosinalityCheckpoint, read_rosinality_checkpoint
from tgan_deploy.foreign.stylegan3 import stylegan3_generator_kwargs
from tgan_deploy.foreign.unpickler import PersistentRecord
from tgan_deploy.models import build_discriminator, build_generator
from tgan_deploy.models.stylegan2 import D_ARCHITECTURES, StyleGAN2Generator

W_AVG_SAMPLES = 4096
W_AVG_RULE = (f"mean of mapping(z) over z = numpy.random.default_rng(0).standard_normal(({W_AVG_SAMPLES}, z_dim)) "
              "(float64, cast to float32)")
NVLABS_SYNTHESIS_ARCH = "skip"  # StyleGAN2's generator ("orig" and "resnet" generators are ablations: refused)


def convert_file(path: str | Path) -> dict[str, Any]:
    """NVlabs .pkl or rosinality .pt -> our checkpoint dict (without the format tag save_checkpoint adds).
    Told apart by content: a torch zip archive (rosinality, torch.save) or a bare pickle (NVlabs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: pass an NVlabs snapshot (.pkl) or a rosinality checkpoint (.pt)")
    with open(path, "rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip:
        return convert_rosinality(read_rosinality_checkpoint(path))
    return convert_nvlabs(read_nvlabs_snapshot(path))


def write_converted(path: str | Path, out: str | Path) -> dict[str, Any]:
    """convert_file(path), written atomically to `out` as our checkpoint; returns the dict."""
    state = convert_file(path)
    save_checkpoint(out, state)
    return state


def convert_nvlabs(snapshot: NVlabsSnapshot) -> dict[str, Any]:
    converter = FAMILY_CONVERTERS.get(snapshot.family)
    if converter is None:
        raise CheckpointError(f"{snapshot.path} is an NVlabs {snapshot.family} snapshot, which this version cannot "
                              f"convert yet (supported: {', '.join(FAMILY_CONVERTERS)})")
    return converter(snapshot)


# -- NVlabs StyleGAN2(-ADA) -------------------------------------------------------------------------------------

def _child(record: PersistentRecord, name: str, path: Path) -> PersistentRecord:
    child = record.children.get(name)
    if not isinstance(child, PersistentRecord):
        raise CheckpointError(f"{path}: {record.class_name} has no '{name}' module: not a StyleGAN2 network "
                              "(pass a stylegan2-ada-pytorch snapshot)")
    return child


def _plain(value: Any) -> Any:
    """numpy scalars and EasyDicts of init kwargs -> plain Python values (what weights_only loads)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _lr_multiplier(mapping: PersistentRecord) -> float:
    # FullyConnectedLayer records bias_gain = lr_multiplier; the mapping's kwargs hold it when it was not default
    fc0 = mapping.children.get("fc0")
    gain = fc0.attrs.get("bias_gain") if isinstance(fc0, PersistentRecord) else None
    return float(_plain(gain if gain is not None else mapping.init_kwargs.get("lr_multiplier", 0.01)))


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = re.compile(pattern)
    return len({m.group(1) for key in state if (m := found.fullmatch(key))})


def _widths(state: dict[str, torch.Tensor], resolution: int, key: str, first: int = 4) -> list[int]:
    """Out channels of `key.format(res=...)` for res first ... resolution (widths read from the file's shapes)."""
    return [int(state[key.format(res=2**i)].shape[0]) for i in range(int(np.log2(first)), int(np.log2(resolution)) + 1)]


def _nvlabs_generator_kwargs(g: PersistentRecord, path: Path) -> dict[str, Any]:
    attrs, mapping, synthesis = g.attrs, _child(g, "mapping", path), _child(g, "synthesis", path)
    state = g.state_dict()
    s_kwargs = _plain(synthesis.init_kwargs)
    blocks = [c for c in synthesis.children.values() if isinstance(c, PersistentRecord)]
    archs = {c.attrs.get("architecture", NVLABS_SYNTHESIS_ARCH) for c in blocks}
    if archs != {NVLABS_SYNTHESIS_ARCH}:
        raise CheckpointError(f"{path}: synthesis architecture {sorted(archs)} is not StyleGAN2's 'skip' generator "
                              "(the only one supported)")
    m_act = mapping.init_kwargs.get("activation", "lrelu")
    if m_act != "lrelu":
        raise CheckpointError(f"{path}: mapping activation {m_act!r} is not StyleGAN2's lrelu")
    resolution = int(attrs["img_resolution"])
    c_dim, w_dim = int(attrs["c_dim"]), int(attrs["w_dim"])
    num_layers = _count(state, r"mapping\.fc(\d+)\.weight")
    return {
        "z_dim": int(attrs["z_dim"]), "w_dim": w_dim, "resolution": resolution,
        "channels": int(attrs["img_channels"]),
        "widths": _widths(state, resolution, "synthesis.b{res}.conv1.weight"),
        "num_classes": c_dim, "mapping_layers": num_layers, "mapping_lr_multiplier": _lr_multiplier(mapping),
        "embed_features": int(state["mapping.embed.weight"].shape[0]) if c_dim else None,
        "layer_features": int(state["mapping.fc0.weight"].shape[0]) if num_layers > 1 else None,
        "w_avg_beta": float(_plain(mapping.attrs.get("w_avg_beta", 0.995))),
        "conv_clamp": s_kwargs.get("conv_clamp"),
        "resample_filter": s_kwargs.get("resample_filter", [1, 3, 3, 1]), "equalized_weight": False,
    }


def nvlabs_discriminator_kwargs(d: PersistentRecord, path: Path) -> dict[str, Any]:
    attrs, kwargs, state = d.attrs, _plain(d.init_kwargs), d.state_dict()
    if kwargs.get("architecture", "resnet") not in D_ARCHITECTURES:
        raise CheckpointError(f"{path}: discriminator architecture {kwargs['architecture']!r} is not supported "
                              f"(supported: {', '.join(D_ARCHITECTURES)})")
    epilogue = _child(d, "b4", path)
    mbstd = epilogue.children.get("mbstd")
    resolution, c_dim = int(attrs["img_resolution"]), int(attrs["c_dim"])
    widths = [int(state["b4.conv.weight"].shape[0]), *_widths(state, resolution, "b{res}.conv0.weight", first=8)]
    return {
        "resolution": resolution, "channels": int(attrs["img_channels"]), "widths": widths, "num_classes": c_dim,
        "architecture": str(kwargs.get("architecture", "resnet")), "conv_clamp": kwargs.get("conv_clamp"),
        "mbstd_group_size": _plain(mbstd.attrs["group_size"]) if isinstance(mbstd, PersistentRecord) else None,
        "mbstd_num_channels": int(_plain(mbstd.attrs["num_channels"])) if isinstance(mbstd, PersistentRecord) else 0,
        "cmap_dim": int(state["b4.out.weight"].shape[0]) if c_dim else None,
        "mapping_layers": _count(state, r"mapping\.fc(\d+)\.weight") if c_dim else 8,
        "mapping_lr_multiplier": _lr_multiplier(_child(d, "mapping", path)) if c_dim else 0.01,
        "resample_filter": kwargs.get("block_kwargs", {}).get("resample_filter", [1, 3, 3, 1]),
    }


def _ours(module: nn.Module, theirs: dict[str, torch.Tensor], what: str, path: Path) -> dict[str, torch.Tensor]:
    """`theirs` restricted to `module`'s keys (NVlabs' names = ours); anything else they hold, except the
    resample filters of layers that never resample, means a layer we do not have: refused."""
    ours = module.state_dict()
    extra = sorted(k for k in theirs if k not in ours and not k.endswith("resample_filter"))
    if extra:
        raise CheckpointError(f"{path}: {what} holds tensors StyleGAN2 does not have ({', '.join(extra[:3])}): "
                              "a modified architecture this importer cannot map")
    return {k: v.to(torch.float32).contiguous() for k, v in theirs.items() if k in ours}


def _convert_nvlabs(snapshot: NVlabsSnapshot, family: str,
                    generator_kwargs: Callable[[PersistentRecord, Path], dict[str, Any]]) -> dict[str, Any]:
    """Either NVlabs family: its generator kwargs (`generator_kwargs`), StyleGAN2's discriminator (stylegan3
    trains with it too), NVlabs' key names carried over."""
    path = snapshot.path
    try:
        g_kwargs = generator_kwargs(snapshot.G_ema, path)
        d_kwargs = nvlabs_discriminator_kwargs(snapshot.D, path) if snapshot.D is not None else None
    except KeyError as err:
        raise CheckpointError(f"{path}: the networks have no {err}: not a {family} snapshot (pass one written by "
                              "stylegan2-ada-pytorch or stylegan3)") from None
    cfg = style_config(family, g_kwargs, d_kwargs, path)
    nets = {"generator_ema": snapshot.G_ema, "generator": snapshot.G or snapshot.G_ema, "critic": snapshot.D}
    return checkpoint_dict(cfg, {k: r.state_dict() for k, r in nets.items() if r is not None},
                           origin_record(family, "nvlabs-pkl", snapshot.sha256, "nvlabs"), path)


FAMILY_CONVERTERS: dict[str, Callable[[NVlabsSnapshot], dict[str, Any]]] = {
    "stylegan2": lambda snapshot: _convert_nvlabs(snapshot, "stylegan2", _nvlabs_generator_kwargs),
    "stylegan3": lambda snapshot: _convert_nvlabs(snapshot, "stylegan3", stylegan3_generator_kwargs),
}


# -- rosinality stylegan2-pytorch -------------------------------------------------------------------------------

def _rosinality_generator_keys(log2: int, n_mlp: int) -> dict[str, str]:
    """Our key -> rosinality's, for G (w_avg aside)."""
    keys = {}
    for i in range(n_mlp):  # style.0 is the PixelNorm
        for p in ("weight", "bias"):
            keys[f"mapping.fc{i}.{p}"] = f"style.{i + 1}.{p}"

    def modulated(ours: str, theirs: str) -> None:  # the weight and affine of a SynthesisLayer or ToRGBLayer
        keys.update({f"{ours}.weight": f"{theirs}.conv.weight",
                     f"{ours}.affine.weight": f"{theirs}.conv.modulation.weight",
                     f"{ours}.affine.bias": f"{theirs}.conv.modulation.bias"})

    def layer(ours: str, theirs: str, noise: int) -> None:
        modulated(ours, theirs)
        keys.update({f"{ours}.bias": f"{theirs}.activate.bias", f"{ours}.noise_strength": f"{theirs}.noise.weight",
                     f"{ours}.noise_const": f"noises.noise_{noise}"})

    def torgb(ours: str, theirs: str) -> None:
        modulated(ours, theirs)
        keys[f"{ours}.bias"] = f"{theirs}.bias"

    keys["synthesis.b4.const"] = "input.input"
    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(log2 - 2):
        block = f"synthesis.b{2 ** (k + 3)}"
        layer(f"{block}.conv0", f"convs.{2 * k}", 2 * k + 1)
        layer(f"{block}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"{block}.torgb", f"to_rgbs.{k}")
        keys[f"{block}.conv0.resample_filter"] = f"convs.{2 * k}.conv.blur.kernel"
        keys[f"{block}.resample_filter"] = f"to_rgbs.{k}.upsample.kernel"
    return keys


def _rosinality_discriminator_keys(log2: int) -> dict[str, str]:
    """Our key -> rosinality's, for D: convs.0 is the fromrgb, convs.j the ResBlock at 2^(log2 - j + 1)."""
    top = 2**log2
    keys = {f"b{top}.fromrgb.weight": "convs.0.0.weight", f"b{top}.fromrgb.bias": "convs.0.1.bias",
            "b4.conv.weight": "final_conv.0.weight", "b4.conv.bias": "final_conv.1.bias"}
    for j in range(1, log2 - 1):
        b, c = f"b{2 ** (log2 - j + 1)}", f"convs.{j}"
        keys.update({f"{b}.conv0.weight": f"{c}.conv1.0.weight", f"{b}.conv0.bias": f"{c}.conv1.1.bias",
                     f"{b}.conv1.resample_filter": f"{c}.conv2.0.kernel", f"{b}.conv1.weight": f"{c}.conv2.1.weight",
                     f"{b}.conv1.bias": f"{c}.conv2.2.bias", f"{b}.skip.resample_filter": f"{c}.skip.0.kernel",
                     f"{b}.skip.weight": f"{c}.skip.1.weight"})
    for ours, theirs in (("fc", "0"), ("out", "1")):
        keys.update({f"b4.{ours}.{p}": f"final_linear.{theirs}.{p}" for p in ("weight", "bias")})
    return keys


# rosinality stores its up-sampling kernels with the gain factor**2 = 4 folded in (Upsample, Blur(upsample_factor))
_UP_KERNEL = re.compile(r"synthesis\.b\d+\.(conv0\.)?resample_filter")


def _remap(theirs: dict[str, torch.Tensor], keys: dict[str, str], module: nn.Module, what: str,
           path: Path) -> dict[str, torch.Tensor]:
    ours = module.state_dict()
    used = set(keys.values())
    extra = sorted(k for k in theirs if k not in used)
    missing = sorted(t for o, t in keys.items() if o in ours and t not in theirs)
    if extra or missing:
        raise CheckpointError(f"{path}: {what} does not have rosinality's StyleGAN2 layout (unexpected "
                              f"{extra[:3]}, missing {missing[:3]}): a modified architecture this importer cannot map")
    out = {}
    for our_key, target in ours.items():
        if our_key not in keys:
            continue  # w_avg: computed afterwards
        t = theirs[keys[our_key]].to(torch.float32)
        if t.numel() != target.numel():
            raise CheckpointError(f"{path}: {what} {keys[our_key]} has shape {tuple(t.shape)}, expected "
                                  f"{tuple(target.shape)} from the other tensors' shapes")
        t = t.reshape(target.shape)
        out[our_key] = (t / 4 if _UP_KERNEL.fullmatch(our_key) else t).contiguous()
    return out


def rosinality_w_avg(generator: StyleGAN2Generator) -> torch.Tensor:
    """w_avg of a generator whose file tracks none (rosinality): W_AVG_RULE, deterministic (fixed seed, fp32 on the
    CPU); rosinality's own mean_latent(4096) is the same statistic from torch's unseeded RNG."""
    z = np.random.default_rng(0).standard_normal((W_AVG_SAMPLES, generator.z_dim)).astype(np.float32)
    with torch.no_grad():
        return generator.mapping(torch.from_numpy(z))[:, 0].mean(dim=0)


def _rosinality_kwargs(ckpt: RosinalityCheckpoint) -> tuple[dict[str, Any], dict[str, Any] | None]:
    g, path = ckpt.g_ema, ckpt.path
    try:
        log2 = _count(g, r"to_rgbs\.(\d+)\.conv\.weight") + 2
        z_dim = int(g["style.1.weight"].shape[1])
        widths = [int(g["input.input"].shape[1])] + [int(g[f"convs.{2 * k + 1}.conv.weight"].shape[1])
                                                    for k in range(log2 - 2)]
        channels = int(g["to_rgb1.conv.weight"].shape[1])
    except KeyError as err:
        raise CheckpointError(f"{path}: g_ema has no {err}: not a rosinality StyleGAN2 generator") from None
    if ckpt.args.get("size") not in (None, 2**log2):
        raise CheckpointError(f"{path}: args.size {ckpt.args['size']} but the generator has {log2 - 1} resolutions "
                              f"(up to {2 ** log2}): an inconsistent checkpoint")
    g_kwargs = {"z_dim": z_dim, "w_dim": int(g["style.1.weight"].shape[0]), "resolution": 2**log2, "channels": channels,
                "widths": widths, "num_classes": 0, "mapping_layers": _count(g, r"style\.(\d+)\.weight"),
                "mapping_lr_multiplier": 0.01,  # rosinality's Generator(lr_mlp=0.01); train.py never changes it
                "conv_clamp": None, "equalized_weight": True}
    d = ckpt.d
    if d is None:
        return g_kwargs, None
    try:
        d_widths = [int(d["final_conv.0.weight"].shape[0])] + [int(d[f"convs.{j}.conv1.0.weight"].shape[0])
                                                                for j in range(log2 - 2, 0, -1)]
    except KeyError as err:
        raise CheckpointError(f"{path}: d has no {err}: not a rosinality StyleGAN2 discriminator") from None
    d_kwargs = {"resolution": 2**log2, "channels": channels, "widths": d_widths, "architecture": "resnet",
                "conv_clamp": None, "mbstd_group_size": 4, "mbstd_num_channels": 1}  # rosinality's stddev_group/feat
    return g_kwargs, d_kwargs


def convert_rosinality(ckpt: RosinalityCheckpoint) -> dict[str, Any]:
    path = ckpt.path
    g_kwargs, d_kwargs = _rosinality_kwargs(ckpt)
    cfg = style_config("stylegan2", g_kwargs, d_kwargs, path)
    log2 = int(np.log2(g_kwargs["resolution"]))
    g_keys = _rosinality_generator_keys(log2, g_kwargs["mapping_layers"])
    states: dict[str, dict[str, torch.Tensor]] = {}
    for ours, theirs in (("generator_ema", ckpt.g_ema), ("generator", ckpt.g or ckpt.g_ema)):
        generator = StyleGAN2Generator(**g_kwargs)
        state = _remap(theirs, g_keys, generator, ours, path)
        generator.load_state_dict(state, strict=False)
        state["mapping.w_avg"] = rosinality_w_avg(generator)
        states[ours] = state
    if ckpt.d is not None:
        states["critic"] = _remap(ckpt.d, _rosinality_discriminator_keys(log2), _module_for("critic", cfg, path),
                                  "critic", path)
    origin = {**origin_record("stylegan2", "rosinality-pt", ckpt.sha256, "tgan"), "w_avg_rule": W_AVG_RULE}
    return checkpoint_dict(cfg, states, origin, path, remapped=True)


# -- our checkpoint ---------------------------------------------------------------------------------------------

def style_config(arch: str, generator: dict[str, Any], discriminator: dict[str, Any] | None,
                 path: Path) -> TrainConfig:
    """The TrainConfig of an imported style model: model.style holds the constructor kwargs."""
    num_classes = int(generator.get("num_classes", 0))
    model = {"arch": arch, "resolution": generator["resolution"], "channels": generator["channels"],
             "latent_dim": generator["z_dim"], "num_classes": num_classes,
             "classes": [str(i) for i in range(num_classes)],
             "style": {"generator": generator, **({"discriminator": discriminator} if discriminator else {})}}
    if discriminator is not None and int(discriminator.get("num_classes", 0)) != num_classes:
        raise CheckpointError(f"{path}: the generator has {num_classes} classes but the discriminator "
                              f"{discriminator.get('num_classes', 0)}: an inconsistent snapshot")
    if generator["z_dim"] <= 0:
        raise CheckpointError(f"{path}: z_dim {generator['z_dim']}: a generator without a latent input is not "
                              "supported")
    try:
        return TrainConfig.from_dict({"model": model})
    except ConfigError as err:
        raise CheckpointError(f"{path}: {err}") from None


def origin_record(family: str, source_format: str, sha256: str, rule: str) -> dict[str, str]:
    return {"family": family, "source_format": source_format, "source_sha256": sha256, "seed_rule": rule,
            "pixel_rule": rule}


def _module_for(key: str, cfg: TrainConfig, file: str | Path) -> nn.Module:
    """The module a checkpoint key holds ("critic": the discriminator, else a generator), from the factory."""
    try:
        return build_discriminator(cfg.model) if key == "critic" else build_generator(cfg.model)
    except ConfigError as err:
        raise CheckpointError(f"{file}: {err}") from None


def checkpoint_dict(cfg: TrainConfig, states: dict[str, dict[str, torch.Tensor]], origin: dict[str, str],
                    path: Path, remapped: bool = False) -> dict[str, Any]:
    """Our checkpoint dict; every state dict is loaded into a freshly built module first, so a file whose tensors do
    not fit the architecture read from it fails here, in one line, not later."""
    out: dict[str, Any] = {"config": cfg.to_dict(), "step": 0, "classes": list(cfg.model.classes), "origin": origin}
    for key, theirs in states.items():
        module = _module_for(key, cfg, path)
        state = theirs if remapped else _ours(module, theirs, key, path)
        load_state_dict_checked(module, state, key, str(path))
        out[key] = state
    return out


def style_modules(state: dict[str, Any]) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(generator, generator_ema, discriminator or None) of one of our style checkpoints (load_checkpoint's dict),
    in eval mode."""
    cfg: TrainConfig = state.get("config_obj") or TrainConfig.from_dict(state["config"])
    file = str(state.get("path", "checkpoint"))
    modules: list[nn.Module | None] = []
    for key in ("generator", "generator_ema", "critic"):
        if state.get(key) is None:
            modules.append(None)
            continue
        module = _module_for(key, cfg, file)
        load_state_dict_checked(module, state[key], key, file)
        modules.append(module.eval())
    g, g_ema, d = modules
    if g_ema is None:
        raise CheckpointError(f"{file} holds no generator_ema: not an imported style model")
    return g or g_ema, g_ema, d
