"""Generator -> one ONNX file: eval() copy, parametrisations removed, dynamic batch, checked graph.

The graph has the input `z` float32 [batch, latent_dim] (class-conditional generators a second one,
`label` int64 [batch]) and one output: `image` float32 [batch, C, H, W]
in [-1, 1], `image` uint8 [batch, C, H, W] in [0, 255] (post-processing baked in: the convention
torch-fidelity's ONNX generator input expects), or `points` float32 [batch, 2] for 2-D toy models.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import onnx
import torch
from torch import nn
from torch.nn.utils import parametrize

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, ArtefactMetadata
from tgan_deploy.errors import TganError

# The dynamo exporter (torch >= 2.5's default) translates natively from opset 18; lower opsets go through
# the ONNX version converter, and an opset above what onnx knows silently falls back to 18 (measured with
# torch 2.13), so the requested opset is checked before and after export.
MIN_OPSET = 18
DEFAULT_OPSET = 20
# protobuf cannot serialise a message above 2 GiB; past this many weight bytes the weights go to a .data file.
SINGLE_FILE_LIMIT = 1800 * 2**20
EXPORT_BATCH = 2  # export with batch >= 2 so no exporter specialises the batch axis to 1


class ExportError(TganError):
    """The exporter could not write or check the graph."""


def max_supported_opset() -> int:
    return int(onnx.defs.onnx_opset_version())


def check_opset(opset: int) -> None:
    top = max_supported_opset()
    if not MIN_OPSET <= opset <= top:
        raise ExportError(f"--opset {opset} cannot be written by the installed exporter (torch "
                          f"{torch.__version__}, onnx {onnx.__version__}): choose {MIN_OPSET}..{top}")


def to_uint8(image: torch.Tensor, pixel_rule: str = "tgan") -> torch.Tensor:
    """float image -> uint8 [0, 255] by the artefact's pixel rule (runtime/images.py states both in numpy).

    "tgan": scale, round half to even (torch and ONNX Round agree), clamp, cast.
    "nvlabs": x * 127.5 + 128, clamp, floor, cast: NVlabs' generate.py truncates in `.to(torch.uint8)`; the
    graph floors explicitly because ONNX's Cast from float to an integer type does not promise truncation.
    """
    if pixel_rule == "nvlabs":
        return (image * 127.5 + 128.0).clamp(0.0, 255.0).floor().to(torch.uint8)
    return ((image + 1.0) * 127.5).round().clamp(0.0, 255.0).to(torch.uint8)


class UInt8Output(nn.Module):
    """The generator followed by `to_uint8`, so the exported graph emits ready-to-save pixels."""

    def __init__(self, generator: nn.Module, pixel_rule: str = "tgan") -> None:
        super().__init__()
        self.generator = generator
        self.pixel_rule = pixel_rule

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        """`x`: the wrapped graph's first input (z, or a synthesis graph's ws); `label` when conditional."""
        return to_uint8(self.generator(x) if label is None else self.generator(x, label), self.pixel_rule)


def prepare_for_export(generator: nn.Module, output_dtype: str = "float32", pixel_rule: str = "tgan") -> nn.Module:
    """An eval() copy with every parametrisation (spectral norm) folded into plain weights."""
    model = copy.deepcopy(generator).eval()
    for module in model.modules():
        if parametrize.is_parametrized(module):
            parametrizations = cast(nn.ModuleDict, module.parametrizations)
            for name in list(parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if output_dtype == "uint8":
        model = UInt8Output(model, pixel_rule).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter prints progress and logs warnings about absent torchvision ops: keep the CLI clean."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def input_names(num_classes: int) -> list[str]:
    return [INPUT_NAME, LABEL_NAME] if num_classes > 0 else [INPUT_NAME]


def export_onnx(model: nn.Module, path: Path, latent_dim: int, output_name: str, opset: int = DEFAULT_OPSET,
                max_batch: int = 1 << 16, num_classes: int = 0) -> onnx.ModelProto:
    """Export `model` (from `prepare_for_export`) to `path` with a dynamic batch axis; check it; return it.

    `num_classes` > 0: the model is class-conditional and the graph gets the `label` input too."""
    example = {INPUT_NAME: torch.randn(EXPORT_BATCH, latent_dim)}
    if num_classes > 0:
        example[LABEL_NAME] = torch.arange(EXPORT_BATCH) % num_classes
    return export_graph(model, path, example, output_name, opset, max_batch)


def export_graph(model: nn.Module, path: Path, example: dict[str, torch.Tensor], output_name: str,
                 opset: int = DEFAULT_OPSET, max_batch: int = 1 << 16) -> onnx.ModelProto:
    """Export `model(*example.values())` to `path`: inputs named as `example`'s keys (each with a batch of
    EXPORT_BATCH, made dynamic), one output `output_name`; check the graph; return it."""
    check_opset(opset)
    weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    external = weight_bytes > SINGLE_FILE_LIMIT
    batch = torch.export.Dim("batch", min=1, max=max(max_batch, EXPORT_BATCH))
    names = list(example)
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(model, tuple(example.values()), str(path), input_names=names,
                              output_names=[output_name], dynamic_shapes=tuple({0: batch} for _ in names),
                              opset_version=opset, external_data=external, dynamo=True, verbose=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"torch.onnx.export failed ({first[:200]}): check torch/onnxscript versions "
                          "or try another --opset") from exc
    written = written_opset(onnx.load(str(path), load_external_data=False))
    if written != opset:
        raise ExportError(f"--opset {opset} cannot be written by the installed exporter (it wrote opset "
                          f"{written}): choose {MIN_OPSET}..{max_supported_opset()}")
    return check_graph(path, output_name, inputs=names)


def written_opset(model: onnx.ModelProto) -> int:
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def check_graph(path: Path, output_name: str, num_classes: int = 0, inputs: list[str] | None = None
                ) -> onnx.ModelProto:
    """onnx.checker + strict shape inference; inputs (`inputs`, default the generator's) and output are named,
    `label` is int64, the batch is symbolic."""
    try:
        onnx.checker.check_model(str(path), full_check=True)  # by path: works for models with external data
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except Exception as exc:
        raise ExportError(f"exported graph {path.name} fails the ONNX checker ({str(exc)[:200]})") from exc
    found = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    expected = input_names(num_classes) if inputs is None else inputs
    if found != expected or outputs != [output_name]:
        raise ExportError(f"exported graph has inputs {found} / outputs {outputs}, expected "
                          f"{expected} / [{output_name!r}]")
    for value in model.graph.input:
        if value.name == LABEL_NAME and value.type.tensor_type.elem_type != onnx.TensorProto.INT64:
            raise ExportError(f"exported graph's {LABEL_NAME!r} input is not int64")
    for value in (*model.graph.input, model.graph.output[0]):
        if value.type.tensor_type.shape.dim[0].HasField("dim_value"):
            raise ExportError(f"exported graph fixed the batch axis of {value.name!r}: export needs a dynamic batch")
    return model


def stamp_metadata(path: Path, meta: ArtefactMetadata) -> None:
    """Write `meta` into the file's metadata_props (one entry per field, JSON values), replacing old entries."""
    model = onnx.load(str(path), load_external_data=False)
    del model.metadata_props[:]
    for key, value in meta.to_onnx_props().items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "tgan-deploy"
    model.producer_version = meta.package_version
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> ArtefactMetadata:
    model = onnx.load(str(path), load_external_data=False)
    return ArtefactMetadata.from_onnx_props({p.key: p.value for p in model.metadata_props})
