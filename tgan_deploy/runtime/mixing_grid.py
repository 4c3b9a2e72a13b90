"""The style-mixing grid of NVlabs' style_mixing.py: column seeds give the coarse styles, row seeds the rest.

    images = style_mixing_grid(sampler, columns=[85, 100, 75], rows=[55, 821], cutoff=7)

`tgan-sample STYLE_EXPORT --seeds 85,100,75 --mix-seeds 55,821 --mix-cutoff 7 --mix-grid --out grid.png` is
NVlabs' `style_mixing.py --cols 85,100,75 --rows 55,821 --styles 0-6`: the top row holds the column seeds'
own images, the left column the row seeds', the corner is black, and cell (row r, column c) is column seed
c's ws with layers [cutoff, num_ws) from row seed r (`Sampler.sample(mix_seeds=, mix_cutoff=)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tgan_deploy.runtime.labels import Labels
from tgan_deploy.runtime.sampler import Sampler


def style_mixing_grid(sampler: Sampler, columns: Sequence[int], rows: Sequence[int], cutoff: int, *,
                      psi: float | None = None, psi_cutoff: int | None = None, label: Labels = None) -> np.ndarray:
    """uint8 images [(len(rows) + 1) * (len(columns) + 1), H, W, C], row-major, for `make_grid(..., len(columns)+1)`."""
    sampler.w_controls(psi, psi_cutoff, True, cutoff)  # one-line refusal before anything runs
    top = sampler.sample(list(columns), psi=psi, psi_cutoff=psi_cutoff, labels=label)
    left = sampler.sample(list(rows), psi=psi, psi_cutoff=psi_cutoff, labels=label)
    cells = sampler.sample(list(columns) * len(rows), mix_seeds=[r for r in rows for _ in columns],
                           mix_cutoff=cutoff, psi=psi, psi_cutoff=psi_cutoff, labels=label)
    per_row = len(columns) + 1
    out = np.zeros(((len(rows) + 1) * per_row, *top.shape[1:]), np.uint8)
    out[1:per_row] = top
    for r in range(len(rows)):
        out[(r + 1) * per_row] = left[r]
        out[(r + 1) * per_row + 1:(r + 2) * per_row] = cells[r * len(columns):(r + 1) * len(columns)]
    return out
