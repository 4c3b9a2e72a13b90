"""w-space controls of style models (a mapping network z -> ws [num_ws, w_dim], then synthesis ws -> image).

For models whose metadata has `num_ws` and `w_dim` (StyleGAN2/3, docs/stylegan.md), the runtime maps seeds
to ws with mapping.onnx, applies these controls in numpy (float32), then runs synthesis.onnx, so every
backend (ONNX Runtime, torch, TensorRT) gets the same controls from the same code:

- truncation (Karras et al. 2019, arXiv:1812.04948 §3; NVlabs' mapping(truncation_psi, truncation_cutoff)):
  w' = w_avg + psi * (w - w_avg) on layers [0, psi_cutoff) (psi_cutoff None: every layer); psi None means
  the model's `default_psi`, psi 1 leaves w unchanged;
- style mixing (Karras et al. 2019 §3.1): seed A's ws with layers [mix_cutoff, num_ws) taken from seed B's,
  i.e. the coarse layers [0, mix_cutoff) from A, the rest from B;
- walks / interpolation: straight lines between ws (lerp), as StyleGAN interpolates in W.
Our own models have no mapping network: there psi keeps its z-space meaning (runtime/latents.py) and these
w controls are refused with one line (`refuse_w_controls`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from tgan_deploy.runtime.latents import InvalidLatentOptionError


def check_cutoff(name: str, value: Any, num_ws: int) -> int | None:
    """A layer cutoff: None, or an integer in 1 .. num_ws (layers [0, cutoff) are affected)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= int(value) <= num_ws:
        raise InvalidLatentOptionError(f"{name} must be an integer layer index in 1 .. {num_ws} (this model has "
                                       f"{num_ws} ws), got {value!r}")
    return int(value)


def check_w_controls(num_ws: int, psi: Any = None, psi_cutoff: Any = None, mix: bool = False,
                     mix_cutoff: Any = None) -> None:
    """InvalidLatentOptionError for a psi that is not finite, a cutoff out of range, or mixing without a cutoff."""
    if psi is not None and (isinstance(psi, bool) or not isinstance(psi, numbers.Real) or not math.isfinite(psi)):
        raise InvalidLatentOptionError(f"psi must be a finite number, got {psi!r}")
    check_cutoff("psi_cutoff", psi_cutoff, num_ws)
    check_cutoff("mix_cutoff", mix_cutoff, num_ws)
    if mix and mix_cutoff is None:
        raise InvalidLatentOptionError(f"style mixing needs mix_cutoff: layers [0, mix_cutoff) come from the seed, "
                                       f"the rest from the mix seed (1 .. {num_ws}; e.g. {num_ws // 2})")
    if mix_cutoff is not None and not mix:
        raise InvalidLatentOptionError("mix_cutoff is given without mix seeds: add the mix seed(s), or drop it")


def refuse_w_controls(psi_cutoff: Any = None, mix: bool = False, mix_cutoff: Any = None) -> None:
    """For a model without a mapping network: InvalidLatentOptionError if any w-space control is given."""
    given = [name for name, value in (("psi_cutoff", psi_cutoff), ("mix seeds", mix or None),
                                      ("mix_cutoff", mix_cutoff)) if value is not None]
    if given:
        raise InvalidLatentOptionError(f"{', '.join(given)} need a style model (a mapping network to w); this model "
                                       "has none: drop them (psi here scales z)")


def truncate(ws: np.ndarray, w_avg: np.ndarray, psi: float, cutoff: int | None = None) -> np.ndarray:
    """ws [N, num_ws, w_dim] with w_avg + psi * (w - w_avg) on layers [0, cutoff), in float32 (a new array)."""
    out = np.array(ws, np.float32)
    if psi == 1.0:
        return out
    layers = slice(0, cutoff)
    avg = np.asarray(w_avg, np.float32)
    out[:, layers] = avg + np.float32(psi) * (out[:, layers] - avg)
    return out


def mix(ws: np.ndarray, mix_ws: np.ndarray, cutoff: int) -> np.ndarray:
    """ws with layers [cutoff, num_ws) taken from mix_ws (same shape), as a new array."""
    out = np.array(ws, np.float32)
    out[:, cutoff:] = mix_ws[:, cutoff:]
    return out


def lerp_ws(ws_a: np.ndarray, ws_b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` ws [steps, num_ws, w_dim] on the straight line from ws_a to ws_b; first and last exactly the ends."""
    a, b = np.asarray(ws_a, np.float64), np.asarray(ws_b, np.float64)
    t = np.linspace(0.0, 1.0, int(steps)).reshape(-1, *([1] * a.ndim))
    out = ((1 - t) * a + t * b).astype(np.float32)
    out[0], out[-1] = ws_a, ws_b
    return out


@dataclasses.dataclass(frozen=True)
class WControls:
    """The w-space controls of one request (checked by `check_w_controls`); mixing needs the mix seeds' ws too."""

    psi: float | None = None  # None: the model's default_psi
    psi_cutoff: int | None = None
    mix_cutoff: int | None = None  # set exactly when the request mixes


def apply_w_controls(ws: np.ndarray, mix_ws: np.ndarray | None, w_avg: np.ndarray, default_psi: float,
                     controls: WControls) -> np.ndarray:
    """Mapping output -> the ws synthesis gets: mixing (if any), then truncation (both per layer, so the order
    does not change the result)."""
    if controls.mix_cutoff is not None:
        assert mix_ws is not None
        ws = mix(ws, mix_ws, controls.mix_cutoff)
    psi = default_psi if controls.psi is None else float(controls.psi)
    return truncate(ws, w_avg, psi, controls.psi_cutoff)
