"""The package as users install it: `python -m build`, then the wheel in a fresh virtual environment.

Everything else in the suite runs from the editable checkout, which hides package data left out of the
wheel (the service page, the CUDA sources) and runtime imports that pull in torch. Here the wheel is built
(sdist first, the wheel from the sdist, as `python -m build` does), installed with `[serve]` into a venv
that has no torch, and its console scripts are run from outside the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _serve import running_server
from _subprocess import REPO_ROOT
from PIL import Image

# Read at run time from the installed package (not importable Python): each must be inside the wheel.
PACKAGE_DATA = ["tgan_deploy/serve/static/index.html", "tgan_deploy/ops/pairing.cu", "tgan_deploy/ops/pairing.cpp",
                "tgan_deploy/ops/pairing.h"]


def build(*args: str, outdir: Path) -> str:
    """`python -m build ARGS` of this checkout into `outdir`; its output (stdout and stderr)."""
    # --no-isolation: the dev environment's setuptools (>= 77, like the build-system table asks) instead of a
    # download per run; the build is otherwise what a release makes.
    # PYTHONDONTWRITEBYTECODE (set on some CI machines) makes setuptools warn that it skips byte-compiling.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", *args, "--outdir", str(outdir),
                           str(REPO_ROOT)], capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the wheel built from the sdist, the build's output)."""
    out = tmp_path_factory.mktemp("dist")
    output = build(outdir=out)
    (wheel,) = out.glob("*.whl")
    assert len(list(out.glob("*.tar.gz"))) == 1, output[-2000:]
    return wheel, output


@pytest.fixture(scope="module")
def installed(dist: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(bin folder, environment) of a fresh venv with `tgan-deploy[serve]` installed from the wheel, no torch."""
    wheel, _ = dist
    root = tmp_path_factory.mktemp("wheel-venv")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-c", str(REPO_ROOT / "constraints.txt"), f"{wheel}[serve]"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return bin_dir, env


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def run(installed: tuple[Path, dict[str, str]], script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir, env = installed
    return subprocess.run([str(bin_dir / script), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_build_has_no_warnings(dist: tuple[Path, str]) -> None:
    _, output = dist
    noisy = [line for line in output.splitlines() if "warning" in line.lower() or line.strip() == "!!"]
    assert not noisy, "\n".join(noisy)


def test_the_sdist_builds_the_same_wheel(dist: tuple[Path, str], tmp_path: Path) -> None:
    from_sdist, _ = dist
    build("--wheel", outdir=tmp_path)  # straight from the checkout
    (from_tree,) = tmp_path.glob("*.whl")
    names = [sorted(zipfile.ZipFile(path).namelist()) for path in (from_sdist, from_tree)]
    assert names[0] == names[1]
    assert set(PACKAGE_DATA) <= set(names[0])
    assert not [name for name in names[0] if name.startswith("tests/") or "__pycache__" in name]


def test_the_base_install_has_no_torch(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    done = run(installed, "python", "-c", "import tgan_deploy.runtime, tgan_deploy.serve.app, torch", cwd=tmp_path)
    assert "No module named 'torch'" in done.stderr


def test_tgan_sample_writes_a_grid(installed: tuple[Path, dict[str, str]], tiny: TinyModels, tmp_path: Path) -> None:
    done = run(installed, "tgan-sample", str(tiny.export), "--n", "4", "--seed", "3", "--out", "grid.png",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] >= 2 * 32 and np.asarray(grid).std() > 0


@pytest.mark.parametrize("script", ["tgan-train", "tgan-export", "tgan-eval"])
def test_commands_needing_torch_refuse_in_one_line(installed: tuple[Path, dict[str, str]], script: str,
                                                   tmp_path: Path) -> None:
    done = run(installed, script, "--help", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {script} needs the [train] extra: torch is not installed")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "pip install 'tgan-deploy[train]'" in done.stderr
    grouped = run(installed, "tgan", script.removeprefix("tgan-"), cwd=tmp_path)  # `tgan train` says the same
    assert grouped.returncode == 2 and grouped.stderr.count("\n") == 1
    assert "needs the [train] extra" in grouped.stderr


def test_tgan_serve_answers(installed: tuple[Path, dict[str, str]], tiny: TinyModels, tmp_path: Path) -> None:
    bin_dir, env = installed
    with running_server(tiny.export, "--name", "tiny", log=tmp_path / "serve.log",
                        command=[str(bin_dir / "tgan-serve")], env=env) as (url, _):
        page = httpx.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        png = httpx.get(f"{url}/v1/models/tiny/images/5.png", timeout=30)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
