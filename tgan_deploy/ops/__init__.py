"""Custom ops. `pair_scores`: T-GAN's pair head over (real, fake) encodings, see pairing.py."""

from tgan_deploy.ops.pairing import pair_scores

__all__ = ["pair_scores"]
