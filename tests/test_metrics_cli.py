"""tgan-eval in a real subprocess on small checkpoints; evaluate() on 2-D mixture generators."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _subprocess import repo_env

from tgan_deploy.checkpoint import save_checkpoint
from tgan_deploy.config import TrainConfig
from tgan_deploy.data.toy import MIXTURES
from tgan_deploy.errors import TganError
from tgan_deploy.metrics.evaluate import evaluate, generate
from tgan_deploy.models import build_generator
from tgan_deploy.run_layout import step_file_name


def run_eval(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = repo_env()
    if cache is not None:
        env["TGAN_DEPLOY_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "tgan_deploy", "eval", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def toy_config() -> TrainConfig:
    return TrainConfig.from_dict({"model": {"arch": "mlp", "latent_dim": 2, "toy_hidden": 16, "toy_depth": 2},
                                  "data": {"source": "builtin:ring8"}})


def write_checkpoint(cfg: TrainConfig, run_dir: Path) -> Path:
    torch.manual_seed(0)
    path = run_dir / "checkpoints" / step_file_name(7)
    save_checkpoint(path, {"config": cfg.to_dict(), "step": 7, "generator": build_generator(cfg.model).state_dict()})
    return path


def test_cli_scores_a_toy_run_dir_and_writes_json(tmp_path: Path) -> None:
    write_checkpoint(toy_config(), tmp_path / "run")
    out = tmp_path / "eval.json"
    proc = run_eval(str(tmp_path / "run"), "--n", "300", "--seed", "5", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "modes covered" in proc.stdout and "reverse KL" in proc.stdout and "step 7" in proc.stdout
    result = json.loads(out.read_text())
    assert (result["kind"], result["n"], result["seed"]) == ("toy2d", 300, 5)
    assert set(result["metrics"]) == {"modes", "hq_percent", "reverse_kl", "fd"}
    assert len(result["details"]["per_mode_counts"]) == 8
    assert result["checkpoint"]["step"] == 7 and result["checkpoint"]["weights"] == "raw"  # no EMA copy saved


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/run"], "does not exist"),
    (["{ckpt}", "--n", "0"], "--n"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    ckpt = write_checkpoint(toy_config(), tmp_path / "run")
    proc = run_eval(*[a.format(ckpt=ckpt) for a in args], "--json", str(tmp_path / "x.json"))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_unsupported_data_names_the_fix(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"model": {"resolution": 32, "base_channels": 8}, "data": {"source": "some/folder"}})
    ckpt = write_checkpoint(cfg, tmp_path / "run")
    proc = run_eval(str(ckpt), "--n", "20")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--features PATH" in lines[0]


def test_evaluate_is_reproducible_and_restores_training_mode() -> None:
    cfg = toy_config()
    g = build_generator(cfg.model).train()
    a = evaluate(g, cfg, n=200, seed=3)
    b = evaluate(g, cfg, n=200, seed=3)
    assert a == b and g.training
    assert a["kind"] == "toy2d" and set(a["metrics"]) == {"modes", "hq_percent", "reverse_kl", "fd"}


def test_evaluate_of_a_generator_that_reproduces_the_mixture_is_perfect() -> None:
    mixture = MIXTURES["grid25"]

    class Perfect(torch.nn.Module):
        """Maps a latent to a mixture sample: one centre chosen by z's first coordinate, noise from the rest."""

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(1))
            self.centres = torch.tensor(mixture.centres, dtype=torch.float32)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            u = torch.special.ndtr(z[:, 0])  # uniform in (0, 1)
            idx = (u * len(self.centres)).long().clamp(max=len(self.centres) - 1)
            return self.centres[idx] + mixture.std * z[:, 1:3]

    cfg = TrainConfig.from_dict({"model": {"arch": "mlp", "latent_dim": 3}, "data": {"source": "builtin:grid25"}})
    m = evaluate(Perfect(), cfg)["metrics"]
    assert m["modes"] == 25 and m["hq_percent"] > 98 and m["reverse_kl"] < 0.02


def test_generate_uses_the_seed_contract() -> None:
    from tgan_deploy.runtime.latents import latents

    g = torch.nn.Linear(4, 4)
    torch.nn.init.eye_(g.weight)
    torch.nn.init.zeros_(g.bias)
    out = generate(g, 4, n=3, seed=10)
    assert torch.equal(out, torch.from_numpy(latents([10, 11, 12], 4)))
    with pytest.raises(TganError):
        generate(g, 4, n=0, seed=0)
    assert not math.isnan(float(out.sum()))
