"""2-D Gaussian mixtures of PacGAN (arXiv:1712.04086) and VEEGAN, exactly as docs/method.md §6.1.

ring8:  8 centres at (cos 2 pi k / 8, sin 2 pi k / 8), k = 0..7, std 0.01. (Not linspace(0, 2 pi, 8),
        which repeats a centre and gives 7 modes.)
grid25: 25 centres at (i, j), i, j in {-4, -2, 0, 2, 4}, std 0.05.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Mixture:
    name: str
    centres: np.ndarray  # [K, 2] float64
    std: float

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points [n, 2] float32: a uniformly chosen centre plus isotropic Gaussian noise."""
        return self.sample_labelled(n, rng)[0]

    def sample_labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(points [n, 2] float32, int64 [n] index of the centre each point was drawn around)."""
        idx = rng.integers(len(self.centres), size=n)
        return (self.centres[idx] + self.std * rng.standard_normal((n, 2))).astype(np.float32), idx.astype(np.int64)

    @property
    def classes(self) -> list[str]:
        """Class names of the components: "0".."K-1", the index into `centres`."""
        return [str(k) for k in range(len(self.centres))]


def _ring8() -> Mixture:
    angles = 2 * np.pi * np.arange(8) / 8
    return Mixture("ring8", np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01)


def _grid25() -> Mixture:
    ticks = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return Mixture("grid25", np.array([(i, j) for i in ticks for j in ticks]), 0.05)


MIXTURES: dict[str, Mixture] = {m.name: m for m in (_ring8(), _grid25())}
