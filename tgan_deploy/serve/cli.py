"""`tgan-serve MODEL`: serve exports over HTTP (Open Inference Protocol, seed PNGs, a web page, /metrics)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from tgan_deploy._extras import require
from tgan_deploy.cli import TganCommand
from tgan_deploy.runtime.backends import BACKENDS
from tgan_deploy.serve.context import Limits


@click.command("serve", cls=TganCommand, help="""Serve MODEL over HTTP: an export directory (served under its
folder's name, or --name), or a folder of exports (each under its folder's name).

Endpoints: Open Inference Protocol under /v2 (tritonclient.http works unchanged; inputs `seed` INT64 [n] or
`z` FP32 [n, latent_dim], output `image` UINT8 NHWC); GET /v1/models/NAME/images/SEED.png (cacheable);
/v1/models/NAME/grid.png?seed=S&n=N; /v1/models/NAME/interpolate.png|gif?a=A&b=B&steps=K; a web page at /;
Prometheus metrics at /metrics. SIGTERM stops accepting, finishes in-flight requests and exits 0.
See docs/serve.md.""")
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
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="info logs one access line per request.")
def main(model: Path, name: str | None, host: str, port: int, backend: str, device: str, max_batch: int,
         threads: int | None, max_queue: int, max_images: int, max_body_bytes: int, graceful_timeout: float,
         log_level: str) -> None:
    uvicorn = require("uvicorn", "tgan-serve")
    require("starlette", "tgan-serve")
    require("prometheus_client", "tgan-serve")
    from tgan_deploy.serve.app import create_app
    from tgan_deploy.serve.context import ServeContext
    from tgan_deploy.serve.metrics import Metrics
    from tgan_deploy.serve.registry import Registry, SamplerOptions, discover

    paths = discover(model, name)  # names checked now; models load once the server listens
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

    app = create_app(ServeContext(registry, Limits(max_images, max_body_bytes), metrics), stop_on_failure)
    server = Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                   timeout_graceful_shutdown=graceful_timeout, log_level=log_level))
    click.echo(f"tgan-serve: {', '.join(paths)} on http://{host}:{port}/ (loading)", err=True)
    server.run()
    if failed:
        sys.exit(1)
