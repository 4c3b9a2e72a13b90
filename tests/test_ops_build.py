"""Build cache of the fused pair-score extension: reuse without recompiling, rebuild on edit, concurrent
builds, and the compile-only CUDA check failing on a real compiler error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _subprocess import repo_env

from tgan_deploy.ops import build

SOURCES = ("pairing.h", "pairing.cpp", "pairing.cu")

LOAD_AND_RUN = (
    "import sys, torch\n"
    "from pathlib import Path\n"
    "from tgan_deploy.ops.build import load_pairing\n"
    "src = Path(sys.argv[1]) if len(sys.argv) > 1 else None\n"
    "b = load_pairing('cpu', src) if src else load_pairing('cpu')\n"
    "a, c, v = torch.randn(3, 5), torch.randn(2, 5), torch.randn(5)\n"
    "s_pos, _ = b.module.forward(a, c, v, v, torch.empty(0, 2, dtype=torch.int64), 1, 0.3)\n"
    "assert s_pos.shape == (6,)\n"
    "print(b.built, b.so_path)\n"
)


def _copy_sources(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in SOURCES:
        shutil.copy(build.SOURCE_DIR / name, dest / name)
    return dest


def test_second_load_reuses_the_cached_build_without_compiling() -> None:
    first = build.load_pairing("cpu")  # builds once per machine, else already cached
    stat = first.so_path.stat()
    ninja_log = first.so_path.parent / ".ninja_log"
    log_before = ninja_log.stat().st_mtime_ns if ninja_log.exists() else None
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_RUN], env=repo_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    built, so_path = proc.stdout.split()
    assert built == "False"  # imported from the cache: no build step ran
    assert Path(so_path) == first.so_path
    after = first.so_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    assert (ninja_log.stat().st_mtime_ns if ninja_log.exists() else None) == log_before
    assert build.load_pairing("cpu") is first  # in-process: memoised


def test_cache_key_follows_the_sources(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path / "src")
    key = build.build_key("cpu", src)
    assert key == build.build_key("cpu", build.SOURCE_DIR)  # same bytes, same key
    for name, changes_cpu_key in (("pairing.h", True), ("pairing.cpp", True), ("pairing.cu", False)):
        path = src / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n// an edited comment\n")
        assert (build.build_key("cpu", src) != key) == changes_cpu_key, name
        path.write_bytes(original)


@pytest.mark.slow
def test_edited_source_rebuilds_once_when_two_processes_build_at_once(tmp_path: Path) -> None:
    """Like two DDP ranks after a killed build: both succeed, exactly one compiles, both load the same build."""
    src = _copy_sources(tmp_path / "src")
    (src / "pairing.cpp").write_text((src / "pairing.cpp").read_text() + "\n// edited: must rebuild\n")
    env = repo_env(TGAN_DEPLOY_CACHE=str(tmp_path / "cache"))  # builds go to its ext/
    # a build killed earlier (kill -9) left torch's build baton behind: it must not make the builders wait forever
    stale = tmp_path / "cache" / "ext" / f"tgan_pairing_cpu_{build.build_key('cpu', src)}" / "lock"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_AND_RUN, str(src)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [out.split() for out, _ in outs]
    assert sorted(r[0] for r in results) == ["False", "True"]
    assert results[0][1] == results[1][1]
    so_path = Path(results[0][1])
    assert so_path.is_relative_to(tmp_path / "cache")
    assert build.build_key("cpu", src) in so_path.name
    assert build.build_key("cpu", src) != build.build_key("cpu")


@pytest.mark.slow
@pytest.mark.skipif(build._cuda_home() is None, reason="needs nvcc")
def test_compile_check_fails_with_the_compiler_message(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path / "src")
    cu = src / "pairing.cu"
    planted = "const acc_t bias = b1_tile[kk] + undeclared"
    cu.write_text(cu.read_text().replace("const acc_t bias = b1_tile[kk]", planted))
    proc = subprocess.run([sys.executable, "-m", "tgan_deploy.ops.build", "--compile-check", "--source-dir", str(src)],
                          env=repo_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "undeclared" in proc.stderr and "nvcc failed on pairing.cu" in proc.stderr
