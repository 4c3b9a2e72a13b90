"""Reloading an export without dropping requests (a real server, 8 real clients): the OIP repository API and SIGHUP.

The served export directory is replaced on disk by another model while 8 clients sample; after the load call
every answer comes from the new model, none failed, and the ETag changed; a corrupt replacement keeps the
model that serves, the load call answers 400 with the reason, and so does SIGHUP (in the log).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from _factories import small_config, write_checkpoint
from _runtime_factories import TinyModels, export, shared_tiny_models
from _serve import running_server
from PIL import Image

from tgan_deploy.runtime import Sampler

CLIENTS, SEEDS = 8, range(8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


def images_of(path: Path) -> dict[int, np.ndarray]:
    with Sampler.open(path) as sampler:
        return dict(zip(SEEDS, sampler.sample(SEEDS), strict=True))


def replace_export(served: Path, new: Path) -> None:
    """Put `new`'s files in the served directory, each by an atomic rename (as a deploy tool would)."""
    for file in new.iterdir():
        tmp = served / f".{file.name}.tmp"
        shutil.copyfile(file, tmp)
        os.replace(tmp, served / file.name)


def test_reload_under_load_swaps_models_without_a_failed_request(tiny: TinyModels, tmp_path: Path) -> None:
    served = tmp_path / "served"
    shutil.copytree(tiny.export, served)
    other = export(write_checkpoint(tmp_path / "other" / "step-00000001.pt", small_config(), step=1, seed=7),
                   tmp_path / "other-export")
    old, new = images_of(tiny.export), images_of(other)
    assert not np.array_equal(old[0], new[0])
    log = tmp_path / "serve.log"
    with running_server(served, "--name", "tiny", log=log) as (url, proc):
        png = f"{url}/v1/models/tiny/images/0.png"
        etag_before = httpx.get(png, timeout=30).headers["etag"]
        failures: list[str] = []
        seen: list[tuple[float, str]] = []  # (time, "old" or "new")
        stop = threading.Event()

        def client(index: int) -> None:
            with httpx.Client(timeout=30) as session:
                while not stop.is_set():
                    seed = SEEDS[index % len(SEEDS)]
                    answer = session.get(f"{url}/v1/models/tiny/images/{seed}.png")
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:100]}")
                        continue
                    image = np.asarray(Image.open(io.BytesIO(answer.content)))
                    which = "old" if np.array_equal(image, old[seed]) else "new" if np.array_equal(
                        image, new[seed]) else "neither"
                    seen.append((time.monotonic(), which))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        replace_export(served, other)
        loaded = httpx.post(f"{url}/v2/repository/models/tiny/load", timeout=60)
        swapped_at = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert loaded.status_code == 200, loaded.text
        assert failures == []
        kinds = [which for _, which in seen]
        assert "neither" not in kinds and "old" in kinds and "new" in kinds
        assert all(which == "new" for at, which in seen if at > swapped_at + 0.05)  # the swap is for good
        assert httpx.get(png, timeout=30).headers["etag"] != etag_before  # the ETag follows the new artefact

        (served / "generator.onnx").write_bytes(b"corrupt")  # a broken replacement
        refused = httpx.post(f"{url}/v2/repository/models/tiny/load", timeout=60)
        assert refused.status_code == 400 and "the previous version still serves" in refused.json()["error"]
        index = httpx.post(f"{url}/v2/repository/index", timeout=30).json()
        assert index[0]["name"] == "tiny" and index[0]["state"] == "READY" and "cannot load" in index[0]["reason"]
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reload: loading 'tiny'" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "the previous version still serves" in log.read_text()
        still = np.asarray(Image.open(io.BytesIO(httpx.get(png, timeout=30).content)))
        assert np.array_equal(still, new[0])

        assert httpx.post(f"{url}/v2/repository/models/tiny/unload", timeout=30).status_code == 200
        gone = httpx.get(png, timeout=30)
        assert gone.status_code == 400 and "unloaded" in gone.json()["error"]
        assert httpx.post(f"{url}/v2/repository/index", timeout=30).json()[0]["state"] == "UNAVAILABLE"
        replace_export(served, tiny.export)  # fixed on disk: a load brings it back
        assert httpx.post(f"{url}/v2/repository/models/tiny/load", timeout=60).status_code == 200
        back = np.asarray(Image.open(io.BytesIO(httpx.get(png, timeout=30).content)))
        assert np.array_equal(back, old[0])
        assert httpx.post(f"{url}/v2/repository/models/nope/load", timeout=30).status_code == 404
