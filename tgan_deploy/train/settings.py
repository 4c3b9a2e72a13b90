"""A run's settings and where each came from: defaults <- data preset <- arch preset (--arch stylegan2) <- --config
file <- options <- --set.

`resolve` returns the config plus, per key, its source: "default", "preset builtin:ring8", "file PATH" or
"command line". RUN_DIR/config.yaml records the sources as one YAML comment per key, so it stays a plain
config (`tgan-train --config RUN_DIR/config.yaml` reruns the run; YAML ignores comments) that says on every
line why the value is what it is. Reading a config that carries such comments (a run's own config.yaml, on
--resume or --config) keeps the recorded sources instead of calling every key "file".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tgan_deploy.config import DataConfig, ModelConfig, ObjectiveConfig, RunConfig, TrainConfig, read_config_file
from tgan_deploy.io import write_text_atomic
from tgan_deploy.train.presets import Preset, describe, preset_for, stylegan2_preset

DEFAULT = "default"
COMMAND_LINE = "command line"
COMMENT = "  # "  # between a value and its source in config.yaml
HEADER = ("# Written by tgan-train: the resolved config of this run. After each value, where it came from:\n"
          "# default (tgan_deploy/config.py), preset NAME (docs/training.md, Presets), file PATH (--config) or\n"
          "# command line (--data, --steps, --set, ...). `tgan-train --config THIS_FILE` reruns the run.\n")


@dataclasses.dataclass
class Provenance:
    sources: dict[str, str]  # every dotted key -> where its value came from
    preset_line: str = ""  # the one line printed at start ("" when no preset applies)


def resolve(config_file: str | None, command_line: dict[str, Any]) -> tuple[TrainConfig, Provenance]:
    """The run's config from the layers, lowest first: defaults, the data's preset, the config file, the
    command line (named options, then --set). Data source and objective are read from the upper layers
    first, since they choose the preset."""
    file_data = read_config_file(config_file) if config_file else {}
    file_keys = {f"{section}.{name}" for section, fields in file_data.items() if isinstance(fields, dict)
                 for name in fields}
    recorded = read_sources(Path(config_file)) if config_file else {}

    def chosen(key: str, default: Any) -> Any:
        if key in command_line:
            return command_line[key]
        section, _, name = key.partition(".")
        return file_data.get(section, {}).get(name, default) if key in file_keys else default

    source = str(chosen("data.source", DataConfig.source))
    presets = [preset_for(source, str(chosen("objective.name", ObjectiveConfig.name)))]
    below = dict(presets[0].values) if presets[0] is not None else {}  # what the arch preset sits on
    if chosen("model.arch", below.get("model.arch", ModelConfig.arch)) == "stylegan2":
        batch = chosen("optim.batch_size", None)
        presets.append(stylegan2_preset(int(chosen("model.resolution", below.get("model.resolution",
                                                                                  ModelConfig.resolution))),
                                        None if batch is None else int(batch),
                                        fine_tuning=bool(chosen("run.init_from", RunConfig.init_from))))
    cfg = TrainConfig()
    for preset in presets:
        if preset is not None:
            cfg.apply_overrides(preset.values)
    cfg.merge(file_data).apply_overrides(command_line)

    sources = dict.fromkeys(flat_keys(cfg), DEFAULT)
    for preset in presets:
        if preset is not None:
            sources.update(dict.fromkeys(preset.values, f"preset {preset.name}"))
    sources.update({k: recorded.get(k, f"file {config_file}") for k in file_keys})
    sources.update(dict.fromkeys(command_line, COMMAND_LINE))
    return cfg, Provenance(sources, "\n".join(filter(None, (preset_summary(p, sources) for p in presets))))


def preset_summary(preset: Preset | None, sources: dict[str, str]) -> str:
    if preset is None:
        return ""
    overridden = [k for k in preset.values if sources[k] != f"preset {preset.name}"]
    return describe(preset, overridden)


def flat_keys(cfg: TrainConfig) -> list[str]:
    return [f"{section}.{name}" for section, fields in cfg.to_dict().items() for name in fields]


# -- RUN_DIR/config.yaml with a source comment per key ---------------------------------------------

def write_config(path: Path, cfg: TrainConfig, provenance: Provenance | None) -> None:
    """config.yaml: the config as YAML, each value followed by `  # SOURCE` when the sources are known."""
    if provenance is None:
        cfg.dump(path)
        return
    lines = [HEADER.rstrip("\n")]
    for section, fields in cfg.to_dict().items():
        lines.append(f"{section}:")
        for name, value in fields.items():
            source = provenance.sources.get(f"{section}.{name}", DEFAULT)
            lines.append(f"  {name}: {_scalar(value)}{COMMENT}{source}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_sources(path: Path) -> dict[str, str]:
    """The `# SOURCE` comments of a config.yaml that write_config wrote ({} for any other file)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    if not text.startswith(HEADER.splitlines()[0]):
        return {}
    sources, section = {}, ""
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            section = line.rstrip(":")
        elif line.startswith("  ") and COMMENT in line:
            name = line.strip().split(":", 1)[0]
            sources[f"{section}.{name}"] = line.rpartition(COMMENT)[2]
    return sources


def _scalar(value: Any) -> str:
    """A config value as one line of YAML (JSON's quoting for strings YAML would spread over lines)."""
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).removesuffix("\n...\n")
    text = text.rstrip("\n")
    return json.dumps(value) if "\n" in text else text
