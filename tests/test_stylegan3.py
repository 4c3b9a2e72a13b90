"""StyleGAN3 (-T and -R) snapshots through the StyleGAN path: our model (models/stylegan3.py) converted from the
fixtures saved by NVlabs' stylegan3 equals that code's outputs (.npz beside each file; README there), and the
user transform of the Fourier input moves the image as the paper's translation equivariance says.

Tolerances (as for StyleGAN2, tests/test_stylegan2*.py): float32 on both sides, the same operations in another
order (our modulation on the activations vs. their per-sample weights, transposed / strided FIR convs vs. their
zero-insert + pad + conv, another BLAS and CPU). Each of the ~16 layers sums a few hundred products (rounding
~sqrt(n) * 6e-8 relative, ~2e-6) and demodulation renormalises every layer, so the error grows about linearly
with depth: ~3e-5 relative at the output in the worst case; 1e-4 x (1 + max |image|) keeps a 3x margin (measured
here: 1.7e-6 on sg3t-64, 1.1e-7 on sg3r-32). ws: two FC layers, 1e-5 relative (measured: 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _stylegan_fixtures import FIXTURES, needs_fixtures

from tgan_deploy.checkpoint import load_checkpoint
from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.convert import convert_file, style_modules, write_converted
from tgan_deploy.foreign.nvlabs import read_nvlabs_snapshot
from tgan_deploy.foreign.stylegan3 import stylegan3_generator_kwargs
from tgan_deploy.models.stylegan3 import StyleGAN3Generator

pytestmark = needs_fixtures

SG3_FILES = ("sg3t-64.pkl", "sg3r-32.pkl")


def _image_tol(reference: np.ndarray) -> float:
    return 1e-4 * (1 + float(np.abs(reference).max()))


@pytest.fixture(scope="module", params=SG3_FILES)
def imported(request: pytest.FixtureRequest) -> dict[str, Any]:
    path = FIXTURES / request.param
    state = convert_file(path)
    _, g_ema, d = style_modules(state)
    return {"path": path, "state": state, "G": g_ema, "D": d, "ref": dict(np.load(path.with_suffix(".npz")))}


def test_family_and_config(imported: dict[str, Any]) -> None:
    state, g = imported["state"], imported["G"]
    assert isinstance(g, StyleGAN3Generator)
    assert state["origin"]["family"] == "stylegan3" and state["origin"]["seed_rule"] == "nvlabs"
    assert state["config"]["model"]["arch"] == "stylegan3"
    radial = imported["path"].name.startswith("sg3r")
    assert state["config"]["model"]["style"]["generator"]["synthesis"]["use_radial_filters"] is radial
    # -R: 1x1 convs and 2-D (radial) down-sampling filters in the layers before the critically sampled ones
    layers = [g.synthesis.get_submodule(name) for name in g.synthesis.layer_names]
    assert layers[0].weight.shape[-1] == (1 if radial else 3)
    assert any(layer.down_filter is not None and layer.down_filter.dim() == 2 for layer in layers) is radial


def test_outputs_equal_the_original(imported: dict[str, Any]) -> None:
    g, d, ref = imported["G"], imported["D"], imported["ref"]
    with torch.no_grad():
        ws = g.mapping(torch.from_numpy(ref["z"]))
        np.testing.assert_allclose(ws.numpy(), ref["ws"], rtol=1e-5, atol=1e-5 * np.abs(ref["ws"]).max())
        ws07 = g.truncate(ws, 0.7)
        np.testing.assert_allclose(ws07.numpy(), ref["ws_psi07"], rtol=1e-5, atol=1e-5 * np.abs(ref["ws"]).max())
        ws_ref = torch.from_numpy(ref["ws"])
        cutoff = int(ref["mix_cutoff"])
        mixed = torch.cat([ws_ref[:, :cutoff], ws_ref.roll(-1, 0)[:, cutoff:]], dim=1)
        for key, image in (("img_psi1", g.synthesis(ws_ref)), ("img_psi07", g.synthesis(ws07)),
                           ("img_mix", g.synthesis(mixed))):
            np.testing.assert_allclose(image.numpy(), ref[key], rtol=0, atol=_image_tol(ref[key]), err_msg=key)
        # D: StyleGAN2's discriminator (stylegan3's networks_stylegan2.Discriminator), minibatch-std over the 8
        logits = d(torch.from_numpy(ref["d_in"]))
    np.testing.assert_allclose(logits.numpy(), ref["d_logits"], rtol=0, atol=1e-4 * (1 + np.abs(ref["d_logits"]).max()))


def test_batch_does_not_change_a_sample(imported: dict[str, Any]) -> None:
    """Every sample is computed on its own (the original normalises the styles over the whole batch; ours per
    sample: the demodulation cancels the scale, so the fixture still matches and batch 1 == batch 8 row)."""
    g, ws = imported["G"], torch.from_numpy(imported["ref"]["ws"])
    with torch.no_grad():
        together = g.synthesis(ws)
        alone = torch.cat([g.synthesis(ws[i:i + 1]) for i in (0, 5)])
    # one sample vs. the same sample in a batch: only the conv kernels' blocking differs (summation order)
    torch.testing.assert_close(alone, together[[0, 5]], rtol=0, atol=1e-5 * (1 + float(together.abs().max())))


def test_checkpoint_file_round_trip(imported: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "sg3.pt"
    write_converted(imported["path"], out)
    raw = torch.load(out, weights_only=True)  # our checkpoint: tensors and plain values only
    assert raw["config"]["model"]["arch"] == "stylegan3"
    _, g, _ = style_modules(load_checkpoint(out))
    ws = torch.from_numpy(imported["ref"]["ws"][:2])
    with torch.no_grad():
        torch.testing.assert_close(g.synthesis(ws), imported["G"].synthesis(ws), rtol=0, atol=0)


def test_translation_moves_the_image_by_whole_pixels() -> None:
    """StyleGAN3-T is translation-equivariant (the paper's point): moving the input's coordinate frame by k output
    pixels (the `transform` buffer, as gen_images.py --translate sets it) shifts the image by k pixels, up to the
    aliasing the architecture still lets through and the content that enters at the borders.

    Measured on sg3t-64 (8 seeds; shifts of 3, 4, 8 px in x and y; 8 px from the borders): PSNR 86-96 dB against
    the shifted original (peak = the images' peak-to-peak range). float32 rounding alone is ~120 dB, so this is the
    architecture's own equivariance (aliasing the filters let through; 1 px is a quarter sample of the 16-rate
    input). The threshold 60 dB sits 26 dB under the measurement, and far above what an export that ignored the
    transform would give: the unmoved image scores 32-40 dB against the shifted one (asserted below too, so the
    images have detail enough for the test to see a shift).
    """
    path = FIXTURES / "sg3t-64.pkl"
    _, g, _ = style_modules(convert_file(path))
    ws = torch.from_numpy(np.load(path.with_suffix(".npz"))["ws"])
    resolution, margin = g.resolution, 8
    with torch.no_grad():
        base = g.synthesis(ws)
        peak = float(base.max() - base.min())
        for k, dim in ((3, 3), (4, 2), (8, 3), (8, 2)):
            shift = (k / resolution, 0.0) if dim == 3 else (0.0, k / resolution)
            g.synthesis.input.set_output_transform(translate=shift)
            moved = g.synthesis(ws)
            inner = resolution - 2 * margin - k
            psnr = 10 * np.log10(peak**2 / float(((moved.narrow(dim, margin + k, inner)
                                                    - base.narrow(dim, margin, inner)) ** 2).mean()))
            unmoved = 10 * np.log10(peak**2 / float(((moved.narrow(dim, margin + k, inner)
                                                       - base.narrow(dim, margin + k, inner)) ** 2).mean()))
            assert psnr > 60, f"shift {k} px along dim {dim}: PSNR {psnr:.1f} dB"
            assert unmoved < 50, f"shift {k} px did not move the image (PSNR vs. unmoved {unmoved:.1f} dB)"
        g.synthesis.input.set_output_transform()
        torch.testing.assert_close(g.synthesis.input.transform, torch.eye(3), rtol=0, atol=1e-7)


def test_modified_layer_schedule_is_refused() -> None:
    """A file whose layer attributes differ from what its kwargs define (a fork) is refused by name."""
    snapshot = read_nvlabs_snapshot(FIXTURES / "sg3t-64.pkl")
    layer = snapshot.G_ema.children["synthesis"].children["L4_52_64"]
    layer.state["padding"] = [-5, -10, -5, -10]
    with pytest.raises(CheckpointError, match="L4_52_64 has padding"):
        stylegan3_generator_kwargs(snapshot.G_ema, snapshot.path)
    snapshot.G_ema.state["_init_kwargs"]["mapping_kwargs"] = {"num_layers": 2, "embed_features": 8}
    with pytest.raises(CheckpointError, match="embed_features"):
        stylegan3_generator_kwargs(snapshot.G_ema, snapshot.path)
