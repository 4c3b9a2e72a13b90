"""A real `tgan-serve` process for the serve tests: a free 127.0.0.1 port, waited on until ready, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _subprocess import repo_env

STARTUP_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trust(ca: Path | None) -> ssl.SSLContext | bool:
    """httpx's `verify` for a server whose certificate `ca` signed (None: the system's trust store)."""
    return ssl.create_default_context(cafile=str(ca)) if ca else True


@contextlib.contextmanager
def running_server(model: Path, *args: str, log: Path, command: list[str] | None = None,
                   env: dict[str, str] | None = None, tls_ca: Path | None = None
                   ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, process) of `python -m tgan_deploy.serve MODEL --port P ARGS`, ready to answer.

    `command` and `env` replace that command and this checkout's environment (e.g. another install's tgan-serve);
    `tls_ca`: the server speaks HTTPS (ARGS has its certificate), trusted through this CA file.
    """
    port = free_port()
    command = command or [sys.executable, "-m", "tgan_deploy.serve"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*command, str(model), "--port", str(port), "--threads", "1", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env or repo_env())
    url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert proc.poll() is None, f"tgan-serve exited with {proc.returncode}: {log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v2/health/ready", timeout=2, verify=trust(tls_ca)).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"tgan-serve not ready in {STARTUP_S} s: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
