"""tgan_deploy.train (needs the [train] extra: torch)."""

from tgan_deploy._extras import require

require("torch", "tgan_deploy.train")
