"""Exports of class-conditional generators: the `label` input, classes in the metadata, parity over labels,
fp16 and uint8, TensorRT profiles, Triton; unconditional exports keep today's single-input interface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _factories import small_config, write_checkpoint
from _runtime_factories import COND_CLASSES, TinyModels, eager, export, shared_tiny_models

from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME, MODEL_JSON, ArtefactMetadata
from tgan_deploy.checkpoint import load_checkpoint
from tgan_deploy.errors import CheckpointError
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import triton as triton_mod
from tgan_deploy.export.onnx import to_uint8
from tgan_deploy.export.parity import PARITY_JSON
from tgan_deploy.runtime.latents import latents

LABELS = np.array([2, 0, 1, 1, 2, 0, 0], dtype=np.int64)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def fp16_uint8(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The conditional tiny model exported with fp16, uint8 output, a TensorRT-RTX engine (built on this CPU
    ahead of time: its optimisation profile covers the label input) and a Triton repository."""
    tmp = tmp_path_factory.mktemp("cond-fp16")
    out = export(tiny.cond_checkpoint, tmp / "export", fp16=True, output="uint8", trt_rtx=True,
                 triton_repo=tmp / "triton")
    return out, tmp / "triton"


def _run(path: Path, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {INPUT_NAME: z} if labels is None else {INPUT_NAME: z, LABEL_NAME: labels}
    return np.asarray(session.run(None, feeds)[0])


def _inputs(path: Path) -> list[tuple[str, int, list[str | int]]]:
    model = onnx.load(str(path))
    return [(i.name, i.type.tensor_type.elem_type,
             [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]


def test_conditional_export_interface_and_metadata(tiny: TinyModels) -> None:
    onnx_file = tiny.cond_export / "generator.onnx"
    (z_name, z_type, z_dims), (label_name, label_type, label_dims) = _inputs(onnx_file)
    assert (z_name, z_type) == (INPUT_NAME, onnx.TensorProto.FLOAT) and z_dims[1] == 8
    assert (label_name, label_type) == (LABEL_NAME, onnx.TensorProto.INT64)
    assert label_dims == [z_dims[0]] and isinstance(label_dims[0], str), "label must share the dynamic batch"
    meta = ArtefactMetadata.read_json(tiny.cond_export / MODEL_JSON)
    assert meta.num_classes == 3 and meta.classes == COND_CLASSES and meta.conditional
    assert onnx_mod.read_metadata(onnx_file) == meta
    parity = json.loads((tiny.cond_export / PARITY_JSON).read_text())
    assert parity["passed"] and parity["labels"] == "seed % num_classes"


def test_onnxruntime_matches_pytorch_for_given_labels(tiny: TinyModels) -> None:
    z = latents(range(7), 8)
    out = _run(tiny.cond_export / "generator.onnx", z, LABELS)
    np.testing.assert_allclose(out, eager(tiny.cond_checkpoint, z, LABELS), atol=1e-5)
    relabelled = _run(tiny.cond_export / "generator.onnx", z, (LABELS + 1) % 3)
    assert np.abs(out - relabelled).reshape(7, -1).max(axis=1).min() > 0, "the label must change every image"
    # batch 1 too (the dynamic batch reaches down to 1 on both inputs)
    np.testing.assert_allclose(_run(tiny.cond_export / "generator.onnx", z[:1], LABELS[:1]), out[:1], atol=1e-5)


def test_unconditional_export_keeps_a_single_input(tiny: TinyModels) -> None:
    (name, elem, dims), = _inputs(tiny.export / "generator.onnx")
    assert name == INPUT_NAME and elem == onnx.TensorProto.FLOAT and dims[1] == 8
    meta = ArtefactMetadata.read_json(tiny.export / MODEL_JSON)
    assert meta.num_classes == 0 and meta.classes == [] and not meta.conditional
    text = (tiny.export / "parity.md").read_text()
    assert "labels" not in text


def test_fp16_and_uint8_conditional_exports(tiny: TinyModels, fp16_uint8: tuple[Path, Path]) -> None:
    out, _ = fp16_uint8
    parity = json.loads((out / PARITY_JSON).read_text())
    assert parity["passed"] and {"generator.onnx", "generator.fp16.onnx"} <= {r["file"] for r in parity["rows"]}
    assert json.loads((out / "fp16.json").read_text())["calibration"].endswith("labels seed % num_classes")
    z = latents(range(7), 8)
    want = to_uint8(torch.from_numpy(eager(tiny.cond_checkpoint, z, LABELS))).numpy()
    got = _run(out / "generator.onnx", z, LABELS)
    assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1
    assert [i[0] for i in _inputs(out / "generator.fp16.onnx")] == [INPUT_NAME, LABEL_NAME]
    half = _run(out / "generator.fp16.onnx", z, LABELS)
    assert half.dtype == np.uint8 and np.abs(half.astype(int) - want).mean() < 2


def test_tensorrt_rtx_engine_builds_with_the_label_profile(fp16_uint8: tuple[Path, Path]) -> None:
    out, _ = fp16_uint8
    files = ArtefactMetadata.read_json(out / MODEL_JSON).files
    if "tensorrt_rtx" not in files:
        pytest.skip("tensorrt_rtx is not installed here")
    assert (out / files["tensorrt_rtx"]).stat().st_size > 0


def test_triton_config_declares_the_label_input(fp16_uint8: tuple[Path, Path]) -> None:
    _, repo = fp16_uint8
    for role in ("onnx", "onnx_fp16"):
        text = (repo / f"{triton_mod.MODEL_PREFIX}_{role}" / "config.pbtxt").read_text()
        parsed = triton_mod.parse_config(text)
        if parsed is None:
            pytest.skip("tritonclient (dev extra) not installed")
        z, label = parsed.input
        assert (z.name, list(z.dims)) == (INPUT_NAME, [8])
        data_type = label.DESCRIPTOR.fields_by_name["data_type"].enum_type.values_by_number[label.data_type].name
        assert (label.name, data_type) == (LABEL_NAME, "TYPE_INT64")
        assert list(label.dims) == [1] and list(label.reshape.shape) == []


def test_checkpoint_classes_are_checked(tmp_path: Path) -> None:
    cfg = small_config(num_classes=3)
    default = load_checkpoint(write_checkpoint(tmp_path / "a.pt", cfg, classes=None))
    assert default["classes"] == ["c0", "c1", "c2"]
    bad = write_checkpoint(tmp_path / "b.pt", cfg, classes=["cat", "cat", "dog"])
    with pytest.raises(CheckpointError, match="3 distinct non-empty names"):
        load_checkpoint(bad)
    assert load_checkpoint(write_checkpoint(tmp_path / "c.pt", small_config()))["classes"] == []
