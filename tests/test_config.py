"""TrainConfig: the reference's defaults, file round trips, overrides, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgan_deploy.config import TrainConfig, parse_pairing
from tgan_deploy.errors import ConfigError


def test_defaults_are_the_reference_hyper_parameters() -> None:
    cfg = TrainConfig()
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.beta1, cfg.optim.beta2) == (2e-4, 2e-4, 0.5, 0.999)
    assert cfg.optim.batch_size == 64
    assert (cfg.optim.critic_steps, cfg.optim.generator_steps) == (1, 2)  # 1 critic step : 2 generator steps
    assert cfg.model.negative_slope == 0.3 and cfg.model.latent_dim == 100
    assert (cfg.model.resolution, cfg.model.base_channels, cfg.model.head_hidden) == (64, 64, 512)
    assert cfg.model.spectral_norm == "faithful" and cfg.model.layer_defaults == "keras"
    assert (cfg.objective.name, cfg.objective.pairing) == ("t-sgan", "index")
    cfg.validate()


def changed() -> TrainConfig:
    cfg = TrainConfig()
    cfg.model.resolution, cfg.model.channels, cfg.model.negative_slope = 128, 1, 0.1
    cfg.objective.name, cfg.objective.pairing = "t-wgan", "perm:3"
    cfg.optim.lr_d, cfg.optim.batch_size = 1e-4, 16
    cfg.run.deterministic, cfg.run.out = True, "runs/x y"
    return cfg


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = changed()
    cfg.dump(tmp_path / "cfg.yaml")
    assert TrainConfig.from_file(tmp_path / "cfg.yaml") == cfg


def test_json_round_trip(tmp_path: Path) -> None:
    cfg = changed()
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_file(tmp_path / "cfg.json") == cfg


def test_partial_file_keeps_defaults(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim:\n  batch_size: 32\nmodel: {channels: 1}\n")
    cfg = TrainConfig.from_file(tmp_path / "c.yaml")
    assert cfg.optim.batch_size == 32 and cfg.model.channels == 1 and cfg.optim.lr_g == 2e-4
    (tmp_path / "empty.yaml").write_text("")
    assert TrainConfig.from_file(tmp_path / "empty.yaml") == TrainConfig()


def test_apply_overrides_converts_types() -> None:
    cfg = TrainConfig().apply_overrides({
        "optim.batch_size": "32", "optim.lr_g": "1e-4", "run.deterministic": "true", "model.negative_slope": 0,
        "objective.pairing": "all", "run.seed": None,  # None: option not given, keep the default
    })
    assert cfg.optim.batch_size == 32 and isinstance(cfg.optim.batch_size, int)
    assert cfg.optim.lr_g == 1e-4 and cfg.run.deterministic is True
    assert cfg.model.negative_slope == 0.0 and isinstance(cfg.model.negative_slope, float)
    assert cfg.objective.pairing == "all" and cfg.run.seed == 0
    assert TrainConfig().apply_overrides({"run.deterministic": "no"}).run.deterministic is False
    assert TrainConfig().apply_overrides({"optim.batch_size": 8.0}).optim.batch_size == 8


def one_line_error(call, match: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("data,match", [
    ({"optim": {"batchsize": 32}}, r"unknown config key 'optim.batchsize' \(did you mean 'batch_size'\?\)"),
    ({"optimm": {}}, r"unknown config key 'optimm' \(did you mean 'optim'\?\)"),
    ({"model": {"resolution": 48}}, "model.resolution 48 .* use one of 32, 64, 128, 256"),
    ({"objective": {"pairing": "perm:0"}}, "pairing 'perm:0' is not valid"),
    ({"objective": {"name": "tsgan"}}, r"unknown objective 'tsgan' \(did you mean 't-sgan'\?\)"),
    ({"model": {"spectral_norm": "faithfull"}}, r"did you mean 'faithful'\?"),
    ({"optim": 5}, "config key 'optim' must be a mapping"),
    ({"optim": {"batch_size": 32.7}}, "'optim.batch_size': 32.7 is not a valid int"),
    ({"optim": {"batch_size": "many"}}, "is not a valid int"),
    ({"optim": {"lr_g": None}}, "'optim.lr_g': None is not a valid float"),  # YAML `lr_g:` with no value
    ({"optim": {"lr_g": [1]}}, "is not a valid float"),
    ({"optim": {"lr_g": "nan"}}, "is not a valid float"),
    ({"model": {"spectral_norm": False}}, "is not a valid str"),  # YAML `spectral_norm: off`
    ({"run": {"deterministic": "maybe"}}, "is not a valid bool"),
    ({"optim": {"batch_size": True}}, "is not a valid int"),
    ({"optim": {"batch_size": 0}}, "optim.batch_size must be positive"),
    ({"optim": {"lr_d": 0}}, "optim.lr_d must be a positive finite learning rate"),
    ({"optim": {"beta1": 1.0}}, r"optim.beta1 must be in \[0, 1\)"),
    ({"optim": {"ema_decay": -0.1}}, r"optim.ema_decay must be in \[0, 1\)"),
    ({"objective": {"gp_weight": -1}}, "objective.gp_weight must be >= 0"),
    ({"objective": {"r1_gamma": -1}}, "objective.r1_gamma must be >= 0"),
    ({"objective": {"r1_interval": 0}}, "objective.r1_interval and objective.pl_interval must be positive"),
    ({"objective": {"pl_weight": 2}}, "model.arch dcgan has none"),
    ({"model": {"arch": "stylegan2", "style_mixing": 1.5}}, r"model.style_mixing is a probability in \[0, 1\]"),
    ({"model": {"arch": "stylegan2", "channel_max": 0}}, "model.channel_max must be positive"),
    ({"model": {"channels": 2}}, "model.channels = 2 is not valid"),
    ({"model": {"arch": "stylegan3"}}, "model.arch stylegan3 needs model.style.generator"),  # stylegan2 trains here
    ({"model": {"arch": "stylegan2", "resolution": 48}}, "model.resolution 48 is not one a stylegan2 can make"),
    ({"model": {"style": "big"}}, "'model.style': 'big' is not a valid dict"),
])
def test_bad_values_fail_with_one_line(data: dict, match: str) -> None:
    one_line_error(lambda: TrainConfig.from_dict(data), match)


def test_bad_overrides() -> None:
    one_line_error(lambda: TrainConfig().apply_overrides({"optim.batchsize": 1}), r"did you mean 'batch_size'")
    one_line_error(lambda: TrainConfig().apply_overrides({"optim": 1}), "must be section.field")
    one_line_error(lambda: TrainConfig().apply_overrides({"objective.name": "tsgan"}), "did you mean 't-sgan'")


def test_bad_files(tmp_path: Path) -> None:
    one_line_error(lambda: TrainConfig.from_file(tmp_path / "missing.yaml"), "cannot read config")
    (tmp_path / "bad.yaml").write_text("optim: [unclosed\n")
    one_line_error(lambda: TrainConfig.from_file(tmp_path / "bad.yaml"), "is not valid yaml")
    (tmp_path / "bad.json").write_text("{")
    one_line_error(lambda: TrainConfig.from_file(tmp_path / "bad.json"), "is not valid json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    one_line_error(lambda: TrainConfig.from_file(tmp_path / "list.yaml"), "must hold a mapping")


def test_parse_pairing() -> None:
    assert parse_pairing("index") == ("index", 0)
    assert parse_pairing("all") == ("all", 0)
    assert parse_pairing("perm:4") == ("perm", 4)
    for bad in ("perm:", "perm:-1", "perm:x", "perm", "ALL", ""):
        with pytest.raises(ConfigError):
            parse_pairing(bad)


def test_fields_other_parts_add_keep_round_tripping() -> None:
    """Parts may add fields (an optional int, a list); from_dict must convert or pass them, not reject them."""
    import dataclasses

    from tgan_deploy.config import _set_field

    @dataclasses.dataclass
    class Section:
        limit: int | None = None
        names: list[str] = dataclasses.field(default_factory=list)

    section = Section()
    _set_field(section, "limit", None, "x.")
    assert section.limit is None
    _set_field(section, "limit", "12", "x.")
    assert section.limit == 12
    _set_field(section, "names", ["a", "b"], "x.")
    assert section.names == ["a", "b"]
    with pytest.raises(ConfigError, match=r"'x.limit': 1.5 is not a valid int \| None"):
        _set_field(section, "limit", 1.5, "x.")
