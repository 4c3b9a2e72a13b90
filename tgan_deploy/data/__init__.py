"""Training data for `tgan-train` (needs the [train] extra: torch).

Public API (see docs/data.md):
    load_dataset(source, model_cfg, data_cfg) -> TrainingData   items: float32 [C, R, R] in [-1, 1] or [2]
    dataset_kind(source) -> "image" | "points" | None           without loading (None: an .npz decides)
    check_arch(source, kind, model_cfg)                         DataError naming the fix if kind and arch differ
    make_loader(dataset, batch_size, seed=..., ...) -> BatchStream  infinite, resumable: .batches(start_step)
    mnist5k_arrays() -> (uint8 [5000, 28, 28], int64 [5000])   the builtin digits with labels (numpy only)
    builtin_labels(name) -> int64 labels aligned with load_dataset("builtin:<name>") items
"""

from tgan_deploy._extras import require

require("torch", "tgan_deploy.data")

from tgan_deploy.data.builtins import BUILTINS, builtin_labels, digits_arrays, mnist5k_arrays  # noqa: E402
from tgan_deploy.data.dataset import check_arch, dataset_kind, load_dataset  # noqa: E402
from tgan_deploy.data.loader import BatchStream, make_loader  # noqa: E402
from tgan_deploy.data.training_data import TrainingData  # noqa: E402

__all__ = [
    "BUILTINS",
    "BatchStream",
    "TrainingData",
    "builtin_labels",
    "check_arch",
    "dataset_kind",
    "digits_arrays",
    "load_dataset",
    "make_loader",
    "mnist5k_arrays",
]
