"""The ASGI application: routes, the page, /metrics, one-line JSON errors, an access log line per request.

Models load and warm up in a background thread once the server listens: /v2/health/live answers at once,
/v2/health/ready only after every model is warm.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgan_deploy.errors import TganError
from tgan_deploy.runtime.batching import BatchingSampler
from tgan_deploy.serve import routes_images, routes_oip
from tgan_deploy.serve.context import ServeContext
from tgan_deploy.serve.errors import http_error

ACCESS_LOG = logging.getLogger("tgan_deploy.serve.access")
LOG = logging.getLogger("tgan_deploy.serve")


PAGE = resources.files("tgan_deploy.serve").joinpath("static/index.html")


async def page(request: Request) -> Response:
    html: bytes = request.app.state.page
    return Response(html, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    ctx: ServeContext = request.app.state.ctx
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):  # routing: unknown path or method
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path[:100]} is not served "
                                      "(see GET /v1/models and docs/serve.md)"}, status_code=exc.status_code)
    answer = http_error(exc)
    return JSONResponse({"error": str(answer)}, status_code=answer.status, headers=answer.headers)


class ObserveMiddleware:
    """Counts and times every request by its route template (never the raw path), and logs one line for it."""

    def __init__(self, app: ASGIApp, ctx: ServeContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")  # the router records the route it matched
            self.ctx.metrics.observe_request(scope["method"], route, status, seconds)
            client = scope.get("client") or ("-", 0)
            ACCESS_LOG.info('%s "%s %s" %d %.1fms', client[0], scope["method"], scope["path"][:200], status,
                            seconds * 1000)


def _depth_of(batcher: BatchingSampler) -> Callable[[], int]:
    return lambda: batcher.queue_depth


def create_app(ctx: ServeContext, on_load_failure: Callable[[], None] | None = None) -> Starlette:
    routes = [Route("/", page), Route("/metrics", metrics), *routes_oip.ROUTES, *routes_images.ROUTES]

    def load() -> None:
        try:
            ctx.registry.load()
        except Exception:
            LOG.exception("tgan-serve: loading the models failed; stopping")
            if on_load_failure is not None:
                on_load_failure()
            return
        for model in ctx.registry.loaded():
            ctx.metrics.track_queue(model.name, _depth_of(model.batcher))
        LOG.info("tgan-serve: ready (%s)", ", ".join(f"{m.name}: {m.sampler.backend} {m.sampler.providers}"
                                                     for m in ctx.registry.loaded()))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loader = threading.Thread(target=load, name="tgan-serve-load", daemon=True)
        loader.start()
        try:
            yield
        finally:  # after the server stopped accepting and in-flight requests finished
            loader.join(60)
            ctx.registry.close()

    handlers: dict[Any, Any] = {TganError: _error, HTTPException: _error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.ctx = ctx
    app.state.page = PAGE.read_bytes()  # read once, not on the event loop per request
    app.add_middleware(ObserveMiddleware, ctx=ctx)  # type: ignore[arg-type]
    return app
