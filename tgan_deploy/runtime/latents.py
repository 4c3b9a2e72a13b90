"""Seeds -> latents: the one contract every backend, report, grid, benchmark and test shares.

A model's `seed_rule` (model.json) names how seed `s` becomes its latent; both are computed in float64
and cast to float32, and any program can reproduce them with numpy alone:
- "tgan" (our models): `numpy.random.default_rng(s).standard_normal(latent_dim)`;
- "nvlabs" (imported NVlabs StyleGAN2-ADA / StyleGAN3 models): `numpy.random.RandomState(s).randn(1,
  latent_dim)[0]`, as NVlabs' generate.py / gen_images.py draw it, so seed 85 is the image a StyleGAN user
  already has for seed 85. RandomState takes seeds below 2**32 only.
Every seed anywhere (Sampler, bulk, Ray, evaluation, the service) is checked here, by `check_seed`:
an integer in 0 .. MAX_SEED (2**63 - 1, so every seed fits an int64 tensor, .npy array or OIP INT64
input), and below 2**32 under the "nvlabs" rule.

Two optional knobs trade variety for fidelity (docs/runtime.md, "Latent controls", writes them out):
- `truncation=t` (BigGAN's truncation trick, Brock et al. 2019, arXiv:1809.11096 §3.1): a standard
  normal restricted to [-t, t]. From the same generator, after the first draw: while some |z_i| > t,
  every such z_i, in index order, is replaced by the generator's next draws, all at once. Values already
  inside [-t, t] keep the untruncated latent's value.
- `psi=p` (the Z-space form of StyleGAN's truncation psi, Karras et al. 2019, where the mean latent is
  0): z * p, applied after truncation. Both in float64, then cast to float32.
With neither, the latent is exactly the plain contract above.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tgan_deploy.artefact import SEED_RULES
from tgan_deploy.errors import TganError


class InvalidSeedError(TganError, ValueError):
    """A seed is not an integer in the seed rule's range, a seed count is not positive, or the list is empty."""


class InvalidLatentOptionError(TganError, ValueError):
    """A latent control (truncation, psi, interpolation steps or method) is out of range."""


MAX_SEED = 2**63 - 1  # the largest int64: seeds travel as int64 (OIP INT64 inputs, seeds.npy, Ray columns)
MAX_SEED_OF_RULE = {"tgan": MAX_SEED, "nvlabs": 2**32 - 1}  # RandomState(s) refuses s >= 2**32
INTERPOLATION_METHODS = ("slerp", "lerp")
# Redrawing takes about log(latent_dim) / P(|x| <= t) rounds (P ~ 0.8 t for small t): 0.01 costs a few ms per
# latent, 1e-6 a minute, 1e-12 forever. A floor keeps any caller (a service's client included) from hanging a
# worker; below it every value is ~0 anyway, the average sample that psi=0 gives exactly.
MIN_TRUNCATION = 0.01


def check_seed_rule(rule: str) -> str:
    """`rule` if it is one of SEED_RULES; else InvalidLatentOptionError (a model.json of a newer tgan-deploy?)."""
    if rule not in SEED_RULES:
        raise InvalidLatentOptionError(f"seed rule {rule!r} is not one of {', '.join(SEED_RULES)}: the model was "
                                       "exported by another tgan-deploy version; update tgan-deploy or re-export")
    return rule


def _normal_draws(seed: int, rule: str) -> Callable[[int], np.ndarray]:
    """The rule's stream of float64 standard normals for one seed: draws(k) gives the next k."""
    if rule == "nvlabs":
        return np.random.RandomState(seed).randn  # randn(1, d)[0] and randn(d) are the same first d draws
    return np.random.default_rng(seed).standard_normal


def latent(seed: int, latent_dim: int, *, truncation: float | None = None, psi: float | None = None,
           rule: str = "tgan") -> np.ndarray:
    """The float32 latent vector of one seed under seed rule `rule` (optionally truncated and/or scaled: see the
    module doc)."""
    draws = _normal_draws(seed, rule)
    z = draws(latent_dim)
    if truncation is not None:
        outside = np.abs(z) > truncation
        while outside.any():
            z[outside] = draws(int(outside.sum()))
            outside = np.abs(z) > truncation
    if psi is not None:
        z = z * psi
    return z.astype(np.float32)


def check_seed(seed: Any, rule: str = "tgan", what: str = "seed") -> int:
    """`seed` as an int if it is an integer in the rule's range; else InvalidSeedError naming the range."""
    top = MAX_SEED_OF_RULE[check_seed_rule(rule)]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= top:
        why = " (this model's seed rule is NVlabs': numpy's RandomState takes seeds below 2**32)" \
            if rule == "nvlabs" and isinstance(seed, numbers.Integral) and int(seed) > top else ""
        raise InvalidSeedError(f"{what} {seed!r} is not a non-negative integer in 0 .. {top}{why}: give seeds "
                               "in that range")
    return int(seed)


def check_seeds(seeds: Iterable[Any], rule: str = "tgan") -> list[int]:
    """The seeds as a list of ints; InvalidSeedError if empty or any fails `check_seed`."""
    checked = [check_seed(s, rule) for s in seeds]
    if not checked:
        raise InvalidSeedError("no seeds given: pass at least one non-negative integer seed")
    return checked


def seed_range(seed: Any, n: Any, rule: str = "tgan") -> range:
    """Seeds seed, seed+1, ..., seed+n-1 (what `--seed S --n N` means everywhere), all in the rule's range."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InvalidSeedError(f"n {n!r} is not a positive integer: ask for at least one seed")
    first = check_seed(seed, rule)
    check_seed(first + int(n) - 1, rule, what=f"the last seed (seed {first} + n {int(n)} - 1)")
    return range(first, first + int(n))


def check_latent_options(truncation: float | None = None, psi: float | None = None) -> None:
    """InvalidLatentOptionError unless truncation is None or a finite number >= MIN_TRUNCATION, psi None or finite."""
    for name, value in (("truncation", truncation), ("psi", psi)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise InvalidLatentOptionError(f"{name} must be a finite number, got {value!r}")
    if truncation is not None and not truncation >= MIN_TRUNCATION:
        raise InvalidLatentOptionError(f"truncation must be >= {MIN_TRUNCATION} (e.g. 0.7; smaller is closer to "
                                       f"the average sample, which psi=0 gives exactly), got {truncation!r}")


def latents(seeds: Iterable[int], latent_dim: int, *, truncation: float | None = None,
            psi: float | None = None, rule: str = "tgan") -> np.ndarray:
    """Stacked latents [len(seeds), latent_dim] float32, one row per seed, in order, under seed rule `rule`."""
    seeds = check_seeds(seeds, rule)
    check_latent_options(truncation, psi)
    if latent_dim <= 0:
        raise TganError(f"latent_dim must be positive, got {latent_dim}")
    t = None if truncation is None else float(truncation)
    p = None if psi is None else float(psi)
    with np.errstate(over="ignore"):  # an overflow is reported below, as bad input
        z = np.stack([latent(s, latent_dim, truncation=t, psi=p, rule=rule) for s in seeds])
    if p is not None and not np.isfinite(z).all():
        raise InvalidLatentOptionError(f"psi {psi!r} is too large: the scaled latents overflow float32 "
                                       "(use |psi| of a few at most)")
    return z


def check_interpolation(steps: int, method: str) -> None:
    """InvalidLatentOptionError unless steps is an integer >= 2 and method one of INTERPOLATION_METHODS."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise InvalidLatentOptionError(f"steps must be an integer >= 2 (both endpoints included), got {steps!r}")
    if method not in INTERPOLATION_METHODS:
        raise InvalidLatentOptionError(f"interpolation method {method!r} is not one of "
                                       f"{', '.join(INTERPOLATION_METHODS)}")


def interpolate_latents(z_a: np.ndarray, z_b: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """`steps` latents [steps, dim] float32 from z_a to z_b; the first is z_a and the last z_b, exactly.

    "lerp": straight line. "slerp": the direction moves along the great circle between the endpoints'
    directions (Shoemake 1985; White 2016, arXiv:1609.04468) while the norm moves linearly between their
    norms, so every latent's norm lies between the endpoints'. Gaussian latents live near the sphere of
    radius sqrt(dim); a straight line cuts through its inside, where the generator saw no training latents.
    """
    check_interpolation(steps, method)
    a, b = np.asarray(z_a, np.float64).ravel(), np.asarray(z_b, np.float64).ravel()
    if a.shape != b.shape:
        raise InvalidLatentOptionError(f"endpoints differ in size ({a.size} vs {b.size})")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]
    path = (1 - t) * a + t * b if method == "lerp" else _slerp(a, b, t)
    out = path.astype(np.float32)
    out[0], out[-1] = np.asarray(z_a, np.float32).ravel(), np.asarray(z_b, np.float32).ravel()
    return out


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    norm_a, norm_b = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if norm_a == 0.0 or norm_b == 0.0 or a.size == 1:  # no great circle to follow: the straight line
        return (1 - t) * a + t * b
    u, v = a / norm_a, b / norm_b
    omega = math.acos(min(1.0, max(-1.0, float(u @ v))))
    if omega < 1e-6:  # (nearly) parallel: normalised lerp, the limit of slerp, without dividing by sin(0)
        direction = (1 - t) * u + t * v
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    elif math.pi - omega < 1e-6:  # (nearly) antipodal: every great circle joins them; take a fixed one
        w = _orthogonal_unit(u)
        direction = np.cos(math.pi * t) * u + np.sin(math.pi * t) * w
    else:
        direction = (np.sin((1 - t) * omega) * u + np.sin(t * omega) * v) / math.sin(omega)
    return ((1 - t) * norm_a + t * norm_b) * direction


def _orthogonal_unit(u: np.ndarray) -> np.ndarray:
    """A unit vector orthogonal to unit u (Gram-Schmidt on the axis where u is smallest): deterministic."""
    e = np.zeros_like(u)
    e[int(np.argmin(np.abs(u)))] = 1.0
    w = e - (e @ u) * u
    return w / np.linalg.norm(w)
