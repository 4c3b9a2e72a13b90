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
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from tgan_deploy.artefact import MODEL_JSON, ArtefactMetadata
from tgan_deploy.checkpoint import load_generator
from tgan_deploy.checkpoint_metadata import metadata_from_checkpoint
from tgan_deploy.errors import TganError
from tgan_deploy.export import fp16 as fp16_mod
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import parity as parity_mod
from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export import triton as triton_mod
from tgan_deploy.io import write_json_atomic
from tgan_deploy.run_layout import BEST_FILE, CHECKPOINT_DIR, CHOICES

ONNX_FILE, FP16_FILE, FP16_REPORT = "generator.onnx", "generator.fp16.onnx", "fp16.json"
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
    generator, cfg, state = load_generator(chosen_checkpoint(opts), opts.weights, which=_which(opts.checkpoint))
    points = cfg.model.arch == "mlp"
    if points and opts.output == "uint8":
        raise TganError(f"--output uint8 is for image generators; {state['path']} is a 2-D toy generator "
                        "(arch mlp): export it with --output float")
    output_dtype = "float32" if points else opts.output_dtype
    meta = metadata_from_checkpoint(state, weights=opts.weights, output_dtype=output_dtype, opset=opts.opset,
                                    batch_profile=opts.batch_profile, exported=True)
    triton_models: dict[str, Path] = {}
    if opts.triton_repo is not None:
        planned = ["onnx", *(["onnx_fp16"] if opts.fp16 else []), *(["tensorrt"] if opts.trt else [])]
        triton_mod.check_free(opts.triton_repo, list(triton_mod.model_names(dict.fromkeys(planned, Path()))),
                              opts.force)
    classes = f", {meta.num_classes} classes" if meta.conditional else ""
    say(f"exporting {state['path']} (step {state.get('step')}, {meta.weights} weights, "
        f"{'points' if points else f'{cfg.model.resolution} px'}{classes}) -> {opts.out}")
    if meta.source_evaluation:
        e = meta.source_evaluation
        say(f"  {'the best' if Path(state['path']).name == BEST_FILE else 'its'} evaluation: {e['metric']} "
            f"{e['value']:.4g} at step {e['step']} ({e['feature_space']})")
    unavailable: list[str] = []
    with staging_dir(opts.out) as stage:
        reference = onnx_mod.prepare_for_export(generator)
        exported = onnx_mod.prepare_for_export(generator, output_dtype)
        onnx_mod.export_onnx(exported, stage / ONNX_FILE, meta.latent_dim, meta.output_name, opts.opset,
                             max_batch=opts.max_batch, num_classes=meta.num_classes)
        meta.files["onnx"] = ONNX_FILE
        artefacts = [parity_mod.Artefact("onnx", ONNX_FILE, "fp32", "onnxruntime-cpu",
                                         parity_mod.onnxruntime_runner(stage / ONNX_FILE, meta.output_name))]
        say(f"  wrote {ONNX_FILE} (opset {opts.opset}, dynamic batch)")
        engine_source = stage / ONNX_FILE
        if opts.fp16:
            result = fp16_mod.convert_fp16(stage / ONNX_FILE, stage / FP16_FILE, latent_dim=meta.latent_dim,
                                           peak=_psnr_peak(meta), num_classes=meta.num_classes)
            onnx_mod.check_graph(stage / FP16_FILE, meta.output_name, meta.num_classes)
            write_json_atomic(stage / FP16_REPORT, result.to_dict())
            meta.files.update(onnx_fp16=FP16_FILE, fp16_report=FP16_REPORT)
            artefacts.append(parity_mod.Artefact(
                "onnx_fp16", FP16_FILE, "fp16", "onnxruntime-cpu",
                parity_mod.onnxruntime_runner(stage / FP16_FILE, meta.output_name, fp16_faithful=True),
                note="run on ONNX Runtime's CPU provider with every intermediate tensor kept (rounded to fp16 "
                     "between nodes as on a GPU; CPU kernels compute through casts)"))
            blocked = ", ".join(result.blocked) or "none"
            say(f"  wrote {FP16_FILE} (kept in fp32 by measurement: {blocked}; calibration PSNR "
                f"{result.psnr_db:.1f} dB)")
            engine_source = stage / FP16_FILE
        precision = "fp16" if opts.fp16 else "fp32"
        for target, wanted in (("tensorrt", opts.trt), ("tensorrt-rtx", opts.trt_rtx)):
            if not wanted:
                continue
            try:
                build = trt_mod.build_engine(engine_source, stage, engine_source.stem, target=target,
                                             batch_profile=opts.batch_profile, latent_dim=meta.latent_dim,
                                             conditional=meta.conditional, opt_level=opts.opt_level,
                                             cache_from=_old_cache(opts, target))
            except trt_mod.EngineUnavailable as exc:
                unavailable.append(str(exc))
                say(f"  {target} engine NOT built: {exc}")
                continue
            role = target.replace("-", "_")
            meta.files[role] = build.plan.name
            if build.timing_cache is not None:
                meta.files[f"{role}_timing_cache"] = build.timing_cache.name
            runner, note = None, "built, not run: TensorRT-RTX engines run on RTX GPUs only"
            if target == "tensorrt":
                runner, note = trt_mod.engine_runner(build.plan), ""
            artefacts.append(parity_mod.Artefact(role, build.plan.name, precision, target, runner,
                                                 device="cuda" if runner else "cpu", note=note))
            say(f"  wrote {build.plan.name} ({build.size_bytes / 2**20:.1f} MiB, built in {build.seconds:.1f} s)")
        batches = parity_mod.batch_sizes(opts.min_batch, opts.max_batch, opts.parity_batches)
        say(f"  parity: PyTorch eager vs {len(artefacts)} artefact(s) at batch {', '.join(map(str, batches))}")
        report = parity_mod.run_parity(reference, artefacts, latent_dim=meta.latent_dim, batches=batches,
                                       output_dtype=output_dtype, kind=meta.kind, num_classes=meta.num_classes)
        report.write(stage)
        meta.files.update(parity=parity_mod.PARITY_JSON, parity_table=parity_mod.PARITY_MD)
        for role in ("onnx", "onnx_fp16"):
            if role in meta.files:
                onnx_mod.stamp_metadata(stage / meta.files[role], meta)
        write_json_atomic(stage / MODEL_JSON, meta.to_dict())
        if opts.triton_repo is not None:
            for role in ("onnx", "onnx_fp16", "tensorrt"):
                if role in meta.files:
                    triton_models[role] = stage / meta.files[role]
            _write_triton(opts.triton_repo, triton_models, meta, opts.max_batch)
        replace_dir(stage, opts.out)
    if not report.passed and opts.check:
        raise ParityFailed(f"parity check failed (see {opts.out / parity_mod.PARITY_MD}): the export is written "
                           "for inspection; pass --no-check to accept it")
    if unavailable:
        raise trt_mod.EngineUnavailable(f"{'; '.join(unavailable)} -- the ONNX artefacts and parity report are "
                                        f"complete in {opts.out}")
    return meta, report


def _which(choice: str) -> str:
    return choice if choice in ("auto", *CHOICES) else "auto"


def chosen_checkpoint(opts: ExportOptions) -> Path:
    """--checkpoint PATH: as given, else inside SOURCE's checkpoints/ folder (e.g. step-00002000.pt)."""
    if opts.checkpoint in ("auto", *CHOICES):
        return opts.source
    given = Path(opts.checkpoint)
    inside = opts.source / CHECKPOINT_DIR / given
    return inside if not given.exists() and opts.source.is_dir() and inside.is_file() else given


def _psnr_peak(meta: ArtefactMetadata) -> float | None:
    if meta.kind == "points":
        return None  # the reference's own value range
    return 255.0 if meta.output_dtype == "uint8" else 2.0


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
