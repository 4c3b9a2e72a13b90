"""Import optional dependencies with a message that says which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tgan_deploy.errors import MissingExtraError

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "onnxconverter_common": "train",
    "yaml": "train",
    "tqdm": "train",
    "matplotlib": "train",
    "scipy": "train",
    "sklearn": "train",
    "mlxtend": "train",
    "tensorrt": "tensorrt",
    "tensorrt_rtx": "tensorrt-rtx",
    "tensorboard": "tensorboard",
    "av": "video",
    "ray": "ray",
    "starlette": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
}
# module -> the pip command that installs it
INSTALL_HINT = {module: f"pip install 'tgan-deploy[{extra}]'" for module, extra in EXTRA_OF.items()}
INSTALL_HINT["tensorrt"] += " (needs NVIDIA's package index and a CUDA GPU)"


def missing(module: str, purpose: str = "") -> MissingExtraError:
    """The error for `module` not being importable: what needed it and the pip command that installs it."""
    top = module.split(".")[0]
    hint = INSTALL_HINT.get(top, f"pip install {module}")
    what = f" (needed for {purpose})" if purpose else ""
    return MissingExtraError(f"{module} is not installed{what}: {hint}", extra=EXTRA_OF.get(top))


def require(module: str, purpose: str = "") -> ModuleType:
    """Import `module` or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, purpose) from exc
