"""One engine builder for TensorRT (`tensorrt`, 10.x and 11) and TensorRT-RTX (`tensorrt_rtx`).

Both packages expose the same Python API; the module is imported as `trt`. Every network is built
strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED): the ONNX file's types decide the
precision, so an fp16 engine comes from the fp16 ONNX and no BuilderFlag.FP16 is needed (TensorRT 11
removed it; 10.x deprecated it in 10.12). TF32 is cleared so fp32 engines compute in strict fp32.

Type checking: mypy checks this module against `tensorrt-stubs` (TensorRT 10.13 API) through the
`if TYPE_CHECKING: import tensorrt as trt` branches; at run time `trt` is whichever package the target
names. tests/test_export_tensorrt_names.py checks every TensorRT name used here against the TensorRT 11
bindings' name list. Convention for that check: TensorRT objects live in variables named trt, logger,
builder, network, parser, config, profile, cache, runtime, engine, context.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from tgan_deploy._extras import INSTALL_HINT, require
from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME
from tgan_deploy.errors import MissingExtraError, TganError
from tgan_deploy.io import write_bytes_atomic

TARGETS = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}  # target -> Python package
DEFAULT_OPT_LEVEL = 3
MIN_RTX_SM = 80  # TensorRT's own default builder optimisation level (0..5)


class EngineUnavailable(TganError):
    """The requested engine cannot be built here (package or GPU missing); the ONNX artefacts still are."""

    exit_code = 3


class EngineBuildError(TganError):
    """TensorRT could not parse or build the ONNX graph."""


@dataclasses.dataclass
class EngineBuild:
    target: str
    plan: Path
    version: str
    compute: str  # e.g. "sm90", or the RTX targets "sm75-sm80-sm86-sm89-sm120"
    seconds: float
    size_bytes: int
    timing_cache: Path | None


def load_module(target: str) -> ModuleType:
    """Import the target's package; one clear line (with what to install) when it is missing or broken."""
    package = TARGETS[target]
    try:
        module = require(package, f"--{'trt' if target == 'tensorrt' else 'trt-rtx'} engines")
    except MissingExtraError as exc:
        raise EngineUnavailable(str(exc)) from exc
    except Exception as exc:  # the bindings wheel without its CUDA libraries raises OSError and the like
        raise EngineUnavailable(f"{package} is installed but cannot be imported ({str(exc)[:120]}): reinstall "
                                "it with its libraries, e.g. pip install 'tgan-deploy[tensorrt]'") from exc
    if not hasattr(module, "Builder"):  # e.g. an empty `tensorrt/` namespace folder left by a stubs package
        raise EngineUnavailable(f"{package} is not installed (only an empty {package} folder was found): "
                                f"{INSTALL_HINT[package]}")
    return module


def gpu_compute_capability() -> str:
    """`smXY` of GPU 0; EngineUnavailable without a CUDA GPU (a TensorRT engine is built for the GPU it runs on)."""
    import torch

    if not torch.cuda.is_available():
        raise EngineUnavailable("--trt needs an NVIDIA GPU with CUDA (torch.cuda.is_available() is False): build "
                                "the engine on the machine that will run it (pip install 'tgan-deploy[tensorrt]')")
    major, minor = torch.cuda.get_device_capability(0)
    return f"sm{major}{minor}"


def engine_file_name(stem: str, target: str, version: str, compute: str) -> str:
    """E.g. generator.fp16.trt-10.13.0-sm90.plan: an engine only runs where its version and GPU match."""
    tag = "trt" if target == "tensorrt" else "trt-rtx"
    return f"{stem}.{tag}-{version}-{compute}.plan"


def _collecting_logger(trt: ModuleType) -> object:
    """A logger that keeps TensorRT's messages (shown on failure) instead of printing them: a builder on a
    machine without a GPU logs harmless CUDA errors."""

    class CollectingLogger(trt.ILogger):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: object, msg: str) -> None:
            self.messages.append(msg)

    return CollectingLogger()


def build_engine(onnx_path: Path, out_dir: Path, stem: str, *, target: str, batch_profile: tuple[int, int, int],
                 latent_dim: int = 0, conditional: bool = False, opt_level: int = DEFAULT_OPT_LEVEL,
                 cache_from: Path | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None
                 ) -> EngineBuild:
    """Parse `onnx_path`, build a serialized engine with one dynamic-batch profile, write it into `out_dir`.
    `conditional`: the graph has the int64 `label` [batch] input too, profiled over the same batch range.
    `input_shapes`: the inputs' shapes without the batch axis, for graphs whose inputs are not the generator's
    (`z` [latent_dim] [, `label` []]), e.g. a synthesis graph's `ws` [num_ws, w_dim].

    TensorRT: built for GPU 0; its timing cache is read from `cache_from` (or `out_dir`) when present and
    written back beside the engine, so a rebuild reuses measured tactics. TensorRT-RTX: built ahead of time
    for every compute capability the package supports (no GPU needed; its timing cache is a no-op, so none
    is kept). Raises EngineUnavailable / EngineBuildError.
    """
    module = load_module(target)
    if TYPE_CHECKING:
        import tensorrt as trt
    else:
        trt = module
    rtx = target == "tensorrt-rtx"
    gpu = "" if rtx else gpu_compute_capability()  # TensorRT builds for the GPU it runs on: fail early without one
    version = str(trt.__version__)
    logger = _collecting_logger(module)
    try:
        builder = trt.Builder(logger)  # type: ignore[arg-type]
    except Exception as exc:  # full TensorRT without a usable GPU fails here with a CUDA init error
        raise EngineUnavailable(f"{target} cannot create a builder ({str(exc)[:120]}): it needs a working "
                                "NVIDIA driver and GPU") from exc
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)  # type: ignore[arg-type]
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise EngineBuildError(f"{target} cannot parse {onnx_path.name}: {errors[:300]}")
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # strict fp32 (TF32 is on by default and breaks 1e-4 parity)
    config.builder_optimization_level = opt_level
    profile = builder.create_optimization_profile()
    lo, opt, hi = batch_profile
    if input_shapes is None:
        input_shapes = {INPUT_NAME: (latent_dim,), **({LABEL_NAME: ()} if conditional else {})}
    for name, dims in input_shapes.items():
        profile.set_shape(name, trt.Dims([lo, *dims]), trt.Dims([opt, *dims]), trt.Dims([hi, *dims]))
    config.add_optimization_profile(profile)
    cache_file: Path | None = None
    if rtx:
        compute = _set_rtx_compute_targets(module, config)
    else:
        compute = gpu
        cache_file = out_dir / f"{target}.timing-cache"
        cache_src = cache_from if cache_from is not None and cache_from.is_file() else cache_file
        cache = config.create_timing_cache(cache_src.read_bytes() if cache_src.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU/version is skipped
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        detail = "; ".join(getattr(logger, "messages", []))[-300:]
        raise EngineBuildError(f"{target} failed to build an engine from {onnx_path.name} (batch profile "
                               f"{lo}/{opt}/{hi}, optimisation level {opt_level}): {detail}")
    plan = out_dir / engine_file_name(stem, target, version, compute)
    data = bytes(memoryview(serialized))
    write_bytes_atomic(plan, data)
    if cache_file is not None:
        write_bytes_atomic(cache_file, bytes(memoryview(config.get_timing_cache().serialize())))
    return EngineBuild(target, plan, version, compute, seconds, len(data), cache_file)


def _set_rtx_compute_targets(module: ModuleType, config: object) -> str:
    """Ask TensorRT-RTX for every compute capability it knows from Ampere on; return them as a file-name tag.

    Turing (SM75) is left out: measured with TensorRT-RTX 1.7, it refuses fp32 GEMM ("FP32 GEMM is not
    supported" for the generator's Linear layer), so an fp32 engine cannot include it.
    """
    known = (n for n in dir(module.ComputeCapability) if n.startswith("SM") and n[2:].isdigit())
    targets = sorted((n for n in known if int(n[2:]) >= MIN_RTX_SM), key=lambda n: int(n[2:]))
    config.num_compute_capabilities = len(targets)  # type: ignore[attr-defined]
    for index, name in enumerate(targets):
        config.set_compute_capability(getattr(module.ComputeCapability, name), index)  # type: ignore[attr-defined]
    return "-".join(n.lower() for n in targets)


def engine_runner(plan: Path, target: str = "tensorrt") -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A callable (graph inputs by name) -> output running the engine on GPU 0 through torch CUDA tensors
    (TensorRT only).

    UNVERIFIED here (no GPU, no TensorRT): written against the TensorRT 10/11 Python API
    (set_input_shape, set_tensor_address, execute_async_v3) and type-checked against the stubs.
    """
    import torch

    module = load_module(target)
    gpu_compute_capability()
    if TYPE_CHECKING:
        import tensorrt as trt
    else:
        trt = module
    logger = _collecting_logger(module)
    runtime = trt.Runtime(logger)  # type: ignore[arg-type]
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    if engine is None:
        raise EngineBuildError(f"{plan.name} cannot be deserialised by {target} {trt.__version__}")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    output = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.UINT8: torch.uint8}
    out_dtype = dtypes[engine.get_tensor_dtype(output)]

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        on_gpu = {name: torch.from_numpy(np.ascontiguousarray(a)).to("cuda") for name, a in inputs.items()}
        for name, tensor in on_gpu.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        shape = context.get_tensor_shape(output)
        out = torch.empty([shape[i] for i in range(len(shape))], dtype=out_dtype, device="cuda")
        context.set_tensor_address(output, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise EngineBuildError(f"{plan.name}: execute_async_v3 failed")
        stream.synchronize()
        return out.cpu().numpy()

    return run
