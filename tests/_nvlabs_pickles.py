"""Pickles in NVlabs' snapshot layout, written without NVlabs' code (for the loader's own tests).

NVlabs' `persistence.persistent_class` pickles a module as a call of
`torch_utils.persistence._reconstruct_persistent_obj(meta)`; `nvlabs_reduce` makes an object pickle the same way by
registering a stand-in `torch_utils.persistence` module for the duration of the dump.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> Any:  # never called: only its name is pickled
    raise AssertionError("the stand-in reconstructor must not run")


class PersistentStandIn:
    """Pickles as NVlabs' persistent record of `class_name` with `state` and the given `module_src`."""

    def __init__(self, class_name: str, state: dict[str, Any], module_src: str = "") -> None:
        self.meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": class_name,
                     "state": state}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def _stand_in_persistence_module() -> Iterator[None]:
    names = ("torch_utils", "torch_utils.persistence")
    saved = {n: sys.modules.get(n) for n in names}
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    package.persistence = module  # type: ignore[attr-defined]
    sys.modules.update({"torch_utils": package, "torch_utils.persistence": module})
    try:
        yield
    finally:
        _reconstruct_persistent_obj.__module__ = __name__
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_nvlabs_pickle(path: Path, snapshot: dict[str, Any]) -> Path:
    """pickle.dump `snapshot` (PersistentStandIn values pickle in NVlabs' layout), protocol 4 as NVlabs' code."""
    with _stand_in_persistence_module():
        path.write_bytes(pickle.dumps(snapshot, protocol=4))
    return path
