"""The checkpoint contract: round trip, safe loading, one-line errors, run dirs, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tgan_deploy.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_generator,
    save_checkpoint,
)
from tgan_deploy.config import TrainConfig
from tgan_deploy.errors import CheckpointError
from tgan_deploy.io import (
    atomic_path,
    file_sha256,
    link_atomic,
    temporary_path,
    temporary_target,
    write_json_atomic,
)
from tgan_deploy.models import build_critic, build_generator
from tgan_deploy.run_layout import list_checkpoints, resolve_checkpoint, step_file_name


def tiny_config(hidden: int = 8) -> TrainConfig:
    return TrainConfig.from_dict({"model": {"arch": "mlp", "latent_dim": 2, "toy_hidden": hidden, "toy_depth": 1,
                                            "head_hidden": 4}})


def tiny_state(cfg: TrainConfig, step: int = 5) -> dict:
    g = build_generator(cfg.model)
    return {"config": cfg.to_dict(), "step": step, "generator": g.state_dict(),
            "critic": build_critic(cfg.model).state_dict(), "metrics": {"loss": [1.0, 0.5]}}


def one_line_error(call, match: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(CheckpointError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_round_trip(tmp_path: Path) -> None:
    cfg = tiny_config()
    state = tiny_state(cfg)
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["format"] == CHECKPOINT_FORMAT and loaded["step"] == 5
    assert loaded["config_obj"] == cfg and loaded["path"] == str(tmp_path / "c.pt")
    assert loaded["metrics"] == {"loss": [1.0, 0.5]}
    for part in ("generator", "critic"):
        assert loaded[part].keys() == state[part].keys()
        for key, tensor in state[part].items():
            assert torch.equal(loaded[part][key], tensor)


def test_load_generator_rebuilds_the_model(tmp_path: Path) -> None:
    cfg = tiny_config()
    state = tiny_state(cfg)
    ema = build_generator(cfg.model)  # different random weights from state["generator"]
    save_checkpoint(tmp_path / "raw.pt", state)
    save_checkpoint(tmp_path / "ema.pt", {**state, "generator_ema": ema.state_dict()})
    z = torch.randn(4, 2)
    raw_g = build_generator(cfg.model)
    raw_g.load_state_dict(state["generator"])
    with torch.no_grad():
        want_raw, want_ema = raw_g.eval()(z), ema.eval()(z)
        g, got_cfg, _ = load_generator(tmp_path / "ema.pt")
        assert not g.training and got_cfg == cfg
        torch.testing.assert_close(g(z), want_ema)
        torch.testing.assert_close(load_generator(tmp_path / "ema.pt", weights="raw")[0](z), want_raw)
        torch.testing.assert_close(load_generator(tmp_path / "raw.pt")[0](z), want_raw)  # no EMA kept: raw
    with pytest.raises(Exception, match="weights must be 'ema' or 'raw'"):
        load_generator(tmp_path / "raw.pt", weights="best")


def test_truncated_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.pt", tiny_state(tiny_config()))
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    one_line_error(lambda: load_checkpoint(tmp_path / "half.pt"), "is not a readable checkpoint .*truncated")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("hello\n" * 10)
    one_line_error(lambda: load_checkpoint(tmp_path / "notes.pt"), "is not a readable checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")  # a torch file, not ours
    one_line_error(lambda: load_checkpoint(tmp_path / "other.pt"), "is not a tgan-deploy checkpoint")
    torch.save({"format": CHECKPOINT_FORMAT, "step": 1}, tmp_path / "noconfig.pt")
    one_line_error(lambda: load_checkpoint(tmp_path / "noconfig.pt"), "carries no config")
    torch.save({"format": CHECKPOINT_FORMAT, "config": "model: {}"}, tmp_path / "strconfig.pt")
    one_line_error(lambda: load_checkpoint(tmp_path / "strconfig.pt"), "carries no config mapping")
    torch.save({"format": CHECKPOINT_FORMAT, "config": {"model": {"resolution": 48}}}, tmp_path / "bad.pt")
    one_line_error(lambda: load_checkpoint(tmp_path / "bad.pt"), "has an invalid config: model.resolution 48")


class Payload:
    """Unpickling this would create a file: proof that loading ran code from the checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    state = tiny_state(tiny_config())
    state["metrics"] = Payload(marker)
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp_path / "evil.pt")
    one_line_error(lambda: load_checkpoint(tmp_path / "evil.pt"), "is not a readable checkpoint")
    assert not marker.exists()


def test_architecture_mismatch(tmp_path: Path) -> None:
    cfg = tiny_config(hidden=8)
    state = tiny_state(cfg)
    state["generator"] = build_generator(tiny_config(hidden=16).model).state_dict()
    save_checkpoint(tmp_path / "c.pt", state)
    message = one_line_error(lambda: load_generator(tmp_path / "c.pt"),
                             "generator does not match the architecture in its config")
    assert "size mismatch" in message  # names the actual problem, not just torch's header line
    state["generator"] = torch.zeros(3)  # not a state dict at all
    save_checkpoint(tmp_path / "t.pt", state)
    one_line_error(lambda: load_generator(tmp_path / "t.pt"), "does not match")


def test_critic_only_checkpoint(tmp_path: Path) -> None:
    state = tiny_state(tiny_config())
    del state["generator"]
    save_checkpoint(tmp_path / "critic.pt", state)
    one_line_error(lambda: load_generator(tmp_path / "critic.pt"), "holds no generator weights")


def test_run_dir_resolution(tmp_path: Path) -> None:
    run = tmp_path / "run"
    one_line_error(lambda: resolve_checkpoint(run), "does not exist")
    (run / "checkpoints").mkdir(parents=True)
    one_line_error(lambda: resolve_checkpoint(run), "holds no checkpoints")
    state = tiny_state(tiny_config())
    for step in (2, 10, 9):
        save_checkpoint(run / "checkpoints" / f"step-{step}.pt", {**state, "step": step})
    save_checkpoint(run / "checkpoints" / step_file_name(3), {**state, "step": 3})
    for stray in ("step-x.pt", "step-11.pt.tmp"):
        (run / "checkpoints" / stray).write_bytes(b"")
    assert step_file_name(3) == "step-00000003.pt"
    assert [p.name for p in list_checkpoints(run)] == ["step-2.pt", "step-00000003.pt", "step-9.pt", "step-10.pt"]
    assert resolve_checkpoint(run) == run / "checkpoints" / "step-10.pt"  # numerically highest, not lexically
    assert resolve_checkpoint(run / "checkpoints") == run / "checkpoints" / "step-10.pt"
    assert resolve_checkpoint(run / "checkpoints" / "step-9.pt") == run / "checkpoints" / "step-9.pt"
    assert load_checkpoint(run)["step"] == 10
    one_line_error(lambda: resolve_checkpoint(run, "best"), "has no checkpoints/best.pt")
    # best.pt, once an evaluation wrote it, is what a run directory means; "last" still picks the newest step
    save_checkpoint(run / "checkpoints" / "best.pt", {**state, "step": 3})
    assert resolve_checkpoint(run) == resolve_checkpoint(run, "best") == run / "checkpoints" / "best.pt"
    assert resolve_checkpoint(run, "last") == run / "checkpoints" / "step-10.pt"
    assert load_checkpoint(run)["step"] == 3


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "c.pt", tiny_state(tiny_config()))
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "m.json"]
    assert len(file_sha256(tmp_path / "c.pt")) == 64
    # The file gets an ordinary mode (0666 minus umask), not mkstemp's private 0600.
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "c.pt"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new")
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    # Same for a failure inside torch.save (an unpicklable value).
    with pytest.raises(Exception):  # noqa: B017  (whatever pickle raises)
        save_checkpoint(target, {"config": {}, "step": 1, "bad": lambda: None})
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_temporaries_name_their_target_and_links_replace_atomically(tmp_path: Path) -> None:
    """The one temporary-file rule (io.py) that the trainer, export and the bulk writers all clean up by."""
    first, second = temporary_path(tmp_path / "shard-000001.tar"), temporary_path(tmp_path / "shard-000001.tar")
    assert first != second and first.stat().st_size == 0  # O_EXCL: each caller gets its own
    assert temporary_target(first.name) == "shard-000001.tar"
    assert temporary_target("shard-000001.tar") is None and temporary_target(".hidden") is None
    source = tmp_path / "samples-step-2.png"
    source.write_bytes(b"grid")
    (tmp_path / "samples.png").write_bytes(b"older grid")
    link_atomic(source, tmp_path / "samples.png")
    assert (tmp_path / "samples.png").read_bytes() == b"grid"
    assert os.path.samefile(source, tmp_path / "samples.png")  # a hard link, not a copy
    assert not [p for p in tmp_path.iterdir() if temporary_target(p.name) and p not in (first, second)]
