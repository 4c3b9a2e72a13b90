"""Lazy build and cache of the fused pair-head extension (pairing.h/.cpp/.cu), and a compile-only CUDA check.

`load_pairing("cpu" | "cuda")` builds on first use with torch.utils.cpp_extension.load and imports the
module. Builds live in a cache directory named by a hash of everything that changes the binary: the
sources, the flags, torch and Python versions, the CPU model (the CPU build uses -march=native) and, for
CUDA, the GPU architecture. An unchanged build is imported straight from its .so (no ninja, no compiler);
an edited source gets a new key and a new build. A file lock per key makes concurrent builds (DDP ranks)
safe: one process builds, the others wait and import its result.

    builds live in ext/ of the cache root (tgan_deploy/cache.py: $TGAN_DEPLOY_CACHE, default ~/.cache/tgan-deploy)
    TGAN_DEPLOY_EXT_VERBOSE  1: print the compiler's full output while building

`python -m tgan_deploy.ops.build --compile-check` compiles pairing.cu with nvcc (compile only, against the
installed torch headers: no GPU or CUDA torch needed), checks pairing.cpp's CUDA dispatch path with the
host compiler, and builds the CPU extension. Exits non-zero with the compiler's message on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

from tgan_deploy import cache

SOURCE_DIR = Path(__file__).resolve().parent
CPU_SOURCES = ("pairing.h", "pairing.cpp")
CUDA_SOURCES = (*CPU_SOURCES, "pairing.cu")
VERBOSE_ENV = "TGAN_DEPLOY_EXT_VERBOSE"
# -O3 and -march=native let the compiler vectorise the loops over H; -fopenmp makes ATen's parallel_for
# (header code) run on torch's own OpenMP runtime, so torch.set_num_threads applies to the kernel.
CPU_CFLAGS = ("-O3", "-march=native", "-fopenmp")
CUDA_CFLAGS = ("-O3", "-fopenmp", "-DPAIRING_WITH_CUDA")
NVCC_FLAGS = ("-O3", "-DPAIRING_WITH_CUDA", "-lineinfo")
LDFLAGS = ("-fopenmp",)
_DONE_MARKER = "build-complete"


@dataclass(frozen=True)
class Built:
    """A loaded extension and where it came from; `built` is False when the cache was used as is."""

    module: types.ModuleType
    so_path: Path
    key: str
    built: bool


_LOADED: dict[tuple[str, Path, Path], Built] = {}


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _cpu_id() -> str:
    """The CPU model and feature flags: a -march=native binary is only reused on the same kind of CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [ln for ln in lines if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(wanted) or platform.machine()


def _cuda_arch() -> str:
    import torch

    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    major, minor = torch.cuda.get_device_capability()
    return f"{major}.{minor}"


def build_key(kind: str, source_dir: Path = SOURCE_DIR) -> str:
    """Hash of everything that changes the compiled extension (see the module docstring)."""
    import torch

    digest = hashlib.sha256()
    sources = CUDA_SOURCES if kind == "cuda" else CPU_SOURCES
    for name in sources:
        digest.update(name.encode() + b"\0" + (source_dir / name).read_bytes() + b"\0")
    flags = (CUDA_CFLAGS + NVCC_FLAGS) if kind == "cuda" else CPU_CFLAGS
    parts = [kind, " ".join(flags), torch.__version__, sys.version, platform.machine(), _cpu_id()]
    if kind == "cuda":
        parts += [str(torch.version.cuda), _cuda_arch()]
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()[:20]


def _import_so(name: str, so_path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, so_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the extension at {so_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def builds_dir() -> Path:
    """Where builds live: ext/ of the package's cache root."""
    return cache.cache_dir("ext")


def load_pairing(kind: str, source_dir: Path = SOURCE_DIR, cache_dir: Path | None = None) -> Built:
    """Import the "cpu" or "cuda" pairing extension, building it first if its cache entry is missing."""
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"kind must be 'cpu' or 'cuda', got {kind!r}")
    root = cache_dir or builds_dir()
    memo = (kind, Path(source_dir), Path(root))
    if memo in _LOADED:
        return _LOADED[memo]
    import torch  # noqa: F401  (libtorch must be loaded before the extension's .so)
    from filelock import FileLock  # a torch dependency

    key = build_key(kind, Path(source_dir))
    name = f"tgan_pairing_{kind}_{key}"  # a unique module name per build: two builds can live in one process
    build_dir = Path(root) / name
    so_path = build_dir / f"{name}.so"
    marker = build_dir / _DONE_MARKER
    built = False
    if not marker.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(root) / f"{name}.lock")):
            if not marker.exists():  # another process may have finished the build while we waited
                # Holding our lock, nobody else builds this key: a torch build baton left here is from a killed
                # build and would make torch wait for it forever.
                (build_dir / "lock").unlink(missing_ok=True)
                _compile(kind, name, Path(source_dir), build_dir)
                marker.write_text(name + "\n")  # written only after a complete, importable build
                built = True
    result = Built(_import_so(name, so_path), so_path, key, built)
    _LOADED[memo] = result
    return result


def _compile(kind: str, name: str, source_dir: Path, build_dir: Path) -> None:
    from torch.utils.cpp_extension import load

    names = CUDA_SOURCES if kind == "cuda" else CPU_SOURCES
    sources = [str(source_dir / s) for s in names if s.endswith((".cpp", ".cu"))]
    env_arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if kind == "cuda" and not env_arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = _cuda_arch()  # build for this GPU only (matches the cache key)
    try:
        load(
            name=name, sources=sources, build_directory=str(build_dir), verbose=verbose(),
            extra_cflags=list(CUDA_CFLAGS if kind == "cuda" else CPU_CFLAGS),
            extra_cuda_cflags=list(NVCC_FLAGS) if kind == "cuda" else None,
            extra_ldflags=list(LDFLAGS), extra_include_paths=[str(source_dir)],
            with_cuda=kind == "cuda", is_python_module=True,
        )
    finally:
        if kind == "cuda" and not env_arch:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)


# ---------------------------------------------------------------- compile-only check (no GPU needed)

def _torch_includes() -> list[str]:
    from torch.utils.cpp_extension import include_paths

    return [*include_paths(), sysconfig.get_paths()["include"]]


def _cuda_home() -> Path | None:
    """The CUDA toolkit root: the first of $CUDA_HOME, $CUDA_PATH, /usr/local/cuda and nvcc's grandparent
    that has both bin/nvcc and include/cuda_runtime.h (nvcc on PATH may be a wrapper script)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "nvcc").exists() \
                and (Path(candidate) / "include" / "cuda_runtime.h").exists():
            return Path(candidate)
    return None


def _run(cmd: list[str]) -> bool:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        return False
    return True


def compile_check(arch: str = "90", source_dir: Path = SOURCE_DIR) -> int:
    """nvcc -c pairing.cu, g++ -fsyntax-only pairing.cpp (CUDA path), then build the CPU extension."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    cuda_home = _cuda_home()
    if cuda_home is None:
        print("compile-check: nvcc not found (put CUDA's bin/ on PATH or set CUDA_HOME)", file=sys.stderr)
        return 2
    includes = [arg for p in _torch_includes() for arg in ("-isystem", p)]
    defines = ["-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE", "-DTORCH_EXTENSION_NAME=tgan_pairing_check",
               "-DTORCH_API_INCLUDE_EXTENSION_H", "-D_GLIBCXX_USE_CXX11_ABI=1", "-DPAIRING_WITH_CUDA"]
    with tempfile.TemporaryDirectory(prefix="tgan-cuda-check-") as tmp:
        nvcc = [str(cuda_home / "bin" / "nvcc"), "-c", str(source_dir / "pairing.cu"), "-o", f"{tmp}/pairing.o",
                "-std=c++20", *includes, *defines, *COMMON_NVCC_FLAGS,
                f"-gencode=arch=compute_{arch},code=sm_{arch}", "--compiler-options", "-fPIC", "-O3"]
        if not _run(nvcc):
            print("compile-check: nvcc failed on pairing.cu (message above)", file=sys.stderr)
            return 1
        cxx = [os.environ.get("CXX", "g++"), "-fsyntax-only", "-std=c++20", str(source_dir / "pairing.cpp"),
               *includes, "-isystem", str(cuda_home / "include"), *defines, "-fopenmp"]
        if not _run(cxx):
            print("compile-check: the host compiler failed on pairing.cpp's CUDA path (message above)",
                  file=sys.stderr)
            return 1
    try:
        built = load_pairing("cpu", source_dir)
    except Exception as exc:  # the compiler's output is in the exception text
        print(f"compile-check: building the CPU extension failed:\n{exc}", file=sys.stderr)
        return 1
    print(f"compile-check: ok (pairing.cu for sm_{arch}; CPU extension at {built.so_path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgan_deploy.ops.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compile-check", action="store_true",
                        help="compile-only nvcc check of pairing.cu plus a build of the CPU extension")
    parser.add_argument("--arch", default="90", help="compute capability for --compile-check (default 90: H100)")
    parser.add_argument("--kind", choices=("cpu", "cuda"), default=None,
                        help="build (or reuse from the cache) this extension and print where it lives")
    parser.add_argument("--source-dir", type=Path, default=SOURCE_DIR,
                        help="folder holding pairing.h/.cpp/.cu (default: the installed package's)")
    args = parser.parse_args(argv)
    if args.compile_check:
        return compile_check(args.arch, args.source_dir)
    if args.kind:
        built = load_pairing(args.kind, args.source_dir)
        print(f"{args.kind} extension: {built.so_path} ({'built now' if built.built else 'from cache'})")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
