"""Triton Inference Server model folders for the exported graphs and engines.

Layout (Triton's model repository): `<repo>/<model>/config.pbtxt` and `<repo>/<model>/1/model.onnx`
(platform onnxruntime_onnx) or `1/model.plan` (tensorrt_plan). Dims exclude the batch axis, which
`max_batch_size` declares; `dynamic_batching {}` lets the server merge requests up to it.
A class-conditional model's `label` input is int64 [batch]: per request item one scalar, which Triton
declares as `dims: [ 1 ]` reshaped to `[ ]` (its documented form for a tensor that is only the batch axis).
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
from pathlib import Path
from typing import Any

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, ArtefactMetadata
from tgan_deploy.errors import TganError

MODEL_PREFIX = "tgan_generator"
PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".plan": ("tensorrt_plan", "model.plan")}
TRITON_DTYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}


def output_dims(meta: ArtefactMetadata) -> list[int]:
    if meta.kind == "points":
        return [2]
    assert meta.channels is not None and meta.resolution is not None
    return [meta.channels, meta.resolution, meta.resolution]


def _tensor(name: str, data_type: str, dims: str, extra: str = "") -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dims} ]\n{extra}  }}'


def config_text(name: str, platform: str, meta: ArtefactMetadata, max_batch: int) -> str:
    out_dims = ", ".join(str(d) for d in output_dims(meta))
    inputs = [_tensor(INPUT_NAME, "TYPE_FP32", str(meta.latent_dim))]
    if meta.conditional:
        inputs.append(_tensor(LABEL_NAME, "TYPE_INT64", "1", "    reshape: { shape: [ ] }\n"))
    output = _tensor(meta.output_name, TRITON_DTYPES[meta.output_dtype], out_dims)
    input_list = ",\n".join(inputs)
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch}\n'
            f'input [\n{input_list}\n]\noutput [\n{output}\n]\n'
            "dynamic_batching { }\n")


@functools.cache
def _model_config_schema() -> Any | None:
    """Triton's ModelConfig message from tritonclient's model_config_pb2, or None without tritonclient.

    Loaded from its file: importing `tritonclient.grpc` needs the grpc extra, the schema module does not.
    """
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", file)
    if not file.is_file() or module_spec is None or module_spec.loader is None:
        return None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelConfig


def parse_config(text: str) -> Any:
    """Parse with Triton's own schema; the parsed ModelConfig (None when tritonclient is not installed)."""
    schema = _model_config_schema()
    if schema is None:
        return None
    from google.protobuf import text_format

    return text_format.Parse(text, schema())


def model_names(artefacts: dict[str, Path]) -> dict[str, str]:
    """role -> Triton model name, e.g. "onnx" -> tgan_generator_onnx."""
    return {role: f"{MODEL_PREFIX}_{role}" for role in artefacts}


def check_free(repo: Path, names: list[str], force: bool) -> None:
    taken = [n for n in names if (repo / n).exists()]
    if taken and not force:
        raise TganError(f"Triton repository {repo} already has model folder(s) {', '.join(taken)}: "
                        "pass --force to replace them or choose another --triton-repo")


def stage_models(staging: Path, artefacts: dict[str, Path], meta: ArtefactMetadata, max_batch: int) -> list[str]:
    """Write one model folder per artefact (role -> file) under `staging`; return the model names."""
    names = model_names(artefacts)
    for role, file in artefacts.items():
        platform, target = PLATFORMS[file.suffix]
        folder = staging / names[role]
        (folder / "1").mkdir(parents=True)
        text = config_text(names[role], platform, meta, max_batch)
        parse_config(text)
        (folder / "config.pbtxt").write_text(text)
        shutil.copyfile(file, folder / "1" / target)
    return list(names.values())
