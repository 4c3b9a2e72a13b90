"""Our StyleGAN2 (models/stylegan2.py), built from the fixtures the ORIGINAL code bases saved (NVlabs
stylegan2-ada-pytorch, rosinality stylegan2-pytorch) through foreign/convert.py and our checkpoint format, computes
what the originals computed (the .npz beside each file: README in ../shared/fixtures/stylegan).

Tolerances:
- images and logits: |ours - theirs| <= 1e-4 (1 + max|theirs|). Both sides are fp32 chains of ~2 log2(R) + 1
  convolutions with fan-in up to 64 x 9 = 576, summed in another order (NVlabs runs the modulated conv as one
  grouped conv with per-sample weights, rosinality as zero-insertion up-sampling; we modulate the activations,
  demodulate after the conv and use a transposed conv). A K-term fp32 dot product rounds to within
  ~sqrt(K) 2^-24 |x| ~ 1.4e-6 |x| (random-walk error) per layer; demodulation keeps each layer's gain near 1, so
  ~11 layers and the ToRGB skip sum stay within ~2e-5 of the image scale; 1e-4 (1 + max|x|) leaves a 5x margin
  for a machine with other SIMD kernels (AVX2 vs AVX-512 change the blocking, not the bound).
- ws: relative 1e-5 of max|ws|: 2 to 8 FC layers of fan-in <= 192, ~sqrt(192) 2^-24 ~ 8e-7 per layer.
"""

from __future__ import annotations

import copy
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from _stylegan_fixtures import FIXTURES, needs_fixtures

from tgan_deploy.checkpoint import load_checkpoint, load_generator
from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.convert import (
    W_AVG_SAMPLES,
    convert_nvlabs,
    convert_rosinality,
    rosinality_w_avg,
    style_modules,
    write_converted,
)
from tgan_deploy.foreign.nvlabs import read_nvlabs_snapshot
from tgan_deploy.foreign.rosinality import read_rosinality_checkpoint
from tgan_deploy.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, nvlabs_widths

STYLEGAN2_FILES = ("sg2ada-64.pkl", "sg2ada-cond10-32.pkl", "rosinality-64.pt")
IMAGE_RTOL = 1e-4
WS_RTOL = 1e-5


@dataclasses.dataclass
class Imported:
    name: str
    checkpoint: Path
    G: StyleGAN2Generator
    D: StyleGAN2Discriminator
    npz: dict[str, np.ndarray]

    @property
    def rosinality(self) -> bool:
        return self.name.endswith(".pt")

    @property
    def labels(self) -> torch.Tensor | None:
        return torch.from_numpy(self.npz["labels"]) if self.G.num_classes else None

    def ws(self) -> torch.Tensor:
        """The original's untruncated ws of the npz's 8 latents."""
        if self.rosinality:  # rosinality stores w [8, w_dim]; its generator broadcasts it to n_latent layers
            return torch.from_numpy(self.npz["w"])[:, None].repeat(1, int(self.npz["n_latent"]), 1)
        return torch.from_numpy(self.npz["ws"])


@pytest.fixture(scope="module", params=[pytest.param(name, marks=needs_fixtures) for name in STYLEGAN2_FILES])
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Imported:
    """Each fixture converted once, written as our checkpoint, and rebuilt from that file."""
    checkpoint = tmp_path_factory.mktemp("converted") / "model.pt"
    write_converted(FIXTURES / request.param, checkpoint)
    _, g_ema, d = style_modules(load_checkpoint(checkpoint))
    assert isinstance(g_ema, StyleGAN2Generator) and isinstance(d, StyleGAN2Discriminator)
    npz = dict(np.load(FIXTURES / Path(request.param).with_suffix(".npz")))
    return Imported(request.param, checkpoint, g_ema, d, npz)


def assert_image_close(ours: torch.Tensor, theirs: np.ndarray) -> None:
    bound = IMAGE_RTOL * (1 + np.abs(theirs).max())
    err = (ours.numpy() - theirs).__abs__().max()
    assert ours.shape == theirs.shape and err <= bound, f"max error {err:.3g} > {bound:.3g}"


@torch.no_grad()
def test_mapping_equals_the_original(imported: Imported) -> None:
    G, npz = imported.G, imported.npz
    ws = G.mapping(torch.from_numpy(npz["z"]), imported.labels)
    theirs = imported.ws()
    assert ws.shape == (8, G.num_ws, G.w_dim)
    assert (ws - theirs).abs().max() <= WS_RTOL * theirs.abs().max()
    if not imported.rosinality:  # NVlabs' mapping(truncation_psi=0.7) with the file's w_avg
        assert torch.equal(G.w_avg, torch.from_numpy(npz["w_avg"]))
        expected = torch.from_numpy(npz["ws_psi07"])
        assert (G.truncate(ws, 0.7) - expected).abs().max() <= WS_RTOL * expected.abs().max()


@torch.no_grad()
def test_images_equal_the_original(imported: Imported) -> None:
    """psi 1 from the latents (mapping + synthesis), and the synthesis of the original's own ws."""
    G, npz = imported.G, imported.npz
    assert_image_close(G(torch.from_numpy(npz["z"]), imported.labels), npz["img_psi1"])
    assert_image_close(G.synthesis(imported.ws()), npz["img_psi1"])


@torch.no_grad()
def test_truncated_images_equal_the_original(imported: Imported) -> None:
    """psi 0.7 in w: NVlabs with the file's w_avg; rosinality with the mean_latent its script drew (torch's RNG)."""
    G, npz = imported.G, imported.npz
    if imported.rosinality:
        G = copy.deepcopy(G)
        G.mapping.w_avg.copy_(torch.from_numpy(npz["mean_latent"][0]))
    ws = G.mapping(torch.from_numpy(npz["z"]), imported.labels)
    assert_image_close(G.synthesis(G.truncate(ws, 0.7)), npz["img_psi07"])


@torch.no_grad()
def test_style_mixing_equals_the_original(imported: Imported) -> None:
    """Layers [cutoff, num_ws) from the next seed's ws (NVlabs mix_cutoff, rosinality inject_index)."""
    npz, ws = imported.npz, imported.ws()
    cutoff = int(npz["mix_inject_index" if imported.rosinality else "mix_cutoff"])
    mixed = torch.cat([ws[:, :cutoff], ws.roll(-1, 0)[:, cutoff:]], dim=1)
    assert_image_close(imported.G.synthesis(mixed), npz["img_mix"])


@torch.no_grad()
def test_discriminator_equals_the_original(imported: Imported) -> None:
    """D(d_in, c) on the npz's batch of 8 (minibatch std groups it as the original did)."""
    npz = imported.npz
    logits = imported.D(torch.from_numpy(npz["d_in"]), imported.labels)
    assert_image_close(logits, npz["d_logits"])


@torch.no_grad()
def test_batches_1_7_64_give_the_same_rows(imported: Imported) -> None:
    """No batch-sized op: a row's image does not depend on the batch it is in (up to the conv kernels' blocking,
    which may differ by batch size: the same fp32 bound)."""
    G, npz = imported.G, imported.npz
    extra = np.random.default_rng(1).standard_normal((56, G.z_dim)).astype(np.float32)
    z = torch.from_numpy(np.concatenate([npz["z"], extra]))
    labels = torch.arange(64) % G.num_classes if G.num_classes else None
    if labels is not None:
        labels[:8] = imported.labels
    full = G(z, labels)
    assert_image_close(full[:8], npz["img_psi1"])
    assert_image_close(G(z[:7], None if labels is None else labels[:7]), full[:7].numpy())
    for row in (0, 63):
        one = G(z[row:row + 1], None if labels is None else labels[row:row + 1])
        assert_image_close(one, full[row:row + 1].numpy())


def test_checkpoint_round_trips_through_the_weights_only_loader(imported: Imported) -> None:
    raw = torch.load(imported.checkpoint, map_location="cpu", weights_only=True)
    assert raw["format"] == "tgan-deploy-checkpoint/1" and raw["step"] == 0
    assert {"generator", "generator_ema", "critic", "config", "origin", "classes"} <= set(raw)
    model = raw["config"]["model"]
    if not imported.rosinality:  # widths read from the shapes follow the file's channel_base / channel_max
        assert model["style"]["generator"]["widths"] == nvlabs_widths(model["resolution"], 2048, 64)
    assert model["arch"] == "stylegan2" and model["latent_dim"] == imported.G.z_dim
    assert raw["classes"] == [str(i) for i in range(imported.G.num_classes)]
    origin = raw["origin"]
    assert origin["family"] == "stylegan2" and len(origin["source_sha256"]) == 64
    source, rule = ("rosinality-pt", "tgan") if imported.rosinality else ("nvlabs-pkl", "nvlabs")
    assert (origin["source_format"], origin["seed_rule"], origin["pixel_rule"]) == (source, rule, rule)
    # the project's own loader rebuilds the same generator through the model factory
    generator, cfg, _ = load_generator(imported.checkpoint)
    assert cfg.model.arch == "stylegan2" and isinstance(generator, StyleGAN2Generator)
    z = torch.from_numpy(imported.npz["z"][:2])
    labels = None if imported.labels is None else imported.labels[:2]
    with torch.no_grad():
        assert torch.equal(generator(z, labels), imported.G(z, labels))


@needs_fixtures
def test_rosinality_w_avg_is_deterministic_and_the_mapping_mean() -> None:
    """rosinality files track no w_avg: ours is the mean over a fixed-seed batch of 4,096 (convert.W_AVG_RULE).
    Its script's mean_latent is the same statistic from other latents: per dimension the two means differ by
    N(0, 2 s^2 / 4096); 6 standard deviations (s estimated from our batch) is a bound no correct run exceeds."""
    state = convert_rosinality(read_rosinality_checkpoint(FIXTURES / "rosinality-64.pt"))
    _, G, _ = style_modules(state)
    assert isinstance(G, StyleGAN2Generator)
    assert torch.equal(rosinality_w_avg(G), state["generator_ema"]["mapping.w_avg"])
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((W_AVG_SAMPLES, G.z_dim)).astype(np.float32))
    with torch.no_grad():
        s = G.mapping(z)[:, 0].std(dim=0)
    theirs = torch.from_numpy(np.load(FIXTURES / "rosinality-64.npz")["mean_latent"][0])
    assert ((G.w_avg - theirs).abs() <= 6 * s * (2 / W_AVG_SAMPLES) ** 0.5).all()


@needs_fixtures
def test_inconsistent_or_foreign_networks_are_refused_in_one_line() -> None:
    snapshot = read_nvlabs_snapshot(FIXTURES / "sg2ada-cond10-32.pkl")
    assert snapshot.D is not None
    snapshot.D.state["c_dim"] = 5  # a D conditioned on another class count than G
    with pytest.raises(CheckpointError, match="10 classes but the discriminator 5") as err:
        convert_nvlabs(snapshot)
    assert "\n" not in str(err.value)
    ckpt = read_rosinality_checkpoint(FIXTURES / "rosinality-64.pt")
    ckpt.g_ema["convs.8.conv.weight"] = torch.zeros(1, 64, 64, 3, 3)  # a layer StyleGAN2 at 64 px does not have
    with pytest.raises(CheckpointError, match="rosinality's StyleGAN2 layout"):
        convert_rosinality(ckpt)
    snapshot = read_nvlabs_snapshot(FIXTURES / "sg2ada-64.pkl")
    del snapshot.G_ema.state["_modules"]["mapping"]
    with pytest.raises(CheckpointError, match="has no 'mapping' module"):
        convert_nvlabs(snapshot)


@needs_fixtures
def test_converted_dict_holds_only_weights_only_types() -> None:
    """No numpy scalar or EasyDict from the init kwargs leaks into the config (weights_only would refuse it)."""
    state = convert_nvlabs(read_nvlabs_snapshot(FIXTURES / "sg2ada-64.pkl"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["config"] == state["config"]


def test_fresh_models_have_the_contract_interface_and_train() -> None:
    """Built from kwargs alone (the trainer's start): the contract's attributes, and every parameter of G and D
    gets a finite gradient through D(G(z, label), label)."""
    G = StyleGAN2Generator(z_dim=8, w_dim=6, resolution=8, channels=3, widths=[8, 4], num_classes=3)
    D = StyleGAN2Discriminator(resolution=8, channels=3, widths=[8, 4], num_classes=3, mbstd_group_size=2)
    assert (G.z_dim, G.w_dim, G.num_ws, G.num_classes, G.resolution, G.channels) == (8, 6, 4, 3, 8, 3)
    assert G.w_avg.shape == (6,)
    z, label = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    assert G.mapping(z, label).shape == (4, G.num_ws, 6)
    D(G(z, label), label).sum().backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
