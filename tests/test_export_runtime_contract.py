"""The real exporter's output, read by the runtime (tgan_deploy.runtime.Sampler): the artefact contract
holds end to end — same seeds, same images as the checkpoint in eager PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _factories import small_config, write_checkpoint

from tgan_deploy.checkpoint import load_generator
from tgan_deploy.export.onnx import to_uint8
from tgan_deploy.export.pipeline import ExportOptions, run_export
from tgan_deploy.runtime.latents import latents

sampler_mod = pytest.importorskip("tgan_deploy.runtime.sampler")


@pytest.mark.parametrize(("arch", "output"), [("dcgan", "float"), ("dcgan", "uint8"), ("mlp", "float")])
def test_runtime_samples_the_export(tmp_path: Path, arch: str, output: str) -> None:
    ckpt = write_checkpoint(tmp_path / "g.pt", small_config(arch, 32))
    out = tmp_path / "export"
    run_export(ExportOptions(source=ckpt, out=out, output=output, fp16=True, parity_batches=(7,)),
               lambda _line: None)
    seeds = [3, 1, 4, 1, 5]
    generator, cfg, _ = load_generator(ckpt)
    z = latents(seeds, cfg.model.latent_dim)
    with torch.no_grad():
        ref = generator(torch.from_numpy(z))
    with sampler_mod.Sampler.open(out, backend="onnxruntime", device="cpu", warmup=False) as sampler:
        assert sampler.kind == ("points" if arch == "mlp" else "image")
        assert sampler.latent_dim == cfg.model.latent_dim
        images = sampler.sample(seeds)  # the user-facing output: uint8 NHWC images (points: float32)
        raw = sampler.generate(z)
    if arch == "mlp":
        np.testing.assert_allclose(images, ref.numpy(), atol=1e-4)
        return
    expected = to_uint8(ref).permute(0, 2, 3, 1).numpy()  # the same uint8 contract as runtime.images
    assert images.dtype == np.uint8 and images.shape == expected.shape
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1  # rounding at .5 boundaries
    np.testing.assert_allclose(raw, ref.numpy(), atol=1e-4 if output == "float" else 1 / 127.5 + 1e-4)
