"""Foreign files execute nothing: the restricted unpickler (NVlabs .pkl) and the weights-only reader (rosinality .pt).

Each hostile file here would create a file if it were loaded the usual way; the tests check that the usual way
really does create it (so the file is really hostile) and that our readers refuse or ignore it and the file never
appears.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from _nvlabs_pickles import PersistentStandIn, write_nvlabs_pickle
from _stylegan_fixtures import FIXTURES, NVLABS_FILES, ROSINALITY_FILES, needs_fixtures

from tgan_deploy.errors import CheckpointError
from tgan_deploy.foreign.nvlabs import read_nvlabs_snapshot
from tgan_deploy.foreign.rosinality import read_rosinality_checkpoint
from tgan_deploy.foreign.unpickler import PersistentRecord, UnsafePickleError, restricted_load


def _module_state(params: dict[str, torch.Tensor], children: dict[str, object], **attrs: object) -> dict[str, object]:
    return {"training": False, "_parameters": OrderedDict(params), "_buffers": OrderedDict(),
            "_non_persistent_buffers_set": set(), "_modules": OrderedDict(children),
            "_init_args": (), "_init_kwargs": {"z_dim": 4}, **attrs}


def _snapshot(module_src: str = "") -> dict[str, object]:
    leaf = PersistentStandIn("FullyConnectedLayer", _module_state({"weight": torch.nn.Parameter(torch.arange(6.0)
                                                                   .reshape(2, 3))}, {}, lr_multiplier=0.01),
                             module_src)
    g = PersistentStandIn("Generator", _module_state({}, {"fc0": leaf}, z_dim=4, size=np.array([36, 36]),
                                                     cutoff=np.float64(2.5)), module_src)
    return {"G": g, "G_ema": g, "D": None, "augment_pipe": None, "training_set_kwargs": {"resolution": 8}}


def test_nvlabs_layout_reads_as_records(tmp_path: Path) -> None:
    path = write_nvlabs_pickle(tmp_path / "net.pkl", _snapshot())
    snap = read_nvlabs_snapshot(path)
    assert isinstance(snap.G_ema, PersistentRecord) and snap.G_ema.class_name == "Generator"
    assert snap.G_ema.init_kwargs == {"z_dim": 4}
    assert snap.G_ema.attrs["z_dim"] == 4 and snap.G_ema.attrs["cutoff"] == 2.5
    np.testing.assert_array_equal(snap.G_ema.attrs["size"], [36, 36])
    sd = snap.G_ema.state_dict()
    assert list(sd) == ["fc0.weight"]
    torch.testing.assert_close(sd["fc0.weight"], torch.arange(6.0).reshape(2, 3), rtol=0, atol=0)
    assert snap.training_set_kwargs == {"resolution": 8} and snap.family == "stylegan2"


def test_embedded_source_is_never_run(tmp_path: Path) -> None:
    """The module source NVlabs' loader would exec writes a file: loaded the NVlabs way it appears, ours never."""
    marker = tmp_path / "PWNED"
    source = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator: pass\nclass FullyConnectedLayer: pass\n"
    path = write_nvlabs_pickle(tmp_path / "hostile.pkl", _snapshot(module_src=source))

    read_nvlabs_snapshot(path)
    assert not marker.exists()

    # The same bytes through a loader that does what NVlabs' persistence module does (exec module_src): the file
    # appears, so the pickle above really is hostile. Run in a child process with a stand-in torch_utils package.
    pkg = tmp_path / "sandbox" / "torch_utils"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "persistence.py").write_text(textwrap.dedent("""
        import types
        def _reconstruct_persistent_obj(meta):
            module = types.ModuleType("_imported_module")
            exec(compile(meta["module_src"], "<embedded>", "exec"), module.__dict__)
            return object.__new__(getattr(module, meta["class_name"]))
    """))
    env = {**os.environ, "PYTHONPATH": str(pkg.parent)}
    done = subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"


class _Reduces:
    def __init__(self, fn: object, *args: object) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.fn, self.args)


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call"])
def test_reduce_payloads_are_refused_by_name(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "PWNED"
    cmd = f"touch {marker}"
    fn, args = {"os.system": (os.system, (cmd,)),
                "builtins.exec": (exec, (f"open({str(marker)!r}, 'w')",)),
                "builtins.eval": (eval, (f"open({str(marker)!r}, 'w')",)),
                "subprocess.call": (subprocess.call, (["touch", str(marker)],))}[payload]
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Reduces(fn, *args)}, protocol=4))
    with pytest.raises(UnsafePickleError) as err:
        restricted_load(path)
    assert not marker.exists()
    message = str(err.value)
    assert "\n" not in message and "refused" in message
    expected = {"os.system": "posix.system" if os.name == "posix" else "nt.system"}.get(payload, payload)
    assert expected in message


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    arr = np.array([_Reduces(os.system, f"touch {marker}")], dtype=object)
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"G_ema": arr}, protocol=4))
    with pytest.raises(UnsafePickleError):
        restricted_load(path)
    assert not marker.exists()


def test_not_a_pickle_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError) as err:
        read_nvlabs_snapshot(path)
    assert "\n" not in str(err.value) and "junk.pkl" in str(err.value)


def test_rosinality_reader_refuses_reduce_payloads(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "hostile.pt"
    torch.save({"g_ema": {"w": torch.zeros(1)}, "args": _Reduces(os.system, f"touch {marker}")}, path)
    with pytest.raises(UnsafePickleError) as err:
        read_rosinality_checkpoint(path)
    assert not marker.exists()
    assert "system" in str(err.value) and "\n" not in str(err.value)


@needs_fixtures
@pytest.mark.parametrize("name", NVLABS_FILES)
def test_fixture_snapshots_read_without_running_code(name: str) -> None:
    snap = read_nvlabs_snapshot(FIXTURES / name)
    assert snap.D is not None and snap.G is not None
    expected_family = "stylegan3" if name.startswith("sg3") else "stylegan2"
    assert snap.family == expected_family
    g = snap.G_ema
    assert g.class_name == "Generator" and g.init_kwargs["img_resolution"] == g.attrs["img_resolution"]
    assert all(isinstance(t, torch.Tensor) for t in g.state_dict().values())
    assert "mapping.w_avg" in g.state_dict()


@needs_fixtures
def test_fixture_rosinality_reads_with_its_args() -> None:
    ckpt = read_rosinality_checkpoint(FIXTURES / ROSINALITY_FILES[0])
    assert ckpt.args["size"] == 64 and ckpt.args["latent"] == 64
    assert ckpt.d is not None and "input.input" in ckpt.g_ema
