"""tgan-serve beyond localhost, on a real server process: API keys, CORS, per-client rate limits, request ids,
HTTPS with a certificate made here, and the one-line refusals of bad guard options."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from _runtime_factories import TinyModels, shared_tiny_models
from _serve import free_port, running_server, trust
from _subprocess import repo_env

from tgan_deploy.runtime import Sampler

KEYS = ["general-key-0123456789", "flood-key-0123456789ab", "quiet-key-0123456789ab"]
RATE = 20  # requests per second per key


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return shared_tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def guarded(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("guarded")
    keys = root / "keys.txt"
    keys.write_text("# the team's keys\n" + "\n".join(KEYS) + "\n\n")
    log = root / "serve.log"
    with running_server(tiny.export, "--name", "tiny", "--api-key-file", str(keys), "--rate-limit", str(RATE),
                        "--cors-origin", "https://ok.example", log=log) as (url, _):
        yield url, log


def auth(key: str = KEYS[0]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_without_a_key_only_the_health_probes_answer(guarded: tuple[str, Path]) -> None:
    url, _ = guarded
    for path in ("/v1/models/tiny/images/3.png", "/v2/models/tiny", "/", "/metrics"):
        refused = httpx.get(url + path, timeout=30)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in refused.json()["error"]
    infer = httpx.post(f"{url}/v2/models/tiny/infer", timeout=30,
                       json={"inputs": [{"name": "seed", "datatype": "INT64", "shape": [1], "data": [1]}]})
    assert infer.status_code == 401
    wrong = httpx.get(f"{url}/v2/models/tiny", headers=auth("not-a-key-but-long-enough"), timeout=30)
    assert wrong.status_code == 401 and "a wrong API key" in wrong.json()["error"]
    assert httpx.get(f"{url}/v2/health/live", timeout=30).status_code == 200
    assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200


def test_with_a_key_tritonclient_gets_the_samplers_images(guarded: tuple[str, Path], tiny: TinyModels) -> None:
    url, log = guarded
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    seeds = triton.InferInput("seed", [3], "INT64")
    seeds.set_data_from_numpy(np.array([0, 5, 9], np.int64))
    got = client.infer("tiny", [seeds], headers=auth()).as_numpy("image")
    also = client.infer("tiny", [seeds], headers={"X-API-Key": KEYS[0]}).as_numpy("image")
    with Sampler.open(tiny.export) as sampler:
        assert np.array_equal(got, sampler.sample([0, 5, 9])) and np.array_equal(also, got)
    assert httpx.get(f"{url}/v1/models/tiny/images/3.png", headers=auth(), timeout=30).status_code == 200
    text = log.read_text()
    assert '"POST /v2/models/tiny/infer" 200' in text
    assert not any(key in text for key in KEYS)  # never logged


def test_request_ids_are_returned_logged_and_the_oip_id_echoed(guarded: tuple[str, Path]) -> None:
    url, log = guarded
    mine = httpx.get(f"{url}/v2/models/tiny", headers={**auth(), "X-Request-ID": "trace-42.a"}, timeout=30)
    assert mine.headers["x-request-id"] == "trace-42.a"
    generated = httpx.get(f"{url}/v2/health/live", timeout=30).headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    body = {"id": "req-7", "inputs": [{"name": "seed", "datatype": "INT64", "shape": [1], "data": [2]}]}
    answer = httpx.post(f"{url}/v2/models/tiny/infer", json=body, headers=auth(), timeout=30)
    assert answer.json()["id"] == "req-7"
    time.sleep(0.2)
    assert "id=trace-42.a" in log.read_text()


def test_cors_preflight_from_an_allowed_origin_only(guarded: tuple[str, Path]) -> None:
    url, _ = guarded
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = httpx.options(f"{url}/v2/models/tiny/infer", headers={"Origin": "https://ok.example", **ask}, timeout=30)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://ok.example"
    other = httpx.options(f"{url}/v2/models/tiny/infer", headers={"Origin": "https://evil.example", **ask},
                          timeout=30)
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(f"{url}/v2/models/tiny", headers={"Origin": "https://ok.example", **auth()}, timeout=30)
    assert simple.headers["access-control-allow-origin"] == "https://ok.example"


def test_a_flooding_client_gets_429_and_the_other_is_served(guarded: tuple[str, Path]) -> None:
    url, _ = guarded
    flood_status: list[int] = []
    retry_after: list[str] = []

    def flood() -> None:
        with httpx.Client(headers=auth(KEYS[1]), timeout=30) as client:
            for _ in range(120):
                answer = client.get(f"{url}/v2/models/tiny")
                flood_status.append(answer.status_code)
                if answer.status_code == 429:
                    retry_after.append(answer.headers["retry-after"])

    flooder = threading.Thread(target=flood)
    flooder.start()
    quiet = []
    with httpx.Client(headers=auth(KEYS[2]), timeout=30) as client:
        for _ in range(10):  # 10 per second: within its own limit
            quiet.append(client.get(f"{url}/v2/models/tiny").status_code)
            time.sleep(0.1)
    flooder.join()
    assert flood_status.count(429) > 0 and set(flood_status) <= {200, 429}
    assert retry_after and all(int(value) >= 1 for value in retry_after)
    assert quiet == [200] * 10
    metrics = httpx.get(f"{url}/metrics", headers=auth(), timeout=30).text
    counted = next(line for line in metrics.splitlines() if line.startswith("tgan_serve_rate_limited_total"))
    assert float(counted.split()[-1]) == flood_status.count(429)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_with_a_certificate_serves_the_same_bytes(tiny: TinyModels, tmp_path: Path,
                                                         guarded: tuple[str, Path]) -> None:
    cert, key = make_certificate(tmp_path)
    with running_server(tiny.export, "--name", "tiny", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                        log=tmp_path / "tls.log", tls_ca=cert) as (url, _):
        assert url.startswith("https://")
        secure = httpx.get(f"{url}/v1/models/tiny/images/4.png", verify=trust(cert), timeout=30)
    plain_url, _ = guarded
    plain = httpx.get(f"{plain_url}/v1/models/tiny/images/4.png", headers=auth(), timeout=30)
    assert secure.status_code == 200 and secure.content == plain.content


def serve_refusal(tiny: TinyModels, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgan_deploy.serve", str(tiny.export), "--port", str(free_port()),
                           *args], capture_output=True, text=True, env=repo_env(), cwd=tmp_path, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--api-key-file", "missing.txt"], "--api-key-file missing.txt cannot be read"),
    (["--api-key-file", "short.txt"], "line 2: a key must be 16+ printable ASCII"),
    (["--api-key-file", "empty.txt"], "holds no key"),
    (["--cors-origin", "https://ok.example/app"], "is not an origin"),
    (["--rate-limit", "0"], "--rate-limit 0 must be a positive number"),
    (["--ssl-certfile", "garbage.pem", "--ssl-keyfile", "garbage.pem"], "are not a PEM certificate and its key"),
    (["--ssl-certfile", "missing.pem", "--ssl-keyfile", "garbage.pem"], "--ssl-certfile missing.pem cannot be read"),
    (["--ssl-certfile", "garbage.pem"], "needs both --ssl-certfile and --ssl-keyfile"),
])
def test_bad_guard_options_are_one_line_and_exit_2(tiny: TinyModels, tmp_path: Path, args: list[str],
                                                   message: str) -> None:
    (tmp_path / "short.txt").write_text("# keys\nshort\n")
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    done = serve_refusal(tiny, tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_network_host_without_keys_warns(tiny: TinyModels, tmp_path: Path) -> None:
    # the warning comes before the TLS check, which then stops the start: no server needed to see it
    done = serve_refusal(tiny, tmp_path, "--host", "0.0.0.0", "--ssl-certfile", "x.pem", "--ssl-keyfile", "x.pem")
    lines = done.stderr.splitlines()
    assert lines[0] == ("warning: --host 0.0.0.0 without --api-key-file: anyone who can reach this port can use the "
                        "service")
    assert done.returncode == 2 and lines[1].startswith("error: --ssl-certfile x.pem cannot be read")
