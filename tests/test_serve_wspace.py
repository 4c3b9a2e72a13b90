"""tgan-serve on a style model: w controls through seed URLs and OIP inputs, refused in one line elsewhere.

A real server process serves the stand-in style export (tests/_style_export.py) beside one of our own models.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _runtime_factories import shared_tiny_models
from _serve import running_server
from _style_export import shared_style_export
from PIL import Image

from tgan_deploy.runtime import Sampler
from tgan_deploy.runtime.images import make_grid


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_style_export(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def server(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("served-style")
    (folder / "style").symlink_to(export, target_is_directory=True)
    (folder / "tiny").symlink_to(shared_tiny_models(tmp_path_factory).export, target_is_directory=True)
    with running_server(folder, log=folder.parent / "serve-style.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def sampler(export: Path) -> Iterator[Sampler]:
    with Sampler.open(export, threads=1) as s:
        yield s


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_seed_urls_take_psi_cutoff_and_mixing(server: str, sampler: Sampler) -> None:
    controls = "psi=0.7&psi_cutoff=2&mix_seed=9&mix_cutoff=3"
    image = png(httpx.get(f"{server}/v1/models/style/images/85.png?{controls}"))
    np.testing.assert_array_equal(image, sampler.sample([85], psi=0.7, psi_cutoff=2, mix_seeds=9, mix_cutoff=3)[0])
    plain = png(httpx.get(f"{server}/v1/models/style/images/85.png"))
    np.testing.assert_array_equal(plain, sampler.sample([85])[0])  # NVlabs' seed 85
    strip = png(httpx.get(f"{server}/v1/models/style/interpolate.png?a=3&b=17&steps=3&psi=0.5"))
    np.testing.assert_array_equal(strip, make_grid(sampler.interpolate(3, 17, 3, psi=0.5), 3))  # lerp in w


def test_oip_takes_mix_seed_and_w_parameters(server: str, sampler: Sampler) -> None:
    body = {"inputs": [{"name": "seed", "shape": [2], "datatype": "INT64", "data": [3, 4]},
                       {"name": "mix_seed", "shape": [2], "datatype": "INT64", "data": [9, 10]}],
            "parameters": {"psi": 0.6, "psi_cutoff": 1, "mix_cutoff": 2}}
    response = httpx.post(f"{server}/v2/models/style/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    got = np.asarray(output["data"], np.uint8).reshape(output["shape"])
    np.testing.assert_array_equal(got, sampler.sample([3, 4], psi=0.6, psi_cutoff=1, mix_seeds=[9, 10],
                                                      mix_cutoff=2))
    meta = httpx.get(f"{server}/v2/models/style").json()
    assert "mix_seed" in [i["name"] for i in meta["inputs"]] and meta["parameters"]["seed_rule"] == "nvlabs"


@pytest.mark.parametrize("url, message", [
    ("/v1/models/tiny/images/3.png?psi_cutoff=2", "need a style model"),
    ("/v1/models/tiny/images/3.png?mix_seed=2&mix_cutoff=1", "need a style model"),
    ("/v1/models/style/images/3.png?mix_seed=2", "needs mix_cutoff"),
    ("/v1/models/style/images/3.png?psi_cutoff=9", "1 .. 4"),
    (f"/v1/models/style/images/{2**32}.png", "below 2**32"),
])
def test_meaningless_or_bad_controls_are_400_in_one_line(server: str, url: str, message: str) -> None:
    response = httpx.get(server + url)
    assert response.status_code == 400 and message in response.json()["error"]
    assert "\n" not in response.json()["error"]
