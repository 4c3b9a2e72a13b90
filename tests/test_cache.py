"""One cache root for everything rebuildable: $TGAN_DEPLOY_CACHE, else $XDG_CACHE_HOME/tgan-deploy, else
~/.cache/tgan-deploy; every cache of the package (classifiers, detectors, real features, decoded data,
compiled ops) is a folder of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgan_deploy.cache import cache_root
from tgan_deploy.config import DataConfig
from tgan_deploy.data.folder import data_cache_dir
from tgan_deploy.metrics.features import default_detector_path
from tgan_deploy.ops import build


def test_root_honours_the_override_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TGAN_DEPLOY_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "tgan-deploy"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "tgan-deploy"
    monkeypatch.setenv("TGAN_DEPLOY_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_every_cache_is_a_folder_of_the_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TGAN_DEPLOY_CACHE", str(tmp_path))
    assert default_detector_path().parent == tmp_path / "features"
    assert data_cache_dir(DataConfig()) == tmp_path / "data"
    assert data_cache_dir(DataConfig(cache_dir=str(tmp_path / "elsewhere"))) == tmp_path / "elsewhere"
    assert data_cache_dir(DataConfig(cache_dir="none")) is None
    assert build.builds_dir() == tmp_path / "ext"  # where load_pairing builds (a real build would compile here)
