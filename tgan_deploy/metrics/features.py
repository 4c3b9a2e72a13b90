"""Feature detectors for Fréchet distance and KID on image data, and the cached real-data features.

The standard FID network is the Inception-v3 TorchScript file that StyleGAN2-ADA and StyleGAN3 use,
`inception-2015-12-05.pt` (no torchvision needed: it is loaded with torch.jit.load). It cannot be downloaded
here; put it at `default_detector_path()` (features/ in the cache root, cache.py:
~/.cache/tgan-deploy/features/ by default)
or pass its path (tgan-train --eval-features, tgan-eval --features). Any TorchScript file with that
detector's call signature works:

    detector(images uint8 [N, 3, H, W] RGB, return_features=True) -> float [N, D]

(the detector resizes internally), which is how the tests exercise this code with a small detector they
script themselves. Grayscale images are repeated to 3 channels. FD computed in Inception's space is FID;
in any other detector's space, name it after that detector.

Real features are computed once per (detector file, exact real images) and cached as .npy under
eval-reference/ in the cache root (cache.py), keyed by the sha256 of both (the data cache's idea: content, not names).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch

from tgan_deploy.cache import cache_dir, cache_root
from tgan_deploy.errors import TganError
from tgan_deploy.io import atomic_path, file_sha256

DETECTOR_FILE = "inception-2015-12-05.pt"
BATCH = 100  # detector forward batch
REAL_MAX = 10_000  # real images in the reference (all of a smaller set)
PROBE_SIZE = 32  # the probe batch load_detector checks the signature with


def default_detector_path() -> Path:
    return cache_dir("features") / DETECTOR_FILE


@dataclasses.dataclass
class Detector:
    module: torch.jit.ScriptModule
    path: Path
    sha256: str
    feature_dim: int

    @property
    def name(self) -> str:
        return "Inception-v3 (FID)" if self.path.name == DETECTOR_FILE else f"detector {self.path.name}"

    @torch.no_grad()
    def features(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 images [N, C, H, W] (C = 1 or 3) -> float64 features [N, D]."""
        batches = []
        for i in range(0, len(images), BATCH):
            chunk = torch.as_tensor(np.asarray(images[i:i + BATCH]))
            if chunk.shape[1] == 1:
                chunk = chunk.expand(-1, 3, -1, -1)
            batches.append(self.module(chunk.contiguous(), return_features=True).double().numpy())
        return np.concatenate(batches)


def load_detector(path: str | Path) -> Detector:
    """Load and check a detector file; a one-line TganError naming the problem and the fix otherwise."""
    file = Path(path).expanduser()
    fix = (f"give the Inception TorchScript file {DETECTOR_FILE} (StyleGAN2-ADA's) or a TorchScript detector "
           "called as detector(uint8 [N, 3, H, W], return_features=True) -> [N, D]")
    if not file.is_file():
        raise TganError(f"feature detector {file} does not exist: {fix}")
    try:
        module = torch.jit.load(str(file), map_location="cpu").eval()
    except Exception as exc:  # not a TorchScript archive
        raise TganError(f"feature detector {file} is not a TorchScript file ({str(exc).splitlines()[0][:100]}): "
                        f"{fix}") from exc
    probe = torch.zeros(2, 3, PROBE_SIZE, PROBE_SIZE, dtype=torch.uint8)
    try:
        with torch.no_grad():
            out = module(probe, return_features=True)
    except Exception as exc:
        raise TganError(f"feature detector {file} does not take (uint8 images, return_features=True) "
                        f"({str(exc).strip().splitlines()[-1][:100]}): {fix}") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2 or not out.is_floating_point():
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TganError(f"feature detector {file} returned {shape} for 2 images, not float features [2, D]: {fix}")
    return Detector(module, file, file_sha256(file), int(out.shape[1]))


def find_detector(explicit: str) -> Detector | None:
    """The detector to use: `explicit` (must load), else the cache's Inception file if present, else None."""
    if explicit:
        return load_detector(explicit)
    default = default_detector_path()
    return load_detector(default) if default.is_file() else None


def real_features(detector: Detector, images: np.ndarray, cache: Path | None = None) -> np.ndarray:
    """Features of uint8 real images [N, C, H, W], from the cache when this detector has seen these images."""
    digest = hashlib.sha256(detector.sha256.encode())
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    path = Path(cache or cache_root()) / "eval-reference" / f"{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            cached: np.ndarray = np.load(path, allow_pickle=False)
            if cached.shape == (len(images), detector.feature_dim):
                return cached
        except (OSError, ValueError):  # a damaged entry is recomputed
            pass
    features = detector.features(images)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, features)
    return features

