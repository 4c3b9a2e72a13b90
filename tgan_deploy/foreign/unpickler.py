"""A pickle reader that executes nothing the file asks for: the restricted unpickler for NVlabs snapshots.

An NVlabs snapshot (`network-snapshot-*.pkl`) is `pickle.dump` of a dict of modules decorated with NVlabs'
`persistence.persistent_class`: each module pickles as a call of `torch_utils.persistence._reconstruct_persistent_obj`
on `{"type": "class", "version", "module_src", "class_name", "state"}`, and NVlabs' loader `exec`s `module_src`
(the Python source of the whole file that defined the class) to rebuild it. So does `pickle.load`: a snapshot
from the internet is a program (NVlabs/stylegan2-ada-pytorch#102 asks for weights without it).

Here every global the pickle names is looked up in an allow-list (`ALLOWED`) and replaced by our own function;
nothing the file names is imported, no source is executed:
- the persistent-class constructor becomes `PersistentRecord`, a plain record of the class name and the object's
  state (for a module: its parameters, buffers, child modules, `init_args` / `init_kwargs` and plain attributes);
  `module_src` is dropped unread;
- tensors and parameters are rebuilt by torch's own rebuild functions (the ones torch's weights-only loader
  allows), and each storage, which NVlabs' pickles carry as `torch.save` bytes, is read by
  `torch.load(weights_only=True)`;
- `collections.OrderedDict`, numpy's scalar / dtype / plain-array reconstruction (no object arrays), and
  `dnnlib.EasyDict` (a dict with attribute access: read as a plain dict) are the only other names.
Anything else is `UnsafePickleError`, one line naming what the file asked for.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch._utils

from tgan_deploy.errors import CheckpointError


class UnsafePickleError(CheckpointError):
    """A pickle names something outside the allow-list; nothing it asked for was run."""


@dataclasses.dataclass
class PersistentRecord:
    """What an NVlabs persistent object becomes: its class name and state, never the class itself.

    For a `torch.nn.Module` the state is its `__dict__`: `parameters`, `buffers`, `children` and `attrs` split it
    into the parts a loader reads; `init_args` / `init_kwargs` are the constructor arguments NVlabs records
    (`_init_args`, `_init_kwargs`), `attrs` the plain attributes such as `img_resolution` or `w_dim`)."""

    class_name: str
    state: dict[str, Any]

    @property
    def parameters(self) -> dict[str, torch.Tensor | None]:
        return dict(self.state.get("_parameters", {}))

    @property
    def buffers(self) -> dict[str, torch.Tensor | None]:
        return dict(self.state.get("_buffers", {}))

    @property
    def children(self) -> dict[str, PersistentRecord | None]:
        return dict(self.state.get("_modules", {}))

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: v for k, v in self.state.items() if not k.startswith("_")}

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs", {}))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this module and its children, named as `nn.Module.state_dict`
        names them (`synthesis.b4.conv1.weight`)."""
        out: dict[str, torch.Tensor] = {}
        skip = self.state.get("_non_persistent_buffers_set", set())
        for name, t in self.parameters.items():
            if t is not None:
                out[prefix + name] = t.detach()
        for name, t in self.buffers.items():
            if t is not None and name not in skip:
                out[prefix + name] = t.detach()
        for name, child in self.children.items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out


def _persistent_object(meta: dict[str, Any]) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UnsafePickleError("the file holds a persistent object of an unknown layout (not an NVlabs 'class' "
                                "record): refused, nothing was executed")
    return PersistentRecord(class_name=str(meta.get("class_name", "")), state=meta["state"])


def _storage_from_bytes(data: bytes) -> Any:
    # NVlabs pickles a storage as torch.save bytes; torch's weights-only loader reads them without running code.
    return torch.load(io.BytesIO(data), weights_only=True)


def _plain_array(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    # numpy's ndarray.__reduce__ starts from an empty array of the class, then BUILD sets shape, dtype and bytes.
    if cls is not np.ndarray:
        raise UnsafePickleError(f"the file asks numpy to reconstruct a {cls!r}: only plain arrays are read")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _scalar(dtype: np.dtype, data: bytes = b"") -> Any:
    if dtype.hasobject:
        raise UnsafePickleError("the file holds a numpy object scalar: refused, nothing was executed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


class _EasyDict(dict):  # type: ignore[type-arg]
    """dnnlib.EasyDict read as a dict (its attribute access is all it adds)."""


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    **{(core, "scalar"): _scalar for core in _NUMPY_CORE},
    **{(core, "_reconstruct"): _plain_array for core in _NUMPY_CORE},
}


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` answers only from `ALLOWED` and imports nothing."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"the file asks to load {module}.{name}, which a model snapshot does not need: refused, nothing "
                "was executed (only tensors, NVlabs persistent modules, OrderedDict and numpy values are read)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"the file uses a persistent id ({str(pid)[:60]!r}) that a plain NVlabs pickle never "
                                "holds: refused, nothing was executed")


def restricted_load(path: str | Path) -> Any:
    """Unpickle `path` through the allow-list; UnsafePickleError (one line) on anything outside it,
    CheckpointError if the file is not a readable pickle."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise CheckpointError(f"{path} is not a readable pickle ({type(err).__name__}: {str(err)[:120]}): "
                              "pass an NVlabs network snapshot (.pkl)") from None
