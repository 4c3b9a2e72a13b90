"""The StyleGAN3-T model the StyleGAN CPU benchmark times (issue 29): 256 px with the original's widths (NVlabs
stylegan3 train.py --cfg=stylegan3-t: z 512, w 512, 2 mapping layers, channel_base 32768, channel_max 512,
14 layers, 3x3 convs), random weights, written as one of our checkpoints so it is exported like any other.

Speed does not depend on the weights, nor on the FIR filters' values: the filters, which a real snapshot carries
as buffers designed by scipy, are flat low-pass taps of the right lengths here (only their shapes matter).

    PYTHONPATH=. python benchmarks/stylegan3_model.py OUT.pt [--resolution 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tgan_deploy.checkpoint import save_checkpoint  # noqa: E402
from tgan_deploy.foreign.convert import style_config  # noqa: E402
from tgan_deploy.models import build_generator  # noqa: E402

STYLEGAN3_T = {"z_dim": 512, "w_dim": 512, "channels": 3, "mapping_layers": 2,
               "synthesis": {"channel_base": 32768, "channel_max": 512, "num_layers": 14, "conv_kernel": 3}}
STYLEGAN3_T_TEXT = "StyleGAN3-T, channel_base 32768, channel_max 512, z/w 512, 2 mapping layers, 14 layers"


def write_stylegan3_t(path: Path, resolution: int = 256, seed: int = 0) -> Path:
    """Our checkpoint of a random-weight StyleGAN3-T at `resolution` (arch "stylegan3"), ready for tgan-export."""
    kwargs = {**STYLEGAN3_T, "resolution": resolution}
    cfg = style_config("stylegan3", kwargs, None, path)
    generator = build_generator(cfg.model)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in generator.state_dict(keep_vars=True).items():
            if name.endswith("_filter"):
                tensor.fill_(1.0 / tensor.shape[0])  # flat low-pass, DC gain 1 (sum 1 per axis / over the 2-D taps)
            elif name.endswith(("weight", "freqs", "phases")):
                tensor.normal_()
    state = generator.state_dict()
    save_checkpoint(path, {"config": cfg.to_dict(), "step": 0, "generator": state, "generator_ema": state,
                           "classes": []})
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()
    print(write_stylegan3_t(args.out, args.resolution))
