"""tgan-serve end to end: a real server process on a free 127.0.0.1 port, real clients (tritonclient.http, httpx).

One server per module serves a folder of three tiny exports (float32 image, uint8 image, 2-D toy points).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from _runtime_factories import TinyModels, shared_tiny_models
from _serve import running_server
from _subprocess import repo_env
from PIL import Image

from tgan_deploy.runtime import Sampler
from tgan_deploy.runtime.images import make_grid

MAX_IMAGES = 64


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def server(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("served")
    for name, target in (("tiny", tiny_models.export), ("u8", tiny_models.export_uint8),
                         ("toy", tiny_models.toy_export)):
        (folder / name).symlink_to(target, target_is_directory=True)
    log = folder.parent / "serve.log"
    with running_server(folder, "--max-images", str(MAX_IMAGES), "--max-body-bytes", "65536", log=log) as (url, _):
        yield url
    assert "127.0.0.1" in log.read_text()  # bound to loopback by default


@pytest.fixture(scope="module")
def sampler(tiny_models: TinyModels) -> Iterator[Sampler]:
    with Sampler.open(tiny_models.export, threads=1) as s:
        yield s


def triton_client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


def seed_input(seeds: list[int]) -> triton.InferInput:
    tensor = triton.InferInput("seed", [len(seeds)], "INT64")
    tensor.set_data_from_numpy(np.asarray(seeds, np.int64))  # default: binary tensor data extension
    return tensor


def z_input(z: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput("z", list(z.shape), "FP32")
    tensor.set_data_from_numpy(z)
    return tensor


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_tritonclient_seed_and_z_equal_sampler(server: str, sampler: Sampler) -> None:
    client = triton_client(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("tiny")
    meta = client.get_model_metadata("tiny")
    assert {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]} == \
        {"seed": ("INT64", [-1]), "z": ("FP32", [-1, 8])}
    assert meta["outputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}]

    got = client.infer("tiny", [seed_input([0, 5, 9])]).as_numpy("image")
    assert got.dtype == np.uint8 and np.array_equal(got, sampler.sample([0, 5, 9]))
    truncated = client.infer("tiny", [seed_input([4, 2])], parameters={"truncation": 0.7}).as_numpy("image")
    assert np.array_equal(truncated, sampler.sample([4, 2], truncation=0.7))
    assert not np.array_equal(truncated, sampler.sample([4, 2]))
    psi = client.infer("tiny", [seed_input([4])], parameters={"psi": 0.5}).as_numpy("image")
    assert np.array_equal(psi, sampler.sample([4], psi=0.5))

    z = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    assert np.array_equal(client.infer("tiny", [z_input(z)]).as_numpy("image"), sampler.sample_latents(z))
    as_json = client.infer("tiny", [z_input(z)], outputs=[triton.InferRequestedOutput("image", binary_data=False)])
    assert np.array_equal(as_json.as_numpy("image"), sampler.sample_latents(z))


def test_json_protocol_uint8_export_and_points(server: str, tiny_models: TinyModels) -> None:
    body = {"id": "r1", "inputs": [{"name": "seed", "shape": [2], "datatype": "INT64", "data": [3, 17]}]}
    reply = httpx.post(f"{server}/v2/models/u8/infer", json=body).json()
    assert reply["id"] == "r1" and reply["outputs"][0]["shape"] == [2, 32, 32, 3]
    with Sampler.open(tiny_models.export_uint8, threads=1) as u8:
        assert np.array_equal(np.asarray(reply["outputs"][0]["data"], np.uint8).reshape(2, 32, 32, 3),
                              u8.sample([3, 17]))
    with Sampler.open(tiny_models.toy_export, threads=1) as toy:
        points = triton_client(server).infer("toy", [seed_input([1, 2, 3])]).as_numpy("points")
        assert points.dtype == np.float32 and np.array_equal(points, toy.sample([1, 2, 3]))
    assert httpx.get(f"{server}/v1/models/toy/images/1.png").status_code == 422  # points are not images
    names = [m["name"] for m in httpx.get(f"{server}/v1/models").json()["models"]]
    assert names == ["tiny", "toy", "u8"]  # a folder of exports: each under its folder's name


def test_seed_png_equals_sampler_and_etag_round_trip(server: str, sampler: Sampler) -> None:
    first = httpx.get(f"{server}/v1/models/tiny/images/42.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert np.array_equal(decode_png(first.content), sampler.sample([42])[0])
    assert "immutable" in first.headers["cache-control"] and "max-age=31536000" in first.headers["cache-control"]
    etag = first.headers["etag"]
    again = httpx.get(f"{server}/v1/models/tiny/images/42.png", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert httpx.get(f"{server}/v1/models/tiny/images/42.png").headers["etag"] == etag  # stable
    other_seed = httpx.get(f"{server}/v1/models/tiny/images/43.png", headers={"If-None-Match": etag})
    assert other_seed.status_code == 200 and other_seed.headers["etag"] != etag
    truncated = httpx.get(f"{server}/v1/models/tiny/images/42.png?truncation=0.5", headers={"If-None-Match": etag})
    assert truncated.status_code == 200 and truncated.headers["etag"] != etag
    assert np.array_equal(decode_png(truncated.content), sampler.sample([42], truncation=0.5)[0])
    other_model = httpx.get(f"{server}/v1/models/u8/images/42.png")
    assert other_model.headers["etag"] != etag  # the artefact's hash is part of the tag


def test_grid_and_interpolation_equal_sampler(server: str, sampler: Sampler) -> None:
    grid = httpx.get(f"{server}/v1/models/tiny/grid.png?seeds=3,17,42&columns=3")
    assert np.array_equal(decode_png(grid.content), make_grid(sampler.sample([3, 17, 42]), 3))
    paged = httpx.get(f"{server}/v1/models/tiny/grid.png?seed=10&n=4")
    assert np.array_equal(decode_png(paged.content), make_grid(sampler.sample(n=4, seed=10)))
    strip = httpx.get(f"{server}/v1/models/tiny/interpolate.png?a=3&b=17&steps=6")
    assert np.array_equal(decode_png(strip.content), make_grid(sampler.interpolate(3, 17, 6), 6))
    gif = Image.open(io.BytesIO(httpx.get(f"{server}/v1/models/tiny/interpolate.gif?a=3&b=17&steps=5").content))
    assert gif.format == "GIF" and gif.n_frames == 5


def test_16_clients_x_50_mixed_requests_each_get_their_own_images(server: str, sampler: Sampler) -> None:
    def client(c: int) -> int:
        errors = 0
        tc, http = triton_client(server), httpx.Client()
        for i in range(50):
            seeds = [c * 1000 + i * 7 + k for k in range(1 + (c + i) % 4)]
            kind = (c + i) % 4
            if kind == 0:
                got = tc.infer("tiny", [seed_input(seeds)]).as_numpy("image")
            elif kind == 1:
                z = np.random.default_rng(seeds[0]).standard_normal((len(seeds), 8)).astype(np.float32)
                got, expected = tc.infer("tiny", [z_input(z)]).as_numpy("image"), sampler.sample_latents(z)
            elif kind == 2:
                body = {"inputs": [{"name": "seed", "shape": [len(seeds)], "datatype": "INT64", "data": seeds}]}
                reply = http.post(f"{server}/v2/models/tiny/infer", json=body)
                errors += reply.status_code != 200
                got = np.asarray(reply.json()["outputs"][0]["data"], np.uint8).reshape(len(seeds), 32, 32, 3)
            else:
                reply = http.get(f"{server}/v1/models/tiny/images/{seeds[0]}.png")
                errors += reply.status_code != 200
                got, seeds = decode_png(reply.content)[None], seeds[:1]
            if kind != 1:
                expected = sampler.sample(seeds)
            errors += not np.array_equal(got, expected)
        return errors

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(client, range(16))) == 0
    metrics = httpx.get(f"{server}/metrics").text
    batches = [line for line in metrics.splitlines() if line.startswith('tgan_serve_batch_images_count{model="tiny"}')]
    images = [line for line in metrics.splitlines() if line.startswith('tgan_serve_images_total{model="tiny"}')]
    assert batches and images and float(batches[0].split()[-1]) < float(images[0].split()[-1])  # requests merged


def _oip(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


SEEDS_OK = {"name": "seed", "shape": [1], "datatype": "INT64", "data": [1]}
BAD_REQUESTS = {  # name: (method, path, body, headers, status)
    "negative seed (path)": ("GET", "/v1/models/tiny/images/-1.png", None, {}, 400),
    "non-integer seed (path)": ("GET", "/v1/models/tiny/images/1.5.png", None, {}, 400),
    "seed beyond int64": ("GET", "/v1/models/tiny/images/99999999999999999999.png", None, {}, 400),
    "bad truncation": ("GET", "/v1/models/tiny/images/1.png?truncation=abc", None, {}, 400),
    "negative truncation": ("GET", "/v1/models/tiny/images/1.png?truncation=-1", None, {}, 400),
    "truncation below the floor": ("GET", "/v1/models/tiny/images/1.png?truncation=0.001", None, {}, 400),
    "truncation below the floor (infer)": ("POST", "/v2/models/tiny/infer",
                                      _oip([SEEDS_OK], parameters={"truncation": 1e-4}), {}, 400),
    "huge n (grid)": ("GET", "/v1/models/tiny/grid.png?seed=0&n=100000", None, {}, 422),
    "huge n (infer)": ("POST", "/v2/models/tiny/infer",
                       _oip([{"name": "seed", "shape": [MAX_IMAGES + 1], "datatype": "INT64",
                              "data": list(range(MAX_IMAGES + 1))}]), {}, 422),
    "negative seed (infer)": ("POST", "/v2/models/tiny/infer", _oip([{**SEEDS_OK, "data": [-3]}]), {}, 400),
    "non-integer seed (infer)": ("POST", "/v2/models/tiny/infer", _oip([{**SEEDS_OK, "data": [1.5]}]), {}, 400),
    "malformed JSON": ("POST", "/v2/models/tiny/infer", b'{"inputs": [', {}, 400),
    "JSON not an object": ("POST", "/v2/models/tiny/infer", b"[1, 2]", {}, 400),
    "seed as FP32": ("POST", "/v2/models/tiny/infer", _oip([{**SEEDS_OK, "datatype": "FP32"}]), {}, 400),
    "z as INT64": ("POST", "/v2/models/tiny/infer",
                   _oip([{"name": "z", "shape": [1, 8], "datatype": "INT64", "data": [0] * 8}]), {}, 400),
    "z of wrong shape": ("POST", "/v2/models/tiny/infer",
                         _oip([{"name": "z", "shape": [1, 7], "datatype": "FP32", "data": [0.0] * 7}]), {}, 400),
    "data does not fill shape": ("POST", "/v2/models/tiny/infer", _oip([{**SEEDS_OK, "shape": [3]}]), {}, 400),
    "unknown input": ("POST", "/v2/models/tiny/infer", _oip([{**SEEDS_OK, "name": "x"}]), {}, 400),
    "truncation on z": ("POST", "/v2/models/tiny/infer",
                        _oip([{"name": "z", "shape": [1, 8], "datatype": "FP32", "data": [0.0] * 8}],
                             parameters={"truncation": 0.5}), {}, 400),
    "binary size mismatch": ("POST", "/v2/models/tiny/infer",
                             b'{"inputs":[{"name":"seed","shape":[2],"datatype":"INT64",'
                             b'"parameters":{"binary_data_size":16}}]}' + b"\0" * 8,
                             {"Inference-Header-Content-Length": "86"}, 400),
    "bad header length": ("POST", "/v2/models/tiny/infer", _oip([SEEDS_OK]),
                          {"Inference-Header-Content-Length": "99999"}, 400),
    "unknown model": ("POST", "/v2/models/nope/infer", _oip([SEEDS_OK]), {}, 404),
    "../ in a name (v1)": ("GET", "/v1/models/..%2F..%2Fetc/images/1.png", None, {}, 404),
    "../ in a name (v2)": ("GET", "/v2/models/..%2Ftiny", None, {}, 404),
    "oversized body": ("POST", "/v2/models/tiny/infer", b"x" * 70000, {}, 413),
    "unknown route": ("GET", "/v1/nothing", None, {}, 404),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_4xx_with_one_line_and_server_keeps_serving(server: str, sampler: Sampler,
                                                                   case: str) -> None:
    method, path, body, headers, status = BAD_REQUESTS[case]
    reply = httpx.request(method, f"{server}{path}", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert message and "\n" not in message and len(message) < 300 and "Traceback" not in message
    after = httpx.get(f"{server}/v1/models/tiny/images/7.png")
    assert after.status_code == 200 and np.array_equal(decode_png(after.content), sampler.sample([7])[0])


def test_metrics_and_page_are_served(server: str) -> None:
    httpx.get(f"{server}/v1/models/tiny/images/1.png")
    text = httpx.get(f"{server}/metrics").text
    assert 'tgan_serve_requests_total{method="GET",route="/v1/models/{name}/images/{seed}.png",status="200"}' in text
    assert 'route="/v2/models/{name}/infer",status="400"' in text  # statuses counted by route template
    assert "tgan_serve_request_seconds_bucket" in text and 'tgan_serve_queue_depth{model="tiny"}' in text
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "<title>tgan-serve</title>" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text


@pytest.mark.parametrize(("args", "expected"), [
    (["/nonexistent/export"], "does not exist"),
    (["{tmp}", "--name", "../etc"], "is not allowed"),
])
def test_cli_refuses_bad_models_and_names_in_one_line(tiny_models: TinyModels, tmp_path: Path, args: list[str],
                                                      expected: str) -> None:
    args = [a.replace("{tmp}", str(tiny_models.export)) for a in args]
    done = subprocess.run([sys.executable, "-m", "tgan_deploy.serve", *args], capture_output=True, text=True,
                          env=repo_env(), timeout=60)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
