"""The runtime serves ONNX models with the base install alone: no torch, no TensorRT.

How it is proven: a fresh interpreter (subprocess) sets sys.modules["torch"] = None (and the same for
tensorrt) before anything else, which makes every `import torch` raise ImportError exactly as if
torch were not installed. Building a torch-free venv would need network access or wheels at test
time; the blocker is hermetic, fast, and fails loudly if any runtime code path imports torch.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from _runtime_factories import TinyModels, shared_tiny_models
from _subprocess import BLOCK_TORCH as BLOCK
from _subprocess import repo_env


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          env=repo_env(), timeout=120)


def test_runtime_serves_onnx_without_torch(tiny_models: TinyModels, tmp_path: str) -> None:
    proc = run_blocked(f"""
        import numpy as np
        import tgan_deploy.runtime as rt
        with rt.Sampler.open({str(tiny_models.export)!r}) as s:
            images = s.sample(n=5, seed=2)
            with rt.BatchingSampler(s) as b:
                same = b.sample([2, 3, 4, 5, 6], timeout=60)
        assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
        assert np.array_equal(images, same)
        np.save({str(tmp_path)!r} + '/images.npy', images)
        assert sys.modules['torch'] is None and sys.modules['tensorrt'] is None  # never really imported
        try:
            rt.Sampler.open({str(tiny_models.checkpoint)!r})
        except rt.BackendUnavailableError as exc:
            print('MISSING:', exc)
        print('OK')
    """)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert "MISSING: torch is not installed (needed for the torch backend): pip install 'tgan-deploy[train]'" \
        in proc.stdout


def test_sample_command_runs_without_torch(tiny_models: TinyModels, tmp_path: str) -> None:
    out = f"{tmp_path}/grid.png"
    proc = run_blocked(f"""
        from tgan_deploy.cli import main
        main(['sample', {str(tiny_models.export)!r}, '--n', '4', '--out', {out!r}])
    """)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 images" in proc.stdout
    walk = run_blocked(f"""
        from tgan_deploy.cli import main
        main(['sample', {str(tiny_models.export)!r}, '--walk', '1,2', '--frames', '3', '--truncation', '0.7',
              '--out', {out.replace('grid.png', 'walk.gif')!r}])
    """)
    assert walk.returncode == 0, walk.stderr
    assert "wrote a 3-frame walk" in walk.stdout


def test_bulk_writer_and_verify_run_without_torch(tiny_models: TinyModels, tmp_path: str) -> None:
    out = f"{tmp_path}/shards"
    proc = run_blocked(f"""
        import click
        from tgan_deploy.cli import main
        for args in (['sample', {str(tiny_models.export)!r}, '--n', '6', '--format', 'tar', '--out', {out!r}],
                     ['sample', '--verify', {out!r}]):
            try:
                main(args)
            except SystemExit as exit:
                assert exit.code == 0, exit.code
    """)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 6 images" in proc.stdout and "complete, no overlap" in proc.stdout


def test_importing_the_runtime_does_not_import_torch() -> None:
    code = ("import sys, tgan_deploy.runtime, tgan_deploy.runtime.cli, tgan_deploy.runtime.batching\n"
            "import tgan_deploy.runtime.walk, tgan_deploy.runtime.walk_cli, tgan_deploy.runtime.animation\n"
            "import tgan_deploy.runtime.bulk, tgan_deploy.runtime.bulk.console, tgan_deploy.runtime.raydata\n"
            "import tgan_deploy.run_layout\n"
            "heavy = [m for m in ('torch', 'tensorrt', 'onnx') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_serve_loads_and_answers_without_torch(tiny_models: TinyModels) -> None:
    proc = run_blocked(f"""
        import asyncio
        from pathlib import Path
        from tgan_deploy.serve import app, cli, oip, routes_images, routes_oip  # every serve module imports
        from tgan_deploy.serve.registry import Registry, SamplerOptions
        registry = Registry({{'tiny': Path({str(tiny_models.export)!r})}}, SamplerOptions(threads=1))
        registry.load()
        model = registry.get('tiny')
        images = model.batcher.sample([1, 2], timeout=60)
        assert images.shape == (2, 32, 32, 3) and registry.ready
        registry.close()
        assert sys.modules['torch'] is None and sys.modules['tensorrt'] is None
        print('OK')
    """)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_serve_without_its_extra_names_the_extra(tiny_models: TinyModels) -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys\nsys.modules['uvicorn'] = None\n"
                           "from tgan_deploy.serve.cli import main\nmain(prog_name='tgan-serve')",
                           str(tiny_models.export)],
                          capture_output=True, text=True, env=repo_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("error: tgan-serve needs the [serve] extra: uvicorn is not installed (needed for "
                                   "tgan-serve): pip install 'tgan-deploy[serve]'")
