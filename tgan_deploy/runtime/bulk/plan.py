"""Which seeds a bulk job writes, in which parts, and which parts are this machine's share.

The seeds (S, S+1, ..., S+N-1, or an explicit list) are cut into parts of `part_size` consecutive seeds;
part k holds seeds[k*P:(k+1)*P]. A part is the unit of everything: one tar shard, one resume record, one
checksum. `--shard I/N` takes the contiguous block of parts [I*K//N, (I+1)*K//N) of the K parts, so N
machines write disjoint sets whose union is the single-machine output, part for part and byte for byte.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

from tgan_deploy.runtime.bulk.errors import BulkOptionError
from tgan_deploy.runtime.latents import check_seeds, seed_range

DEFAULT_PART_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class SeedPlan:
    seeds: Sequence[int]  # a range for --n/--seed (O(1) memory at any N), a tuple for explicit seeds
    part_size: int = DEFAULT_PART_SIZE
    shard: tuple[int, int] = (0, 1)

    @classmethod
    def from_options(cls, n: int | None, seed: int, seeds: Sequence[int] | None, part_size: int,
                     shard: tuple[int, int] = (0, 1)) -> SeedPlan:
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
            raise BulkOptionError(f"--shard-size must be a positive integer (images per part), got {part_size!r}")
        if seeds is not None:
            check_seeds(seeds)
            if len(set(seeds)) != len(seeds):
                raise BulkOptionError("--seeds repeats a seed: each seed names one file, give each once")
            return cls(tuple(seeds), part_size, shard)
        return cls(seed_range(seed, n), part_size, shard)

    def check_rule(self, rule: str) -> None:
        """InvalidSeedError unless every seed is in the range of the model's seed rule (known once it loads)."""
        if isinstance(self.seeds, range):
            seed_range(self.seeds.start, len(self.seeds), rule)
        else:
            check_seeds(self.seeds, rule)

    @property
    def part_count(self) -> int:
        """K: parts in the whole job (every shard together)."""
        return math.ceil(len(self.seeds) / self.part_size)

    def my_parts(self) -> range:
        """This shard's part indices (global)."""
        index, count = self.shard
        return range(index * self.part_count // count, (index + 1) * self.part_count // count)

    def part_seeds(self, part: int) -> Sequence[int]:
        return self.seeds[part * self.part_size:(part + 1) * self.part_size]

    def my_seeds(self) -> Sequence[int]:
        parts = self.my_parts()
        return self.seeds[parts.start * self.part_size:parts.stop * self.part_size]

    def first_row(self, part: int) -> int:
        """Row of the part's first seed in this shard's array (every part but the job's last is full)."""
        return (part - self.my_parts().start) * self.part_size

    def describe(self) -> dict[str, Any]:
        """The seeds as the manifest records them: a range as first/n, explicit seeds as the list."""
        if isinstance(self.seeds, range):
            return {"first": self.seeds.start, "n": len(self.seeds)}
        return {"list": list(self.seeds)}


def parse_shard(text: str | None) -> tuple[int, int]:
    """"I/N" -> (I, N), 0 <= I < N (0-based, as SLURM_ARRAY_TASK_ID=0.. and JOB_COMPLETION_INDEX give it)."""
    if text is None:
        return (0, 1)
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise BulkOptionError(f"--shard {text!r}: write I/N, e.g. 0/4 for the first of 4 machines") from None
    if count < 1 or not 0 <= index < count:
        raise BulkOptionError(f"--shard {text}: I must be 0..N-1 (0-based), e.g. 0/{max(count, 2)} .. "
                              f"{max(count, 2) - 1}/{max(count, 2)}")
    return (index, count)


def batches(seeds: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    """Consecutive slices of at most `size` seeds; batches never cross a part, so every run batches alike."""
    for start in range(0, len(seeds), size):
        yield seeds[start:start + size]
