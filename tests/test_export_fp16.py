"""fp16 conversion decided by measurement, and the parity metrics that judge it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _factories import small_config

from tgan_deploy.export import fp16 as fp16_mod
from tgan_deploy.export import onnx as onnx_mod
from tgan_deploy.export import parity as parity_mod
from tgan_deploy.models import build_generator
from tgan_deploy.runtime.latents import latents


def _overflowing_generator() -> torch.nn.Module:
    """A generator whose stem activations (after BN, ReLU) exceed fp16's range (65504); the next layer scales
    them back down, so fp32 output is ordinary. BN cannot be folded away: its scale is what makes them large."""
    cfg = small_config("dcgan", 32)
    torch.manual_seed(0)
    generator = build_generator(cfg.model).eval()
    stem_bn, first_up = generator.stem[1], generator.body[0]
    with torch.no_grad():
        stem_bn.weight.fill_(3e5)
        first_up.weight.mul_(1 / 3e5)
    return generator


def _run(path: Path, z: np.ndarray) -> np.ndarray:
    return parity_mod.onnxruntime_runner(path, "image", fp16_faithful=True)({"z": z})


def test_overflowing_layer_is_kept_in_fp32(tmp_path: Path) -> None:
    generator = _overflowing_generator()
    src, dst = tmp_path / "g.onnx", tmp_path / "g.fp16.onnx"
    onnx_mod.export_onnx(onnx_mod.prepare_for_export(generator), src, 8, "image")
    result = fp16_mod.convert_fp16(src, dst, latent_dim=8, peak=2.0)
    assert result.peak_activation > fp16_mod.FP16_MAX  # the measurement saw the overflow ...
    assert result.blocked and any("magnitude" in why for why in result.blocked.values())
    assert result.psnr_db >= 40
    z = latents(range(1000, 1064), 8)  # latents the calibration did not see
    ref = generator(torch.from_numpy(z)).detach().numpy()
    good = parity_mod.compare(ref, _run(dst, z), precision="fp16", output_dtype="float32", kind="image")
    assert good["status"] == "pass" and good["nonfinite"] == 0
    # ... and without that measurement the same converter breaks the model
    from onnxconverter_common import float16

    naive = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(naive, str(tmp_path / "naive.onnx"))
    bad = parity_mod.compare(ref, _run(tmp_path / "naive.onnx", z), precision="fp16", output_dtype="float32",
                             kind="image")
    assert bad["status"] == "fail"
    json.dumps(result.to_dict())  # fp16.json is serialisable


def test_well_behaved_generator_converts_entirely(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = build_generator(small_config("dcgan", 32).model).eval()
    src, dst = tmp_path / "g.onnx", tmp_path / "g.fp16.onnx"
    onnx_mod.export_onnx(onnx_mod.prepare_for_export(generator), src, 8, "image")
    result = fp16_mod.convert_fp16(src, dst, latent_dim=8, peak=2.0)
    assert result.blocked == {} and result.psnr_db >= fp16_mod.TARGET_PSNR_DB
    types = {init.data_type for init in onnx.load(str(dst)).graph.initializer if init.dims}
    assert onnx.TensorProto.FLOAT16 in types  # weights really are fp16
    inputs = onnx.load(str(dst)).graph.input[0].type.tensor_type.elem_type
    assert inputs == onnx.TensorProto.FLOAT  # fp32 interface kept


def test_compare_metrics() -> None:
    ref = np.zeros((2, 3, 4, 4), np.float32)
    out = ref.copy()
    out[0, 0, 0, 0] = 2e-4
    fp32 = parity_mod.compare(ref, out, precision="fp32", output_dtype="float32", kind="image")
    assert fp32["status"] == "fail" and fp32["max_abs"] == pytest.approx(2e-4)
    out[0, 0, 0, 0] = np.nan
    fp16 = parity_mod.compare(ref, out, precision="fp16", output_dtype="float32", kind="image")
    assert fp16["status"] == "fail" and fp16["nonfinite"] == 1
    u_ref = np.full((1, 3, 2, 2), 100, np.uint8)
    u_out = u_ref.copy()
    u_out[0, 0, 0, 0] = 101  # off by one from rounding: allowed
    assert parity_mod.compare(u_ref, u_out, precision="fp32", output_dtype="uint8", kind="image")["status"] == "pass"
    u_out[0, 0, 0, 0] = 102
    assert parity_mod.compare(u_ref, u_out, precision="fp32", output_dtype="uint8", kind="image")["status"] == "fail"
    exact = parity_mod.compare(u_ref, u_ref, precision="fp16", output_dtype="uint8", kind="image")
    assert math.isinf(exact["psnr_db"]) and exact["status"] == "pass"


def test_batch_sizes_capped_by_range() -> None:
    assert parity_mod.batch_sizes(1, 64) == [1, 7, 64]
    assert parity_mod.batch_sizes(1, 16) == [1, 7]
    assert parity_mod.batch_sizes(8, 32) == [8, 32]
