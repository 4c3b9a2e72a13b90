"""Parity report: PyTorch eager vs every produced artefact on the same seeded latents.

For each artefact and batch size the latents are `runtime.latents.latents(range(batch), latent_dim)`
(class-conditional models: with labels `seed % num_classes`, so every class is checked); the reference is
the same generator in eager PyTorch (float32; TF32 off on a GPU). Tolerances:

    fp32 float output   max abs error <= 1e-4
    fp32 uint8 output   max abs error <= 1: both sides round (x + 1) * 127.5 half-to-even, so a value that
                        lands within float rounding of a .5 boundary may round differently (off by one)
    fp16 (any output)   PSNR >= 40 dB and no NaN/Inf (PSNR's peak: 2 for [-1, 1], 255 for uint8,
                        the reference's value range for 2-D points)

TensorRT-RTX engines built on a machine without an RTX GPU cannot run: they are listed as "built, not run".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tgan_deploy.export.fp16 import feeds
from tgan_deploy.export.onnx import to_uint8
from tgan_deploy.io import write_json_atomic, write_text_atomic
from tgan_deploy.runtime.labels import seed_labels
from tgan_deploy.runtime.latents import latents

DEFAULT_BATCHES = (1, 7, 64)
FP32_MAX_ABS = 1e-4
UINT8_MAX_ABS = 1.0
FP16_MIN_PSNR = 40.0
PARITY_JSON, PARITY_MD = "parity.json", "parity.md"

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]  # graph inputs by name -> output
Feeds = Callable[[int], dict[str, np.ndarray]]  # batch -> graph inputs by name (in the graph's input order)


@dataclasses.dataclass
class Artefact:
    role: str  # model.json role, e.g. "onnx", "onnx_fp16", "tensorrt_rtx"
    file: str
    precision: str  # "fp32" or "fp16"
    backend: str  # "onnxruntime-cpu", "tensorrt", "tensorrt-rtx"
    runner: Runner | None = None  # None: built but cannot run on this machine
    device: str = "cpu"  # where the eager reference runs for this artefact
    note: str = ""


@dataclasses.dataclass
class ParityRow:
    file: str
    backend: str
    precision: str
    batch: int | None  # None: the artefact was built but not run
    max_abs: float | None
    mean_abs: float | None
    psnr_db: float | None
    nonfinite: int | None
    tolerance: str
    status: str  # "pass", "fail", "built, not run"


@dataclasses.dataclass
class ParityReport:
    output_dtype: str
    kind: str
    batches: list[int]
    rows: list[ParityRow]
    notes: list[str]
    num_classes: int = 0

    @property
    def passed(self) -> bool:
        return all(r.status != "fail" for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "output_dtype": self.output_dtype, "kind": self.kind,
                "batches": self.batches, "latents": "tgan_deploy.runtime.latents.latents(range(batch), latent_dim)",
                "labels": "seed % num_classes" if self.num_classes else None,
                "tolerances": {"fp32_max_abs": FP32_MAX_ABS, "uint8_max_abs": UINT8_MAX_ABS,
                               "fp16_min_psnr_db": FP16_MIN_PSNR},
                "rows": [dataclasses.asdict(r) for r in self.rows], "notes": self.notes}

    def table(self) -> str:
        head = "| file | backend | precision | batch | max abs | mean abs | PSNR dB | NaN/Inf | tolerance | result |"
        lines = [head, "|" + "---|" * 10]
        for r in self.rows:
            lines.append(f"| {r.file} | {r.backend} | {r.precision} | {_fmt(r.batch, 'd')} | {_fmt(r.max_abs)} | "
                         f"{_fmt(r.mean_abs)} | {_fmt(r.psnr_db, '.1f')} | {_fmt(r.nonfinite, 'd')} | "
                         f"{r.tolerance} | {r.status} |")
        return "\n".join(lines)

    def markdown(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        notes = "".join(f"- {n}\n" for n in self.notes)
        labels = f", labels `seed % {self.num_classes}`" if self.num_classes else ""
        return (f"# Export parity: {verdict}\n\nPyTorch eager vs each artefact on the same seeded latents "
                f"(`latents(range(batch), latent_dim)`{labels}), output {self.kind} {self.output_dtype}.\n\n"
                f"{self.table()}\n\n{notes}")

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / PARITY_JSON, self.to_dict())
        write_text_atomic(folder / PARITY_MD, self.markdown())


def _fmt(value: float | int | None, spec: str = ".2e") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


def batch_sizes(min_batch: int, max_batch: int, requested: Sequence[int] = DEFAULT_BATCHES) -> list[int]:
    """The requested sizes that fit the batch range; the range's ends if none does."""
    inside = sorted({b for b in requested if min_batch <= b <= max_batch})
    return inside or sorted({min_batch, max_batch})


def onnxruntime_runner(path: Path, output_name: str, *, fp16_faithful: bool = False) -> Runner:
    """A CPU session. `fp16_faithful` for fp16 graphs: ONNX Runtime's CPU provider computes fp16 nodes through
    inserted casts and drops fp16->fp32->fp16 Cast pairs, which hides an fp16 overflow a GPU would hit.
    Declaring every intermediate tensor a graph output (with graph optimisation off) keeps each one
    materialised, i.e. rounded to fp16 as on a GPU (measured: a model whose activations exceed 65504 gives
    NaN this way and passes silently without it)."""
    import onnx
    import onnxruntime as ort

    from tgan_deploy.export.fp16 import with_all_outputs

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    model: str | bytes = str(path)
    if fp16_faithful:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        model = with_all_outputs(onnx.load(str(path)))[0].SerializeToString()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run([output_name], inputs)[0])

    return run


def reference(model: nn.Module, inputs: dict[str, np.ndarray], output_dtype: str, device: str,
              pixel_rule: str = "tgan") -> np.ndarray:
    """Eager PyTorch output for the graph inputs (positional, in order), post-processed like the export (uint8 by
    `pixel_rule`) when asked."""
    with torch.no_grad(), _no_tf32():
        model = model.to(device)
        out = model(*(torch.from_numpy(a).to(device) for a in inputs.values()))
        if output_dtype == "uint8":
            out = to_uint8(out, pixel_rule)
    return out.cpu().numpy()


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """Disable TF32 in matmul and cuDNN convolutions (strict fp32 reference on Ampere+ GPUs)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def compare(ref: np.ndarray, out: np.ndarray, *, precision: str, output_dtype: str, kind: str) -> dict[str, Any]:
    """Error metrics of `out` against `ref` and the verdict against the stated tolerance."""
    if out.shape != ref.shape:
        return {"max_abs": math.inf, "mean_abs": math.inf, "psnr_db": 0.0, "nonfinite": 0,
                "tolerance": f"shape {list(ref.shape)}", "status": "fail"}
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    nonfinite = int((~np.isfinite(out64)).sum())
    diff = np.abs(np.where(np.isfinite(out64), out64, np.inf) - ref64)
    max_abs, mean_abs = float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0
    mse = float(np.mean((out64 - ref64) ** 2)) if nonfinite == 0 else math.inf
    if output_dtype == "uint8":
        peak = 255.0
    elif kind in ("points", "ws"):  # no fixed range: the reference's own
        peak = float(np.ptp(ref64)) or 1.0
    else:
        peak = 2.0
    psnr = math.inf if mse == 0.0 else (0.0 if math.isinf(mse) else 10.0 * math.log10(peak**2 / mse))
    if precision == "fp16":
        tolerance = f"PSNR >= {FP16_MIN_PSNR:g} dB, no NaN/Inf"
        ok = nonfinite == 0 and psnr >= FP16_MIN_PSNR
    elif output_dtype == "uint8":
        tolerance = f"max abs <= {UINT8_MAX_ABS:g} (rounding)"
        ok = nonfinite == 0 and max_abs <= UINT8_MAX_ABS
    else:
        tolerance = f"max abs <= {FP32_MAX_ABS:g}"
        ok = nonfinite == 0 and max_abs <= FP32_MAX_ABS
    return {"max_abs": max_abs, "mean_abs": mean_abs, "psnr_db": psnr, "nonfinite": nonfinite,
            "tolerance": tolerance, "status": "pass" if ok else "fail"}


def latent_feeds(latent_dim: int, num_classes: int = 0) -> Feeds:
    """The generator's parity inputs: `latents(range(batch))`, labels `seed % num_classes` when conditional."""
    return lambda batch: feeds(latents(range(batch), latent_dim), seed_labels(range(batch), num_classes))


def run_parity(model: nn.Module, artefacts: Sequence[Artefact], *, latent_dim: int, batches: Sequence[int],
               output_dtype: str, kind: str, num_classes: int = 0, inputs: Feeds | None = None,
               pixel_rule: str = "tgan") -> ParityReport:
    """`model`: the float graph as exported (eval copy, uint8 post-processing NOT included); `inputs`: its parity
    inputs per batch (default: the generator's latents and labels)."""
    inputs = inputs or latent_feeds(latent_dim, num_classes)

    rows: list[ParityRow] = []
    notes: list[str] = []
    references: dict[tuple[int, str], np.ndarray] = {}  # (batch, device) -> eager output, shared by artefacts
    for art in artefacts:
        if art.runner is None:
            rows.append(ParityRow(art.file, art.backend, art.precision, None, None, None, None, None, "-",
                                  "built, not run"))
            if art.note:
                notes.append(f"{art.file}: {art.note}")
            continue
        for batch in batches:
            given = inputs(batch)
            if (batch, art.device) not in references:
                references[batch, art.device] = reference(model, given, output_dtype, art.device, pixel_rule)
            ref = references[batch, art.device]
            metrics = compare(ref, art.runner(given), precision=art.precision, output_dtype=output_dtype,
                              kind=kind)
            rows.append(ParityRow(art.file, art.backend, art.precision, batch, **metrics))
        if art.note:
            notes.append(f"{art.file}: {art.note}")
    if output_dtype == "uint8":
        rule = ("x * 127.5 + 128, clamp, truncate (NVlabs)" if pixel_rule == "nvlabs"
                else "scale, round half to even, clamp, cast")
        notes.append(f"uint8 output: the reference applies the same post-processing in torch ({rule}); an "
                     "off-by-one at a rounding boundary is allowed.")
    return ParityReport(output_dtype, kind, list(batches), rows, notes, num_classes)


def combine(reports: Sequence[ParityReport]) -> ParityReport:
    """One report of several graphs' reports (a style model's generator, mapping and synthesis); the first
    report's output dtype and kind head it."""
    first = reports[0]
    notes = list(dict.fromkeys(n for r in reports for n in r.notes))
    return ParityReport(first.output_dtype, first.kind, first.batches, [row for r in reports for row in r.rows],
                        notes, first.num_classes)
