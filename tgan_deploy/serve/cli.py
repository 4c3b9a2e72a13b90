"""`tgan-serve MODEL`: serve exports over HTTP (Open Inference Protocol, seed PNGs, a web page, /metrics)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import click

from tgan_deploy._extras import require
from tgan_deploy.cli import TganCommand
from tgan_deploy.errors import ConfigError
from tgan_deploy.runtime.backends import BACKENDS
from tgan_deploy.serve.context import Limits


@click.command("serve", cls=TganCommand, help="""Serve MODEL over HTTP: an export directory (served under its
folder's name, or --name), or a folder of exports (each under its folder's name).

Endpoints: Open Inference Protocol under /v2 (tritonclient.http works unchanged; inputs `seed` INT64 [n] or
`z` FP32 [n, latent_dim], output `image` UINT8 NHWC); GET /v1/models/NAME/images/SEED.png (cacheable);
/v1/models/NAME/grid.png?seed=S&n=N; /v1/models/NAME/interpolate.png|gif?a=A&b=B&steps=K; a web page at /;
Prometheus metrics at /metrics; the OIP model repository API (/v2/repository/...) reloads exports from disk
without dropping requests, and so does SIGHUP. SIGTERM stops accepting, finishes in-flight requests and exits 0.
Beyond localhost: --api-key-file, --ssl-certfile/--ssl-keyfile, --cors-origin, --rate-limit. See docs/serve.md.""")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Serve a single export under this name [default: its folder's name].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the service to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: TensorRT engine on a GPU, else ONNX Runtime (CUDA if a GPU is present, else CPU).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Largest batch the batcher runs at once (concurrent requests are merged up to it).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads per batch [default: all cores available].")
@click.option("--max-queue", type=click.IntRange(min=1), default=256, show_default=True,
              help="Requests that may wait per model; beyond it requests get 503 with Retry-After.")
@click.option("--max-images", type=click.IntRange(min=1), default=256, show_default=True,
              help="Images one request may ask for (more: 422).")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=8 << 20, show_default=True,
              help="Largest request body (more: 413).")
@click.option("--graceful-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="On SIGTERM, seconds to let in-flight requests finish before closing them.")
@click.option("--api-key-file", type=click.Path(path_type=Path), default=None, envvar="TGAN_SERVE_API_KEY_FILE",
              help="Require an API key (one per line, # comments) on every route but the health probes: "
                   "`Authorization: Bearer KEY` or `X-API-Key: KEY` [env: TGAN_SERVE_API_KEY_FILE].")
@click.option("--ssl-certfile", type=click.Path(path_type=Path), default=None,
              help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path), default=None, help="The certificate's PEM key.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let browser pages on ORIGIN (e.g. https://app.example.com) call the API; repeatable "
                   "[default: no cross-origin access].")
@click.option("--rate-limit", type=float, default=None, metavar="N",
              help="At most N requests per second per API key (per client address without keys); beyond it 429 "
                   "with Retry-After [default: unlimited].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="info logs one access line per request.")
def main(model: Path, name: str | None, host: str, port: int, backend: str, device: str, max_batch: int,
         threads: int | None, max_queue: int, max_images: int, max_body_bytes: int, graceful_timeout: float,
         api_key_file: Path | None, ssl_certfile: Path | None, ssl_keyfile: Path | None, cors_origins: tuple[str, ...],
         rate_limit: float | None, log_level: str) -> None:
    uvicorn = require("uvicorn", "tgan-serve")
    require("starlette", "tgan-serve")
    require("prometheus_client", "tgan-serve")
    from tgan_deploy.serve.app import Guards, create_app
    from tgan_deploy.serve.context import ServeContext
    from tgan_deploy.serve.guards import read_api_keys
    from tgan_deploy.serve.metrics import Metrics
    from tgan_deploy.serve.registry import Registry, SamplerOptions, discover

    paths = discover(model, name)  # names checked now; models load once the server listens
    # every guard option is checked before anything starts: a mistake is one line and exit 2
    guards = Guards(tuple(read_api_keys(api_key_file)) if api_key_file else (), check_origins(cors_origins),
                    check_rate(rate_limit))
    if not guards.api_keys and not is_loopback(host):
        click.echo(f"warning: --host {host} without --api-key-file: anyone who can reach this port can use the "
                   "service", err=True)
    check_tls(ssl_certfile, ssl_keyfile)
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    metrics = Metrics()
    registry = Registry(paths, SamplerOptions(backend, device, max_batch, threads, max_queue), metrics.observe_batch)
    failed: list[bool] = []

    class Server(uvicorn.Server):  # type: ignore[misc, name-defined]
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:  # the orderly stop: exit 0 after the graceful shutdown, not uvicorn's 143
                getattr(self, "_captured_signals", []).clear()

    def stop_on_failure() -> None:
        failed.append(True)
        server.should_exit = True

    app = create_app(ServeContext(registry, Limits(max_images, max_body_bytes), metrics), stop_on_failure, guards)
    server = Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                   timeout_graceful_shutdown=graceful_timeout, log_level=log_level,
                                   ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile))
    if hasattr(signal, "SIGHUP"):  # uvicorn handles SIGINT/SIGTERM only; SIGHUP reloads every model from disk
        signal.signal(signal.SIGHUP, lambda sig, frame: threading.Thread(
            target=reload_all, args=(registry,), name="tgan-serve-reload", daemon=True).start())
    scheme = "https" if ssl_certfile else "http"
    click.echo(f"tgan-serve: {', '.join(paths)} on {scheme}://{host}:{port}/ (loading)", err=True)
    server.run()
    if failed:
        sys.exit(1)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    """CORS origins as browsers send them (scheme://host[:port], no path), or "*"; ConfigError otherwise."""
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path
                              or parts.query or parts.fragment):
            raise ConfigError(f"--cors-origin {origin!r} is not an origin: write scheme://host[:port] with no path, "
                              "e.g. https://app.example.com")
    return origins


def check_rate(rate: float | None) -> float | None:
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate-limit {rate:g} must be a positive number of requests per second, e.g. 20")
    return rate


def check_tls(certfile: Path | None, keyfile: Path | None) -> None:
    """Both files or neither, readable and a matching certificate and key: else ConfigError before starting."""
    if certfile is None and keyfile is None:
        return
    if certfile is None or keyfile is None:
        raise ConfigError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{option} {path} cannot be read ({exc.strerror}): give a readable PEM file") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)[:120]
        raise ConfigError(f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile} are not a PEM certificate and its "
                          f"key ({reason})") from None


def reload_all(registry: Any) -> None:
    """SIGHUP: every served model loaded from disk again and swapped in; a failure keeps the old one (logged)."""
    from tgan_deploy.serve.registry import ReloadError

    log = logging.getLogger("tgan_deploy.serve")
    for name in registry.names:
        try:
            model = registry.reload(name)
        except ReloadError as exc:
            log.error("tgan-serve: reload: %s", exc)
        else:
            log.info("tgan-serve: reloaded %s (%s)", name, model.artefact_sha256[:12])
