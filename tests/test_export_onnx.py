"""tgan-export end to end, in process: every architecture and resolution, ONNX Runtime parity, fp16,
TensorRT-RTX engines (fp32 and fp16, built on this CPU), metadata round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from _factories import small_config, write_checkpoint

from tgan_deploy.artefact import MODEL_JSON, ArtefactMetadata
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export.parity import PARITY_JSON, PARITY_MD
from tgan_deploy.export.pipeline import ExportOptions, run_export
from tgan_deploy.io import file_sha256

CASES = [("dcgan", 32), ("dcgan", 64), ("dcgan", 128), ("dcgan", 256), ("mlp", None)]


def _export(tmp_path: Path, arch: str, resolution: int | None, **options: object):
    cfg = small_config(arch, resolution or 32)
    ckpt = write_checkpoint(tmp_path / "g.pt", cfg, step=7)
    out = tmp_path / "export"
    meta, report = run_export(ExportOptions(source=ckpt, out=out, **options), lambda _line: None)  # type: ignore[arg-type]
    return cfg, ckpt, out, meta, report


def _session_output(path: Path, z: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"z": z})[0]


@pytest.mark.parametrize(("arch", "resolution"), CASES, ids=[f"{a}-{r or 'points'}" for a, r in CASES])
def test_export_every_architecture(tmp_path: Path, arch: str, resolution: int | None) -> None:
    cfg, ckpt, out, meta, report = _export(tmp_path, arch, resolution, fp16=True, trt_rtx=True)
    points = arch == "mlp"
    # files and the metadata contract
    for name in ("generator.onnx", "generator.fp16.onnx", MODEL_JSON, PARITY_JSON, PARITY_MD, "fp16.json"):
        assert (out / name).is_file(), name
    assert not list(tmp_path.glob(".export.*")), "staging folder left behind"
    on_disk = ArtefactMetadata.read_json(out / MODEL_JSON)
    assert on_disk == meta
    assert onnx_mod.read_metadata(out / "generator.onnx") == meta
    assert onnx_mod.read_metadata(out / "generator.fp16.onnx") == meta
    assert meta.kind == ("points" if points else "image")
    assert meta.latent_dim == cfg.model.latent_dim
    assert meta.resolution == (None if points else resolution)
    assert meta.source_checkpoint_sha256 == file_sha256(ckpt)
    assert meta.source_step == 7 and meta.weights == "ema" and meta.opset == onnx_mod.DEFAULT_OPSET
    assert meta.output_range == (-1.0, 1.0) and meta.latent_distribution == "normal"
    # graph interface: z float32 [batch, latent] -> image [batch, C, H, W] / points [batch, 2], batch dynamic
    model = onnx.load(str(out / "generator.onnx"))
    out_value = model.graph.output[0]
    assert out_value.name == ("points" if points else "image")
    dims = [d.dim_value for d in out_value.type.tensor_type.shape.dim[1:]]
    assert dims == ([2] if points else [3, resolution, resolution])
    # parity: every ONNX artefact at batch 1, 7, 64 within tolerance; the RTX engine built, not run
    assert report.passed
    ran = {(r.file, r.batch) for r in report.rows if r.status == "pass"}
    for file in ("generator.onnx", "generator.fp16.onnx"):
        assert {(file, b) for b in (1, 7, 64)} <= ran
    assert max(r.max_abs or 0 for r in report.rows if r.precision == "fp32") <= 1e-4
    assert min(r.psnr_db or 0 for r in report.rows if r.precision == "fp16" and r.batch) >= 40
    rtx_rows = [r for r in report.rows if r.backend == "tensorrt-rtx"]
    assert [r.status for r in rtx_rows] == ["built, not run"]
    # TensorRT-RTX: the fp16 engine came from the export; build the fp32 one from generator.onnx too
    fp16_plan = out / meta.files["tensorrt_rtx"]
    assert fp16_plan.name.startswith("generator.fp16.trt-rtx-") and fp16_plan.stat().st_size > 0
    build = trt_mod.build_engine(out / "generator.onnx", tmp_path, "generator", target="tensorrt-rtx",
                                 batch_profile=(1, 16, 64), latent_dim=meta.latent_dim)
    assert build.plan.is_file() and build.size_bytes > 0 and build.plan.name.startswith("generator.trt-rtx-")


@pytest.mark.parametrize("resolution", [32, 64])
def test_uint8_output_matches_torch_postprocessing(tmp_path: Path, resolution: int) -> None:
    _, _, out, meta, report = _export(tmp_path, "dcgan", resolution, output="uint8", trt_rtx=True)
    assert meta.output_dtype == "uint8" and meta.output_range == (0.0, 255.0)
    assert report.passed
    assert {r.batch for r in report.rows if r.status == "pass"} == {1, 7, 64}
    # the graph itself emits uint8 NCHW pixels (torch-fidelity's convention for ONNX generators)
    z = np.random.default_rng(0).standard_normal((5, meta.latent_dim)).astype(np.float32)
    pixels = _session_output(out / "generator.onnx", z)
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 3, resolution, resolution)
    assert pixels.min() < 128 < pixels.max()


def test_uint8_is_refused_for_points(tmp_path: Path) -> None:
    from tgan_deploy.errors import TganError

    with pytest.raises(TganError, match="uint8 is for image generators"):
        _export(tmp_path, "mlp", None, output="uint8")
    assert not (tmp_path / "export").exists()


def test_raw_weights_differ_from_ema(tmp_path: Path) -> None:
    cfg = small_config("dcgan", 32)
    ckpt = write_checkpoint(tmp_path / "g.pt", cfg)
    z = np.random.default_rng(1).standard_normal((3, cfg.model.latent_dim)).astype(np.float32)
    outputs = {}
    for weights in ("ema", "raw"):
        out = tmp_path / weights
        meta, _ = run_export(ExportOptions(source=ckpt, out=out, weights=weights), lambda _line: None)
        assert meta.weights == weights
        outputs[weights] = _session_output(out / "generator.onnx", z)
    assert np.abs(outputs["ema"] - outputs["raw"]).max() > 1e-3


def test_opset_is_honoured_or_refused(tmp_path: Path) -> None:
    cfg = small_config("mlp")
    ckpt = write_checkpoint(tmp_path / "g.pt", cfg)
    meta, _ = run_export(ExportOptions(source=ckpt, out=tmp_path / "o18", opset=18), lambda _line: None)
    assert onnx_mod.written_opset(onnx.load(str(tmp_path / "o18" / "generator.onnx"))) == 18 == meta.opset
    with pytest.raises(onnx_mod.ExportError, match="cannot be written by the installed exporter"):
        run_export(ExportOptions(source=ckpt, out=tmp_path / "o99", opset=99), lambda _line: None)
    assert not (tmp_path / "o99").exists()
