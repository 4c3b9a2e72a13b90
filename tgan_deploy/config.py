"""One config for a run: dataclasses whose defaults are the reference's hyper-parameters.

The defaults table is the dataclass definitions below; the CLI, config files and checkpoints all go
through `TrainConfig.from_dict` / `apply_overrides`, so an unknown key fails the same way everywhere.
Reference values: bojone/T-GANs, as docs/method.md §5 states them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from tgan_deploy.errors import ConfigError

IMAGE_RESOLUTIONS = (32, 64, 128, 256)
STYLE_ARCHS = ("stylegan2", "stylegan3")  # architectures of imported StyleGAN files (model.style holds their kwargs)
STYLEGAN2_RESOLUTIONS = (8, 16, 32, 64, 128, 256, 512, 1024)  # what tgan-train --arch stylegan2 builds
# The objectives tgan_deploy.objectives implements (tests/test_objectives.py checks its table has exactly
# these), named here so that validating a config needs neither torch nor an import from a layer above.
AUGMENT_POLICIES = ("auto", "none", "diffaug", "ada")
OBJECTIVE_NAMES = ("t-sgan", "t-wgan", "t-lsgan", "t-hinge", "sgan", "rsgan", "rasgan", "ralsgan", "hinge", "wgan-gp")


@dataclasses.dataclass
class ModelConfig:
    arch: str = "dcgan"  # "dcgan": the reference conv nets (images); "mlp": 2-D toy data (PacGAN's MLPs);
    # "stylegan2": StyleGAN2's generator and discriminator trunk under the pair head (docs/training.md, StyleGAN2)
    resolution: int = 64  # 32 (CIFAR-size variant), 64, 128 or 256; ignored by "mlp"
    channels: int = 3  # 3 (RGB) or 1 (grayscale)
    latent_dim: int = 100  # z ~ N(0, I); reference: 100 (CelebA), 64 (CIFAR); PacGAN toy: 2
    base_channels: int = 64  # width of the narrowest conv layer; 64 is the reference, smaller scales all layers
    head_hidden: int = 512  # hidden units of the pair head D; reference: 512 (CelebA), 256 (CIFAR)
    negative_slope: float = 0.3  # LeakyReLU slope in E and D; Keras' default, used by the reference
    spectral_norm: str = "faithful"  # "faithful" (reference: 5 iterations from ones, every forward), "torch", "none"
    layer_defaults: str = "keras"  # "keras": Glorot init, BN momentum 0.01 / eps 1e-3; "torch": PyTorch's
    toy_hidden: int = 400  # MLP width for arch "mlp" (PacGAN: 400)
    toy_depth: int = 4  # hidden layers of the toy generator (PacGAN: 4)
    num_classes: int = 0  # 0: unconditional; N: G(z, label) + projection critic (--conditional sets it from the data)
    classes: list[str] = dataclasses.field(default_factory=list)  # class names, label-index order (from the data)
    label_embed_dim: int = 32  # conditional G: width of the learned label embedding concatenated with z
    # arch "stylegan2" / "stylegan3" (imported models, docs/stylegan.md): the constructor kwargs of the style
    # generator and discriminator, {"generator": {...}, "discriminator": {...}} (models/stylegan2.py names them);
    # widths, depths and dims as read from the imported file, or, for a stylegan2 tgan-train trains, written by it
    # from the keys below (train/style.py). resolution, channels, latent_dim (= z_dim) and num_classes (= c_dim)
    # above hold the same values. Empty for the reference archs.
    style: dict[str, Any] = dataclasses.field(default_factory=dict)
    # arch "stylegan2" trained by tgan-train (docs/training.md, StyleGAN2); tgan-train writes the model.style
    # kwargs from these (an --init-from StyleGAN2 parent brings its own). The stylegan2 preset sets them per
    # resolution (train/presets.py); the values here are StyleGAN2-ADA's "auto" config below 512 px.
    channel_base: int = 16384  # width at resolution r: min(channel_base // r, channel_max) (StyleGAN2-ADA's rule)
    channel_max: int = 512
    w_dim: int = 512  # width of w (the mapping network's output and hidden layers)
    mapping_layers: int = 2  # mapping network depth: StyleGAN2-ADA's auto config (the StyleGAN2 paper: 8)
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping network (StyleGAN §C)
    style_mixing: float = 0.9  # probability per batch of style-mixing regularisation (StyleGAN2: 0.9; 0 off)
    mbstd_group_size: int = 4  # the discriminator trunk's minibatch-std group (StyleGAN2: 4)


@dataclasses.dataclass
class ObjectiveConfig:
    name: str = "t-sgan"  # one of OBJECTIVE_NAMES (tgan_deploy.objectives)
    pairing: str = "index"  # T-objectives: "index", "perm:K" (index + K fake permutations) or "all"
    pair_impl: str = "auto"  # pair-score kernel: "auto", "ref", "cpu", "cuda"
    gp_weight: float = 10.0  # WGAN-GP's lambda
    # Lazy R1 on real inputs (Mescheder et al. 2018; StyleGAN2 §3.1): every r1_interval-th critic step adds
    # r1_interval * r1_gamma / 2 * mean ||grad_x critic(x_r)||^2 (pair critics: the true-order score's gradient
    # in its real member, docs/method.md §7.4). 0: off; the stylegan2 preset: 0.0002 res^2 / batch
    # (StyleGAN2-ADA's auto config).
    r1_gamma: float = 0.0
    r1_interval: int = 16
    # Path-length regularisation of G (StyleGAN2 §3.2), arch stylegan2: every pl_interval-th generator step adds
    # pl_interval * pl_weight * mean (|J_w^T y| - a)^2. 0: off (StyleGAN2 uses 2).
    pl_weight: float = 0.0
    pl_interval: int = 4


@dataclasses.dataclass
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    critic_steps: int = 1  # per iteration; the reference does 1 critic step ...
    generator_steps: int = 2  # ... then 2 generator steps
    ema_decay: float = 0.999  # generator EMA; 0 disables it
    amp: str = "none"  # "none" or "bf16" (autocast, on the CPU and GPUs: docs/training.md, Mixed precision)
    freeze_d: int = 0  # FreezeD (Mo et al., arXiv:2002.10964): the critic's first N encoder blocks stay fixed


@dataclasses.dataclass
class DataConfig:
    source: str = "builtin:mnist5k"  # image folder, .npz file, or builtin:{mnist5k,digits,ring8,grid25}
    workers: int = 0  # DataLoader worker processes
    conditional: bool = False  # train class-conditionally on the data's labels (tgan-train --conditional)
    max_bad_fraction: float = 0.01  # unreadable images tolerated (skipped with a warning) before failing
    cache_dir: str = ""  # decoded image-folder cache; "" = data/ in the cache root (cache.py), "none" = keep in RAM
    limit: int = 0  # train on N items only, a fixed seeded subset (TrainingData.subset; 0: all of them)


@dataclasses.dataclass
class AugmentConfig:
    # Augmentation of every image the critic sees, reals and fakes alike (train/augment.py):
    # "none"; "diffaug" (DiffAugment, Zhao et al., arXiv:2006.10738: colour, translation, cutout, always);
    # "ada" (the same operations, each with probability p adapted from the critic's overfitting, Karras et al.,
    # arXiv:2006.06676); "auto": "ada" for image data of fewer than augment.auto_below items, else "none".
    # Default "none": on 500 MNIST digits neither helped (docs/results.md, Small data).
    policy: str = "none"
    auto_below: int = 2000  # "auto" turns ada on below this many training images
    ada_target: float = 0.6  # ADA's target for the overfitting signal r_t
    ada_interval: int = 4  # critic steps between adjustments of p
    ada_kimg: float = 100.0  # p can move from 0 to 1 in this many thousand real images (StyleGAN2-ADA: 500)


@dataclasses.dataclass
class RunConfig:
    out: str = "runs/default"
    steps: int = 10_000  # iterations (one iteration = critic steps + generator steps)
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda"
    deterministic: bool = False
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_last: int = 3
    on_divergence: str = "rollback"  # "rollback" (to last good checkpoint, lower lr) or "stop"
    eval_every: int = 1000  # FD/KID (tgan-eval's metrics) every N iterations; keeps best.pt (0: never)
    eval_samples: int = 2500  # samples per evaluation (PacGAN's protocol uses 2,500)
    eval_features: str = ""  # TorchScript feature detector (Inception) for image data; "": the cache's, if any
    init_from: str = ""  # fine-tune: start from this checkpoint or run directory's weights (tgan-train --init-from)
    init_from_sha256: str = ""  # filled in by tgan-train: the sha256 of the checkpoint init_from loaded
    # -- trainer settings (tgan_deploy.train) --
    threads: int = 0  # torch intra-op CPU threads; 0 keeps torch's default. Fix it for bit-exact resumes
    max_rollbacks: int = 3  # on_divergence "rollback": give up (exit with an error) after this many
    rollback_lr_factor: float = 0.5  # each rollback multiplies both learning rates by this
    sample_grid: int = 8  # image sample grids are N x N, from latent seeds 0 .. N*N-1 (same every time)
    sync_batchnorm: bool = True  # under torchrun: BatchNorm statistics over the global batch, not per process
    tensorboard: bool = True  # also log to RUN_DIR/tensorboard when the tensorboard package is installed


@dataclasses.dataclass
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    # -- conversions ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        cfg = cls().merge(data)
        cfg.validate()
        return cfg

    def merge(self, data: dict[str, Any]) -> TrainConfig:
        """Set the keys of a sections dict (a config file's content); validate() once everything is set."""
        _merge(self, data, prefix="")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_config_file(path))

    def apply_overrides(self, overrides: dict[str, Any]) -> TrainConfig:
        """Set dotted keys (`"optim.batch_size": 32`); values are converted to the field's type."""
        for key, value in overrides.items():
            if value is None:
                continue
            section_name, _, field_name = key.partition(".")
            section = _child(self, section_name, "")
            if not field_name or not dataclasses.is_dataclass(section):
                raise ConfigError(f"override {key!r} must be section.field, e.g. optim.batch_size")
            _set_field(section, field_name, value, prefix=section_name + ".")
        self.validate()
        return self

    def dump(self, path: str | Path) -> None:
        import yaml

        from tgan_deploy.io import write_text_atomic

        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    # -- checks --------------------------------------------------------------------------------
    def validate(self) -> None:
        m, o, opt = self.model, self.objective, self.optim
        _choice("model.arch", m.arch, ("dcgan", "mlp", *STYLE_ARCHS))
        if m.arch == "stylegan2" and not m.style:
            if m.resolution not in STYLEGAN2_RESOLUTIONS:
                raise ConfigError(f"model.resolution {m.resolution} is not one a stylegan2 can make: use one of "
                                  f"{', '.join(map(str, STYLEGAN2_RESOLUTIONS))}")
            _choice("model.channels", m.channels, (1, 3))
            for name, size in [("model.channel_base", m.channel_base), ("model.channel_max", m.channel_max),
                               ("model.w_dim", m.w_dim), ("model.mapping_layers", m.mapping_layers)]:
                if size <= 0:
                    raise ConfigError(f"{name} must be positive, got {size}")
        elif m.arch in STYLE_ARCHS and not isinstance(m.style.get("generator"), dict):
            raise ConfigError(f"model.arch {m.arch} needs model.style.generator (the constructor kwargs): "
                              "import the model with tgan-export FILE.pkl|FILE.pt, which writes them")
        if m.arch == "dcgan":
            if m.resolution not in IMAGE_RESOLUTIONS:
                raise ConfigError(f"model.resolution {m.resolution} is not one the architecture can make: "
                                  f"use one of {', '.join(map(str, IMAGE_RESOLUTIONS))}")
            _choice("model.channels", m.channels, (1, 3))
        _choice("model.spectral_norm", m.spectral_norm, ("faithful", "torch", "none"))
        _choice("model.layer_defaults", m.layer_defaults, ("keras", "torch"))
        _choice("objective.pair_impl", o.pair_impl, ("auto", "ref", "cpu", "cuda"))
        _choice("optim.amp", opt.amp, ("none", "bf16"))
        _choice("run.device", self.run.device, ("auto", "cpu", "cuda"))
        _choice("run.on_divergence", self.run.on_divergence, ("rollback", "stop"))
        a = self.augment
        _choice("augment.policy", a.policy, AUGMENT_POLICIES)
        if not 0 < a.ada_target < 1 or a.ada_interval <= 0 or a.ada_kimg <= 0:
            raise ConfigError(f"augment.ada_target must be in (0, 1) and augment.ada_interval, augment.ada_kimg "
                              f"positive; got {a.ada_target}, {a.ada_interval}, {a.ada_kimg}")
        parse_pairing(o.pairing)
        for name, value in [("model.latent_dim", m.latent_dim), ("model.base_channels", m.base_channels),
                            ("model.head_hidden", m.head_hidden), ("optim.batch_size", opt.batch_size),
                            ("optim.critic_steps", opt.critic_steps),
                            ("optim.generator_steps", opt.generator_steps), ("run.steps", self.run.steps)]:
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if m.num_classes < 0:
            raise ConfigError(f"model.num_classes must be >= 0 (0: unconditional), got {m.num_classes}")
        if m.classes and len(m.classes) != m.num_classes:
            raise ConfigError(f"model.classes names {len(m.classes)} classes but model.num_classes is {m.num_classes}: "
                              "leave both unset, --conditional fills them in from the data")
        if m.num_classes and m.label_embed_dim <= 0:
            raise ConfigError(f"model.label_embed_dim must be positive for a conditional model, "
                              f"got {m.label_embed_dim}")
        r = self.run
        for name, value in [("run.log_every", r.log_every), ("run.sample_every", r.sample_every),
                            ("run.checkpoint_every", r.checkpoint_every), ("run.keep_last", r.keep_last),
                            ("run.sample_grid", r.sample_grid), ("run.eval_samples", r.eval_samples)]:
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        for name, count in [("optim.freeze_d", opt.freeze_d), ("data.limit", self.data.limit),
                            ("augment.auto_below", a.auto_below)]:
            if count < 0:
                raise ConfigError(f"{name} must be >= 0 (0: off), got {count}")
        if r.eval_every < 0:
            raise ConfigError(f"run.eval_every must be >= 0 (0: no evaluation during training), got {r.eval_every}")
        if not 0 < r.rollback_lr_factor < 1:
            raise ConfigError(f"run.rollback_lr_factor must be in (0, 1), got {r.rollback_lr_factor}")
        for name, rate in [("optim.lr_g", opt.lr_g), ("optim.lr_d", opt.lr_d)]:
            if not 0 < rate < float("inf"):
                raise ConfigError(f"{name} must be a positive finite learning rate, got {rate}")
        for name, fraction in [("optim.beta1", opt.beta1), ("optim.beta2", opt.beta2),
                               ("optim.ema_decay", opt.ema_decay)]:
            if not 0 <= fraction < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {fraction}")
        if o.r1_interval <= 0 or o.pl_interval <= 0:
            raise ConfigError(f"objective.r1_interval and objective.pl_interval must be positive, got "
                              f"{o.r1_interval}, {o.pl_interval}")
        if o.pl_weight and m.arch not in STYLE_ARCHS:
            raise ConfigError(f"objective.pl_weight regularises a style generator's w -> image map: model.arch "
                              f"{m.arch} has none; set objective.pl_weight 0 or use --arch stylegan2")
        if not 0 <= m.style_mixing <= 1:
            raise ConfigError(f"model.style_mixing is a probability in [0, 1], got {m.style_mixing}")
        if m.mapping_lr_multiplier <= 0:
            raise ConfigError(f"model.mapping_lr_multiplier must be positive, got {m.mapping_lr_multiplier}")
        for name, amount in [("objective.gp_weight", o.gp_weight), ("objective.r1_gamma", o.r1_gamma),
                             ("objective.pl_weight", o.pl_weight), ("model.negative_slope", m.negative_slope),
                             ("data.workers", float(self.data.workers))]:
            if not 0 <= amount < float("inf"):
                raise ConfigError(f"{name} must be >= 0, got {amount}")
        if o.name not in OBJECTIVE_NAMES:
            raise ConfigError(f"unknown objective {o.name!r}{_suggest(o.name, OBJECTIVE_NAMES)}; "
                              f"choose from {', '.join(OBJECTIVE_NAMES)}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a YAML/JSON config file as a dict (not yet checked against the dataclasses)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml  # the [train] extra; configs are a training concern

            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise ConfigError(f"config {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: "
                          f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping of sections (model:, optim:, ...)")
    return data


def parse_pairing(spec: str) -> tuple[str, int]:
    """"index" -> ("index", 0); "perm:K" -> ("perm", K); "all" -> ("all", 0)."""
    if spec in ("index", "all"):
        return spec, 0
    kind, _, k = spec.partition(":")
    if kind == "perm" and k.isdigit() and int(k) > 0:
        return "perm", int(k)
    raise ConfigError(f"pairing {spec!r} is not valid: use index, all, or perm:K with K >= 1")


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r} is not valid{_suggest(str(value), map(str, allowed))}; "
                          f"choose from {', '.join(map(str, allowed))}")


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _child(obj: Any, name: str, prefix: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    if name not in names:
        raise ConfigError(f"unknown config key {prefix + name!r}{_suggest(name, names)}")
    return getattr(obj, name)


def _merge(obj: Any, data: dict[str, Any], prefix: str) -> None:
    for key, value in data.items():
        current = _child(obj, key, prefix)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix + key!r} must be a mapping")
            _merge(current, value, prefix + key + ".")
        else:
            _set_field(obj, key, value, prefix)


def _set_field(obj: Any, name: str, value: Any, prefix: str) -> None:
    _child(obj, name, prefix)
    kind = get_type_hints(type(obj))[name]
    try:
        value = _convert(value, kind)
    except (TypeError, ValueError) as exc:
        what = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"config key {prefix + name!r}: {value!r} is not a valid {what}") from exc
    setattr(obj, name, value)


def _convert(value: Any, kind: Any) -> Any:
    """`value` as the field type `kind` (bool, int, float, str, list[str], or `X | None`); others pass through."""
    members = get_args(kind)
    if get_origin(kind) is dict:  # model.style: a mapping, kept as given (its owner checks the kwargs)
        if not isinstance(value, dict):
            raise ValueError(value)
        return value
    if get_origin(kind) is list:  # list[str]: a YAML list, or "a,b,c" from --set
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str | int) for v in items):
            raise ValueError(value)
        return [str(v).strip() for v in items if str(v).strip()]
    if type(None) in members:  # an optional field: None, or a value of its other type
        if value is None:
            return None
        (inner,) = [m for m in members if m is not type(None)]
        return _convert(value, inner)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):  # bool is an int too
            return bool(value)
        raise ValueError(value)
    if kind not in (int, float, str):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        # YAML reads `no`/`off` as False and an empty value as None: neither is a number or a name.
        raise ValueError(value)
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)  # int(32.7) would silently truncate
    converted = kind(value)
    if kind is float and converted != converted:
        raise ValueError("nan")
    return converted
