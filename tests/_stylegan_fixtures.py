"""Where the StyleGAN fixtures saved by the original code bases live (`../shared/fixtures/stylegan/` beside the
checkout; README there), and the one-line skip for tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan"
NVLABS_FILES = ("sg2ada-64.pkl", "sg2ada-cond10-32.pkl", "sg3t-64.pkl", "sg3r-32.pkl")
ROSINALITY_FILES = ("rosinality-64.pt",)

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures/stylegan is absent")
