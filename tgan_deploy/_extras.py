"""Import optional dependencies with a message that says which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tgan_deploy.errors import MissingExtraError

# module -> the pip command that installs it
INSTALL_HINT = {
    "torch": "pip install 'tgan-deploy[train]'",
    "onnx": "pip install 'tgan-deploy[train]'",
    "onnxscript": "pip install 'tgan-deploy[train]'",
    "onnxconverter_common": "pip install 'tgan-deploy[train]'",
    "yaml": "pip install 'tgan-deploy[train]'",
    "tqdm": "pip install 'tgan-deploy[train]'",
    "matplotlib": "pip install 'tgan-deploy[train]'",
    "tensorrt": "pip install 'tgan-deploy[tensorrt]' (needs NVIDIA's package index and a CUDA GPU)",
    "tensorrt_rtx": "pip install 'tgan-deploy[tensorrt-rtx]'",
    "tensorboard": "pip install 'tgan-deploy[tensorboard]'",
    "av": "pip install 'tgan-deploy[video]'",
    "ray": "pip install 'tgan-deploy[ray]'",
    "starlette": "pip install 'tgan-deploy[serve]'",
    "uvicorn": "pip install 'tgan-deploy[serve]'",
    "prometheus_client": "pip install 'tgan-deploy[serve]'",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import `module` or raise MissingExtraError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = INSTALL_HINT.get(module.split(".")[0], f"pip install {module}")
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingExtraError(f"{module} is not installed{what}: {hint}") from exc
