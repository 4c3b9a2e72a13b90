"""tgan-sample and tgan-bench as a user runs them: real processes, real files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _subprocess import repo_env
from PIL import Image

from tgan_deploy.runtime import Sampler


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def tgan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy", *args], capture_output=True, text=True,
                          env=repo_env(), timeout=180)


def test_sample_writes_pngs_grid_and_npz(tiny_models: TinyModels, tmp_path: Path) -> None:
    export = str(tiny_models.export)
    assert tgan("sample", export, "--n", "3", "--seed", "10", "--out", str(tmp_path / "pngs")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [  # the bulk writer adds its manifest
        "manifest.json", "seed-000010.png", "seed-000011.png", "seed-000012.png"]
    proc = tgan("sample", export, "--seeds", "10,12", "--out", str(tmp_path / "s.npz"))
    assert proc.returncode == 0, proc.stderr
    data = np.load(tmp_path / "s.npz")
    with Sampler.open(tiny_models.export) as sampler:
        assert np.array_equal(data["images"], sampler.sample(seeds=[10, 12]))
    assert list(data["seeds"]) == [10, 12]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pngs" / "seed-000012.png")), data["images"][1])
    assert tgan("sample", export, "--n", "4", "--out", str(tmp_path / "grid.png")).returncode == 0
    assert Image.open(tmp_path / "grid.png").size == (2 + 2 * 34, 2 + 2 * 34)


def test_sample_from_a_checkpoint_and_a_toy_model(tiny_models: TinyModels, tmp_path: Path) -> None:
    proc = tgan("sample", str(tiny_models.checkpoint), "--n", "2", "--out", str(tmp_path / "ck.npz"))
    assert proc.returncode == 0 and "torch" in proc.stdout, proc.stderr
    assert tgan("sample", str(tiny_models.toy_export), "--n", "50", "--out", str(tmp_path / "toy")).returncode == 0
    assert np.load(tmp_path / "toy" / "points.npz")["points"].shape == (50, 2)
    assert tgan("sample", str(tiny_models.toy_export), "--n", "50", "--out", str(tmp_path / "toy.png")).returncode == 0
    assert Image.open(tmp_path / "toy.png").size == (512, 512)


@pytest.mark.parametrize("args, message", [
    (["MISSING", "--out", "OUT/x.png"], "does not exist"),
    (["EXPORT", "--seeds", "1,-2", "--out", "OUT/x.npz"], "non-negative integer"),
    (["EXPORT", "--seeds", "1,a", "--out", "OUT/x.npz"], "comma-separated integers"),
    (["EXPORT", "--n", "0", "--out", "OUT/x.npz"], "positive integer"),
    (["EXPORT", "--backend", "torch", "--out", "OUT/x.npz"], "torch backend serves checkpoints"),
    (["EXPORT", "--out", "OUT/x.jpg"], "directory, a .npz file or a .png"),
    (["CORRUPT", "--out", "OUT/x.npz"], "corrupt"),
])
def test_sample_errors_are_one_line_and_write_nothing(tiny_models: TinyModels, tmp_path: Path, args: list[str],
                                                      message: str) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage")
    subst = {"MISSING": str(tmp_path / "nope.onnx"), "EXPORT": str(tiny_models.export), "CORRUPT": str(corrupt)}
    argv = [subst.get(a, a.replace("OUT", str(tmp_path / "out"))) for a in args]
    proc = tgan("sample", *argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_bench_reports_table_and_json(tiny_models: TinyModels, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    proc = tgan("bench", str(tiny_models.export), "--batch-sizes", "1,4", "--concurrency", "1,3", "--iters", "5",
                "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "| onnxruntime | 4 | 3 | yes |" in proc.stdout
    data = json.loads(report.read_text())
    assert data["providers"] == ["CPUExecutionProvider"] or data["providers"][0].startswith("CUDA")
    assert [(r["batch"], r["concurrency"]) for r in data["rows"]] == [(1, 1), (4, 1), (1, 3), (4, 3)]
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["images_per_s"] > 0 for r in data["rows"])
    bad = tgan("bench", str(tiny_models.export), "--batch-sizes", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
