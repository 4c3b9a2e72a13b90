"""`tgan-export FILE.pkl|FILE.pt`: StyleGAN2 files saved by the original code bases -> our checkpoint + generator /
mapping / synthesis ONNX graphs (+ fp16, TensorRT-RTX), checked against our torch model and the originals' outputs.

Tolerances (derived, not observed):
- ONNX fp32 vs our torch model: the export's parity gate (export/parity.py: 1e-4 max abs for images in [-1, 1]); for
  ws and images compared here directly, 1e-4 x (1 + max |reference|): float32 results of the same products in
  another summation order (ONNX Runtime's vs PyTorch's conv/GEMM kernels, AVX2 vs AVX-512) differ by a few ulp of
  the partial sums, ~1e-6 relative per layer, times the depth (<= 20 layers) and the fan-in's sqrt (<= 24 at
  width 64 x 3 x 3): ~1e-5 relative, with a 10x margin.
- uint8: NVlabs' rule floor(clamp(x * 127.5 + 128, 0, 255)) of two float images that differ by at most e (above)
  can differ by one step only where the reference's scaled value lies within 127.5 e of an integer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from _hardware import has_tensorrt
from _nvlabs_pickles import PersistentStandIn, write_nvlabs_pickle
from _stylegan_fixtures import FIXTURES, needs_fixtures
from _subprocess import repo_env

from tgan_deploy.artefact import ArtefactMetadata
from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.export import tensorrt as trt_mod
from tgan_deploy.export.graphs import RANDOM_OPS
from tgan_deploy.export.pipeline import ExportOptions, run_export
from tgan_deploy.export.triton import parse_config
from tgan_deploy.io import file_sha256

SG2_FIXTURES = ("sg2ada-64.pkl", "sg2ada-cond10-32.pkl", "rosinality-64.pt")
GRAPHS = ("generator", "mapping", "synthesis")


def _tolerance(reference: np.ndarray) -> float:
    return 1e-4 * (1.0 + float(np.abs(reference).max()))


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(source: Path, out: Path, **options: object) -> tuple[ArtefactMetadata, Any]:
    return run_export(ExportOptions(source=source, out=out, **options), lambda _line: None)  # type: ignore[arg-type]


Export = tuple[Path, Path, ArtefactMetadata, Any]  # source, export dir, metadata, parity report


@pytest.fixture(scope="module")
def export_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Export]:
    """One export per StyleGAN2 fixture file, shared by the module's tests: fp32 + fp16 graphs, TensorRT-RTX engines
    (built on the CPU), a Triton repository, parity at batch 1, 7 and 64 (ParityFailed if any artefact misses its
    tolerance)."""
    done: dict[str, Export] = {}

    def export(name: str) -> Export:
        if name not in done:
            source = FIXTURES / name
            out = tmp_path_factory.mktemp(source.stem) / "export"
            meta, report = _export(source, out, fp16=True, trt_rtx=True, triton_repo=out.parent / "triton")
            done[name] = (source, out, meta, report)
        return done[name]

    return export


@pytest.fixture(params=SG2_FIXTURES)
def exported(request: pytest.FixtureRequest, export_of: Callable[[str], Export]) -> Export:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/stylegan is absent")
    return export_of(request.param)


@needs_fixtures
def test_export_files_and_metadata(exported: Export) -> None:
    source, out, meta, report = exported
    nvlabs = source.suffix == ".pkl"
    assert report.passed
    for graph in GRAPHS:
        assert meta.files[graph] == f"{graph}.onnx" and meta.files[f"{graph}_fp16"] == f"{graph}.fp16.onnx"
        assert meta.files[f"{graph}_tensorrt_rtx" if graph != "generator" else "tensorrt_rtx"].startswith(
            f"{graph}.fp16.trt-rtx-")
    assert meta.files["onnx"] == "generator.onnx"  # the runtime's and Triton's role of the generator, as ever
    on_disk = ArtefactMetadata.read_json(out / "model.json")
    assert on_disk == meta
    assert meta.family == "stylegan2" and meta.source_format == ("nvlabs-pkl" if nvlabs else "rosinality-pt")
    assert meta.seed_rule == ("nvlabs" if nvlabs else "tgan") and meta.pixel_rule == meta.seed_rule
    assert meta.source_checkpoint_sha256 == file_sha256(source) and meta.default_psi == 1.0
    g, _, _ = load_generator(out / "checkpoint.pt")
    assert (meta.w_dim, meta.num_ws) == (g.w_dim, g.num_ws)
    np.testing.assert_array_equal(np.asarray(meta.w_avg, np.float32), g.get_submodule("mapping").get_buffer("w_avg"))
    # the converted checkpoint is ours: weights-only, tagged, the origin recorded (what --init-from reads)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["origin"]["source_sha256"] == file_sha256(source)
    # Triton serves generator.onnx (z [, label] -> image) as for every export
    triton = out.parent / "triton"
    for model in ("tgan_generator_onnx", "tgan_generator_onnx_fp16"):
        assert (triton / model / "1" / "model.onnx").is_file()
        config = parse_config((triton / model / "config.pbtxt").read_text())
        assert config is None or [i.name for i in config.input] == (["z", "label"] if meta.num_classes else ["z"])
    # every graph ran at batch 1, 7 and 64 from one file
    ran = {(r.file, r.batch) for r in report.rows if r.status == "pass"}
    for graph in GRAPHS:
        for file in (f"{graph}.onnx", f"{graph}.fp16.onnx"):
            assert {(file, b) for b in (1, 7, 64)} <= ran


@needs_fixtures
def test_graphs_are_deterministic_with_dynamic_batch(exported: Export) -> None:
    _, out, meta, _ = exported
    for graph in GRAPHS:
        for file in (f"{graph}.onnx", f"{graph}.fp16.onnx"):
            model = onnx.load(str(out / file))
            ops = {node.op_type for node in model.graph.node}
            assert not ops & RANDOM_OPS, f"{file} draws random numbers: {ops & RANDOM_OPS}"
            for value in (*model.graph.input, *model.graph.output):
                assert value.type.tensor_type.shape.dim[0].dim_param, f"{file}: {value.name} has a fixed batch"
    # same input, same output, twice (constant noise)
    z = np.random.default_rng(3).standard_normal((2, meta.latent_dim)).astype(np.float32)
    feeds = {"z": z, **({"label": np.array([1, 0])} if meta.num_classes else {})}
    session = _session(out / "generator.onnx")
    np.testing.assert_array_equal(session.run(None, feeds)[0], session.run(None, feeds)[0])


@needs_fixtures
def test_onnx_equals_the_originals_outputs(exported: Export) -> None:
    """generator/mapping/synthesis.onnx on the fixture's latents reproduce the original code's float32 outputs."""
    source, out, meta, _ = exported
    ref = np.load(source.with_suffix(".npz"))
    if source.suffix == ".pkl":
        feeds = {"z": ref["z"], **({"label": ref["labels"].astype(np.int64)} if meta.num_classes else {})}
        ws = _session(out / "mapping.onnx").run(None, feeds)[0]
        np.testing.assert_allclose(ws, ref["ws"], rtol=0, atol=_tolerance(ref["ws"]))
        ws_in = ref["ws"]
    else:  # rosinality: z -> w (one per sample), broadcast to every layer
        ws = _session(out / "mapping.onnx").run(None, {"z": ref["z"].astype(np.float32)})[0]
        np.testing.assert_allclose(ws, np.repeat(ref["w"][:, None], meta.num_ws, 1), rtol=0, atol=_tolerance(ref["w"]))
        feeds, ws_in = {"z": ref["z"].astype(np.float32)}, ws
    image = _session(out / "synthesis.onnx").run(None, {"ws": ws_in.astype(np.float32)})[0]
    np.testing.assert_allclose(image, ref["img_psi1"], rtol=0, atol=_tolerance(ref["img_psi1"]))
    image = _session(out / "generator.onnx").run(None, feeds)[0]
    np.testing.assert_allclose(image, ref["img_psi1"], rtol=0, atol=_tolerance(ref["img_psi1"]))


def _assert_nvlabs_pixels(pixels: np.ndarray, image: np.ndarray) -> None:
    """`pixels` (uint8 NCHW) are NVlabs generate.py's conversion of the original's float `image`, but for values
    within our float error of a pixel boundary (off by one there)."""
    scaled = np.clip(image.astype(np.float64) * 127.5 + 128, 0, 255)
    theirs = np.floor(scaled).astype(np.uint8)
    assert pixels.dtype == np.uint8 and pixels.shape == theirs.shape
    diff = np.abs(pixels.astype(int) - theirs.astype(int))
    near_boundary = np.abs(scaled - np.round(scaled)) <= 127.5 * _tolerance(image)
    assert diff.max() <= 1 and not (diff.astype(bool) & ~near_boundary).any()


@needs_fixtures
def test_uint8_and_psi_match_the_originals_conversion(tmp_path: Path) -> None:
    """--output uint8 --psi 0.7 on an NVlabs file: the graph's pixels are NVlabs' generate.py conversion of the
    original's truncated image, but for values within float error of a pixel boundary."""
    source = FIXTURES / "sg2ada-cond10-32.pkl"
    ref = np.load(source.with_suffix(".npz"))
    meta, report = _export(source, tmp_path / "u8", output="uint8", psi=0.7, parity_batches=(7,))
    assert report.passed and meta.output_dtype == "uint8" and meta.default_psi == 0.7
    feeds = {"z": ref["z"], "label": ref["labels"].astype(np.int64)}
    _assert_nvlabs_pixels(_session(tmp_path / "u8" / "generator.onnx").run(None, feeds)[0], ref["img_psi07"])


@needs_fixtures
def test_fp32_tensorrt_rtx_engines_build_on_the_cpu(exported: Export, tmp_path: Path) -> None:
    """The export built the fp16 engines; the fp32 graphs build too (TensorRT-RTX needs no GPU to build)."""
    _, out, meta, report = exported
    assert [r.status for r in report.rows if r.backend == "tensorrt-rtx"] == ["built, not run"] * 3
    shapes: dict[str, dict[str, tuple[int, ...]] | None] = {"mapping": None,
                                                            "synthesis": {"ws": (meta.num_ws, meta.w_dim)}}
    for graph, input_shapes in shapes.items():
        build = trt_mod.build_engine(out / f"{graph}.onnx", tmp_path, graph, target="tensorrt-rtx",
                                     batch_profile=(1, 16, 64), latent_dim=meta.latent_dim,
                                     conditional=meta.conditional, input_shapes=input_shapes)
        assert build.plan.is_file() and build.size_bytes > 0


@needs_fixtures
@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not has_tensorrt(), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_engines_of_every_graph_match_torch(tmp_path: Path, fp16: bool) -> None:
    """On a GPU: --trt builds an engine per graph and each passes the parity gate against eager torch on CUDA
    (fp32: 1e-4 with TF32 off; fp16: >= 40 dB, no NaN: the islands hold on TensorRT too)."""
    source = FIXTURES / "sg2ada-64.pkl"
    meta, report = _export(source, tmp_path / "e", trt=True, fp16=fp16, parity_batches=(1, 7, 64))
    rows = [r for r in report.rows if r.backend == "tensorrt"]
    assert {r.file.split(".")[0] for r in rows} == set(GRAPHS) and all(r.status == "pass" for r in rows)
    assert {meta.files[k] for k in ("tensorrt", "mapping_tensorrt", "synthesis_tensorrt")}


@needs_fixtures
def test_sampler_seeds_give_the_nvlabs_images(export_of: Callable[[str], Export]) -> None:
    """Seeds 0..7 through Sampler on an imported NVlabs export are the images NVlabs' generate.py makes."""
    from tgan_deploy.runtime.sampler import Sampler

    source, out, _, _ = export_of("sg2ada-64.pkl")
    ref = np.load(source.with_suffix(".npz"))
    with Sampler.open(out, backend="onnxruntime") as sampler:
        images = sampler.sample(seeds=range(8))
    _assert_nvlabs_pixels(images.transpose(0, 3, 1, 2), ref["img_psi1"])  # Sampler gives NHWC


# -- refusals through the command (files built here; no fixtures needed) ------------------------------------------

def _refused(tmp_path: Path, source: Path) -> str:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "tgan_deploy", "export", str(source), "--out", str(out)],
                          capture_output=True, text=True, env=repo_env(), timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not out.exists() and not any(p.name.startswith(".out.") for p in tmp_path.iterdir())
    return lines[0]


class _CreatesFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    """A .pkl whose __reduce__ creates a file (pickle.load would): exit 2, one line, no file, nothing in --out."""
    marker = tmp_path / "PWNED"
    source = write_nvlabs_pickle(tmp_path / "hostile.pkl", {"G_ema": _CreatesFile(marker), "G": None, "D": None})
    line = _refused(tmp_path, source)
    assert "open" in line and "refused" in line
    assert not marker.exists()


def test_non_stylegan_pickle_is_refused(tmp_path: Path) -> None:
    """An NVlabs-layout pickle of a network that is not a StyleGAN generator: one line, exit 2."""
    net = PersistentStandIn("Classifier", {"training": False, "_parameters": {"weight": torch.zeros(2, 2)},
                                           "_buffers": {}, "_modules": {}, "_init_args": (), "_init_kwargs": {}})
    source = write_nvlabs_pickle(tmp_path / "classifier.pkl", {"G_ema": net, "G": None, "D": None})
    line = _refused(tmp_path, source)
    assert "classifier.pkl" in line


@needs_fixtures
def test_fp16_keeps_overflowing_demodulation_in_fp32(tmp_path: Path) -> None:
    """Styles 8x larger (the affine layers of every modulated conv scaled; demodulation cancels it, so the image
    is the same) make the demodulation's sum of squares 64x larger, past fp16's 65504, as at paper widths: converted
    naively the fp16 graph gives NaN / solid colour (NVIDIA/TensorRT#3257); --fp16 keeps exactly those sums in fp32
    and passes its parity gate, and fp16.json names the layers and why."""
    from onnxconverter_common import float16

    from tgan_deploy.checkpoint import save_checkpoint
    from tgan_deploy.export import parity as parity_mod
    from tgan_deploy.foreign.convert import convert_file

    state = convert_file(FIXTURES / "sg2ada-cond10-32.pkl")
    state.pop("origin", None)  # now a style model of ours (tgan seed and pixel rules)
    for key in ("generator", "generator_ema"):
        for name, tensor in state[key].items():
            if ".conv" in name and ".affine." in name:
                state[key][name] = tensor * 8
    save_checkpoint(tmp_path / "scaled.pt", state)
    meta, report = _export(tmp_path / "scaled.pt", tmp_path / "e", fp16=True, parity_batches=(7,))
    assert report.passed and meta.seed_rule == "tgan" and meta.source_format == ""
    islands = json.loads((tmp_path / "e" / "fp16.json").read_text())["synthesis"]["blocked"]
    assert islands and all("magnitude" in why for why in islands.values())
    assert any(".conv" in why and "MatMul" in why for why in islands.values())
    naive = float16.convert_float_to_float16(onnx.load(str(tmp_path / "e" / "synthesis.onnx")), keep_io_types=True)
    onnx.save(naive, str(tmp_path / "naive.onnx"))
    ws = _session(tmp_path / "e" / "mapping.onnx").run(None, {"z": np.zeros((2, meta.latent_dim), np.float32),
                                                             "label": np.array([0, 1])})[0]
    image = parity_mod.onnxruntime_runner(tmp_path / "naive.onnx", "image", fp16_faithful=True)({"ws": ws})
    fp32 = _session(tmp_path / "e" / "synthesis.onnx").run(None, {"ws": ws})[0]
    naive_check = parity_mod.compare(fp32, image, precision="fp16", output_dtype="float32", kind="image")
    assert naive_check["status"] == "fail"  # without the islands the fp16 gate fails


def test_psi_is_refused_for_models_without_a_mapping_network(tmp_path: Path) -> None:
    from _factories import small_config, write_checkpoint

    from tgan_deploy.errors import TganError

    checkpoint = write_checkpoint(tmp_path / "step.pt", small_config("dcgan", 32))
    with pytest.raises(TganError, match="no mapping network"):
        _export(checkpoint, tmp_path / "out", psi=0.7)
    with pytest.raises(TganError, match="finite"):
        _export(checkpoint, tmp_path / "out", psi=float("nan"))
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["step.pt"]
