"""Bulk generation for offline pipelines: millions of images, streaming, resumable, sharded.

    plan = SeedPlan.from_options(n=1_000_000, seed=0, seeds=None, part_size=1000, shard=(0, 4))
    run_bulk(sampler, "export/", plan, Path("out/"), BulkOptions(image_format="tar"))

See docs/bulk.md: the formats, what --resume trusts after a kill -9, sharding across machines, verification.
"""

from tgan_deploy.runtime.bulk.errors import BulkOptionError, BulkWriteError, OutputInUseError, VerifyError
from tgan_deploy.runtime.bulk.formats import FORMATS
from tgan_deploy.runtime.bulk.pipeline import BulkOptions, BulkResult, check_format, run_bulk
from tgan_deploy.runtime.bulk.plan import DEFAULT_PART_SIZE, SeedPlan, parse_shard
from tgan_deploy.runtime.bulk.verify import verify_dirs

__all__ = [
    "DEFAULT_PART_SIZE",
    "FORMATS",
    "BulkOptionError",
    "BulkOptions",
    "BulkResult",
    "BulkWriteError",
    "OutputInUseError",
    "SeedPlan",
    "VerifyError",
    "check_format",
    "parse_shard",
    "run_bulk",
    "verify_dirs",
]
