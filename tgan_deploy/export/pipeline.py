"""The export run: checkpoint -> ONNX (fp32, fp16) -> engines -> parity -> metadata -> Triton, all-or-nothing.

Everything is built in a hidden staging folder beside --out and renamed into place at the end, so a
failed or interrupted export leaves no half-written files. Exit codes (see docs/export.md):

    0  every requested artefact written, parity passed (or --no-check)
    1  parity failed (artefacts and parity.md written, for inspection)
    2  bad input (checkpoint, options, existing --out): nothing written
    3  a requested TensorRT / TensorRT-RTX engine could not be built here (package or GPU missing);
       the ONNX artefacts, model.json and the parity report are complete in --out
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import nn

from tgan_deploy.artefact import MODEL_JSON, ArtefactMetadata
from tgan_deploy.checkpoint import load_generator, save_checkpoint
from tgan_deploy.checkpoint_metadata import metadata_from_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import TganError
from tgan_deploy.export import fp16 as fp16_mod
from tgan_deploy.export import graphs as graphs_mod
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import parity as parity_mod
from tgan_deploy.export import sources
from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export import triton as triton_mod
from tgan_deploy.io import write_json_atomic
from tgan_deploy.run_layout import BEST_FILE, CHECKPOINT_DIR, CHOICES

FP16_REPORT = "fp16.json"
MAX_OPT_LEVEL = 5


class ParityFailed(TganError):
    exit_code = 1


@dataclasses.dataclass
class ExportOptions:
    source: Path
    out: Path
    fp16: bool = False
    trt: bool = False
    trt_rtx: bool = False
    min_batch: int = 1
    opt_batch: int | None = None  # None: 16 clamped into [min_batch, max_batch]
    max_batch: int = 64
    opset: int = onnx_mod.DEFAULT_OPSET
    output: str = "float"  # "float" ([-1, 1] float32) or "uint8" ([0, 255])
    weights: str = "ema"
    triton_repo: Path | None = None
    check: bool = True
    force: bool = False
    opt_level: int = trt_mod.DEFAULT_OPT_LEVEL
    parity_batches: tuple[int, ...] = parity_mod.DEFAULT_BATCHES  # capped by the batch range
    checkpoint: str = "auto"  # of a run directory: "auto" (best.pt, else newest), "best", "last", or a file
    psi: float | None = None  # style models: truncation baked into generator.onnx (None: 1, the original G)

    @property
    def batch_profile(self) -> tuple[int, int, int]:
        opt = self.opt_batch if self.opt_batch is not None else min(max(16, self.min_batch), self.max_batch)
        return self.min_batch, opt, self.max_batch

    @property
    def output_dtype(self) -> str:
        return "uint8" if self.output == "uint8" else "float32"


def validate(opts: ExportOptions) -> None:
    """Reject bad options before any work: one line naming the problem and the fix."""
    lo, opt, hi = opts.batch_profile
    if lo < 1:
        raise TganError(f"--min-batch must be >= 1, got {lo}")
    if hi < lo:
        raise TganError(f"--max-batch {hi} is below --min-batch {lo}: pass --max-batch >= --min-batch")
    if not lo <= opt <= hi:
        raise TganError(f"--opt-batch {opt} is outside [--min-batch {lo}, --max-batch {hi}]: pick a batch inside")
    if not opts.parity_batches or min(opts.parity_batches) < 1:
        raise TganError(f"--parity-batches must be positive batch sizes, got {list(opts.parity_batches)}")
    if opts.psi is not None and not math.isfinite(opts.psi):
        raise TganError(f"--psi must be a finite number (StyleGAN truncation, 1 = none), got {opts.psi}")
    if not 0 <= opts.opt_level <= MAX_OPT_LEVEL:
        raise TganError(f"--opt-level must be 0..{MAX_OPT_LEVEL} (TensorRT builder optimisation level), "
                        f"got {opts.opt_level}")
    onnx_mod.check_opset(opts.opset)
    if opts.out.exists() and not opts.force:
        raise TganError(f"output directory {opts.out} already exists: pass --force to replace it "
                        "or choose another --out")
    if opts.out.exists() and not opts.out.is_dir():
        raise TganError(f"--out {opts.out} is a file, not a directory: choose another --out")


@contextlib.contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A hidden temporary folder beside `target` (same file system, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after a successful rename; cleanup otherwise


def replace_dir(staging: Path, target: Path) -> None:
    """Move `staging` to `target`, replacing an existing `target` (the old one is removed only afterwards)."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        target.rename(old)
    _share_like_umask(staging)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _share_like_umask(folder: Path) -> None:
    """Temp folders and atomic files are created private (0700/0600); give the result the usual permissions
    (what the umask allows) so a server running as another user (Triton) can read it."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def run_export(opts: ExportOptions, say: Callable[[str], None]) -> tuple[ArtefactMetadata, parity_mod.ParityReport]:
    """Do the export; raise ParityFailed / EngineUnavailable AFTER --out is complete, TganError before."""
    validate(opts)
    source = chosen_checkpoint(opts)
    foreign = sources.foreign_format(source)
    converted = sources.convert_foreign(source) if foreign else None  # refusals happen here: nothing written
    if opts.triton_repo is not None:
        planned = ["onnx", *(["onnx_fp16"] if opts.fp16 else []), *(["tensorrt"] if opts.trt else [])]
        triton_mod.check_free(opts.triton_repo, list(triton_mod.model_names(dict.fromkeys(planned, Path()))),
                              opts.force)
    unavailable: list[str] = []
    with staging_dir(opts.out) as stage:
        if converted is not None:
            save_checkpoint(stage / sources.CONVERTED_CHECKPOINT, converted)
            source = stage / sources.CONVERTED_CHECKPOINT
        generator, cfg, state = load_generator(source, opts.weights, which=_which(opts.checkpoint))
        meta, graphs = _plan(opts, generator, cfg, state)
        if converted is not None:
            meta.files["checkpoint"] = sources.CONVERTED_CHECKPOINT
        _announce(opts, meta, cfg, state, say)
        artefacts: dict[str, list[parity_mod.Artefact]] = {}
        fp16_reports: dict[str, dict[str, object]] = {}
        for graph in graphs:
            artefacts[graph.name] = _export_graph(opts, graph, stage, meta, fp16_reports, unavailable, say)
        if fp16_reports:
            report_json = fp16_reports["generator"] if len(graphs) == 1 else fp16_reports
            write_json_atomic(stage / FP16_REPORT, report_json)
            meta.files["fp16_report"] = FP16_REPORT
        batches = parity_mod.batch_sizes(opts.min_batch, opts.max_batch, opts.parity_batches)
        count = sum(len(a) for a in artefacts.values())
        say(f"  parity: PyTorch eager vs {count} artefact(s) at batch {', '.join(map(str, batches))}")
        report = parity_mod.combine([
            parity_mod.run_parity(g.reference, artefacts[g.name], latent_dim=meta.latent_dim, batches=batches,
                                  output_dtype=g.output_dtype, kind=g.kind, num_classes=meta.num_classes,
                                  inputs=g.inputs, pixel_rule=meta.pixel_rule)
            for g in graphs])
        if len(graphs) > 1:
            report.notes.append("synthesis: its ws are the eager mapping network's of the same latents (labels)")
        report.write(stage)
        meta.files.update(parity=parity_mod.PARITY_JSON, parity_table=parity_mod.PARITY_MD)
        for file in {name for name in meta.files.values() if name.endswith(".onnx")}:
            onnx_mod.stamp_metadata(stage / file, meta)
        write_json_atomic(stage / MODEL_JSON, meta.to_dict())
        if opts.triton_repo is not None:
            triton_models: dict[str, Path] = {role: stage / meta.files[role]
                                              for role in ("onnx", "onnx_fp16", "tensorrt") if role in meta.files}
            _write_triton(opts.triton_repo, triton_models, meta, opts.max_batch)
        replace_dir(stage, opts.out)
    if not report.passed and opts.check:
        raise ParityFailed(f"parity check failed (see {opts.out / parity_mod.PARITY_MD}): the export is written "
                           "for inspection; pass --no-check to accept it")
    if unavailable:
        raise trt_mod.EngineUnavailable(f"{'; '.join(unavailable)} -- the ONNX artefacts and parity report are "
                                        f"complete in {opts.out}")
    return meta, report


def _plan(opts: ExportOptions, generator: nn.Module, cfg: TrainConfig, state: dict[str, Any]
          ) -> tuple[ArtefactMetadata, list[graphs_mod.Graph]]:
    """The metadata and the graphs to write for this generator (one for our reference models, three for style
    models); one-line errors for options the model cannot take."""
    points = cfg.model.arch == "mlp"
    style = cfg.model.arch in graphs_mod.STYLE_ARCHS
    if points and opts.output == "uint8":
        raise TganError(f"--output uint8 is for image generators; {state['path']} is a 2-D toy generator "
                        "(arch mlp): export it with --output float")
    if opts.psi is not None and not style:
        raise TganError(f"--psi is StyleGAN truncation in w; {state['path']} (arch {cfg.model.arch}) has no "
                        "mapping network: leave --psi out")
    output_dtype = "float32" if points else opts.output_dtype
    # the w fields and the origin's rules (family, seed and pixel rules, the source file's sha256) come from here
    meta = metadata_from_checkpoint(state, weights=opts.weights, output_dtype=output_dtype, opset=opts.opset,
                                    batch_profile=opts.batch_profile, exported=True, generator=generator)
    if not style:
        return meta, [graphs_mod.reference_graph(generator, meta)]
    meta.family = meta.family or cfg.model.arch  # a style model trained here has no origin record
    meta.default_psi = 1.0 if opts.psi is None else opts.psi
    return meta, graphs_mod.style_graphs(generator, meta)


def _announce(opts: ExportOptions, meta: ArtefactMetadata, cfg: TrainConfig, state: dict[str, Any],
              say: Callable[[str], None]) -> None:
    classes = f", {meta.num_classes} classes" if meta.conditional else ""
    what = "points" if meta.kind == "points" else f"{cfg.model.resolution} px"
    if meta.source_format:
        say(f"exporting {opts.source} ({meta.source_format}, {meta.family}, converted to "
            f"{sources.CONVERTED_CHECKPOINT}; {meta.weights} weights, {what}{classes}, psi {meta.default_psi:g}) "
            f"-> {opts.out}")
        return
    say(f"exporting {state['path']} (step {state.get('step')}, {meta.weights} weights, {what}{classes}) "
        f"-> {opts.out}")
    if meta.source_evaluation:
        e = meta.source_evaluation
        say(f"  {'the best' if Path(state['path']).name == BEST_FILE else 'its'} evaluation: {e['metric']} "
            f"{e['value']:.4g} at step {e['step']} ({e['feature_space']})")


def _export_graph(opts: ExportOptions, graph: graphs_mod.Graph, stage: Path, meta: ArtefactMetadata,
                  fp16_reports: dict[str, dict[str, object]], unavailable: list[str], say: Callable[[str], None]
                  ) -> list[parity_mod.Artefact]:
    """One graph: ONNX fp32 (+ fp16) (+ engines); its files into `meta.files`; the artefacts to check."""
    onnx_mod.export_graph(graph.exported, stage / graph.file, graph.example, graph.output_name, opts.opset,
                          max_batch=opts.max_batch)
    meta.files.update(dict.fromkeys(graph.roles, graph.file))
    artefacts = [parity_mod.Artefact(graph.roles[0], graph.file, "fp32", "onnxruntime-cpu",
                                     parity_mod.onnxruntime_runner(stage / graph.file, graph.output_name))]
    say(f"  wrote {graph.file} (opset {opts.opset}, dynamic batch)")
    engine_source = stage / graph.file
    if opts.fp16:
        result = fp16_mod.convert_fp16(stage / graph.file, stage / graph.fp16_file, latent_dim=meta.latent_dim,
                                       peak=graph.fp16_peak, num_classes=meta.num_classes,
                                       calibration=graph.calibration())
        onnx_mod.check_graph(stage / graph.fp16_file, graph.output_name, inputs=list(graph.example))
        fp16_reports[graph.name] = result.to_dict()
        meta.files.update(dict.fromkeys(graph.fp16_roles, graph.fp16_file))
        # the layer part of each reason ("style.synthesis.b16.conv1 MatMul: input/output magnitude ...")
        layers = ", ".join(sorted({why.split(":")[0] for why in result.blocked.values()})) or "none"
        artefacts.append(parity_mod.Artefact(
            graph.fp16_roles[0], graph.fp16_file, "fp16", "onnxruntime-cpu",
            parity_mod.onnxruntime_runner(stage / graph.fp16_file, graph.output_name, fp16_faithful=True),
            note="run on ONNX Runtime's CPU provider with every intermediate tensor kept (rounded to fp16 "
                 f"between nodes as on a GPU; CPU kernels compute through casts); kept in fp32: {layers} "
                 f"({FP16_REPORT} says why)"))
        say(f"  wrote {graph.fp16_file} (kept in fp32 by measurement: {layers}; calibration PSNR "
            f"{result.psnr_db:.1f} dB)")
        engine_source = stage / graph.fp16_file
    precision = "fp16" if opts.fp16 else "fp32"
    for target, wanted in (("tensorrt", opts.trt), ("tensorrt-rtx", opts.trt_rtx)):
        if not wanted:
            continue
        try:
            build = trt_mod.build_engine(engine_source, stage, engine_source.stem, target=target,
                                         batch_profile=opts.batch_profile, opt_level=opts.opt_level,
                                         cache_from=_old_cache(opts, target), input_shapes=graph.input_shapes)
        except trt_mod.EngineUnavailable as exc:
            if str(exc) not in unavailable:
                unavailable.append(str(exc))
                say(f"  {target} engine NOT built: {exc}")
            continue
        role = graph.engine_role(target)
        meta.files[role] = build.plan.name
        if build.timing_cache is not None:
            meta.files[f"{target.replace('-', '_')}_timing_cache"] = build.timing_cache.name
        runner, note = None, "built, not run: TensorRT-RTX engines run on RTX GPUs only"
        if target == "tensorrt":
            runner, note = trt_mod.engine_runner(build.plan), ""
        artefacts.append(parity_mod.Artefact(role, build.plan.name, precision, target, runner,
                                             device="cuda" if runner else "cpu", note=note))
        say(f"  wrote {build.plan.name} ({build.size_bytes / 2**20:.1f} MiB, built in {build.seconds:.1f} s)")
    return artefacts


def _which(choice: str) -> str:
    return choice if choice in ("auto", *CHOICES) else "auto"


def chosen_checkpoint(opts: ExportOptions) -> Path:
    """--checkpoint PATH: as given, else inside SOURCE's checkpoints/ folder (e.g. step-00002000.pt)."""
    if opts.checkpoint in ("auto", *CHOICES):
        return opts.source
    given = Path(opts.checkpoint)
    inside = opts.source / CHECKPOINT_DIR / given
    return inside if not given.exists() and opts.source.is_dir() and inside.is_file() else given


def _old_cache(opts: ExportOptions, target: str) -> Path | None:
    """The timing cache of a previous export into --out (re-export with --force), reused by the new build."""
    old = opts.out / f"{target}.timing-cache"
    return old if old.is_file() else None


def _write_triton(repo: Path, models: dict[str, Path], meta: ArtefactMetadata, max_batch: int) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    with staging_dir(repo / "triton") as stage:
        names = triton_mod.stage_models(stage, models, meta, max_batch)
        for name in names:
            replace_dir(stage / name, repo / name)
