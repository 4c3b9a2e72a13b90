"""The ASGI application: routes, the page, /metrics, one-line JSON errors, an access log line per request.

Models load and warm up in a background thread once the server listens: /v2/health/live answers at once,
/v2/health/ready only after every model is warm. The guard rails (guards.py) are middleware around the
routes, configured by `Guards`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgan_deploy.errors import TganError
from tgan_deploy.serve import routes_images, routes_oip, routes_repository
from tgan_deploy.serve.context import ServeContext
from tgan_deploy.serve.errors import http_error
from tgan_deploy.serve.guards import KEY_HEADER, ApiKeyMiddleware, RateLimitMiddleware

ACCESS_LOG = logging.getLogger("tgan_deploy.serve.access")
LOG = logging.getLogger("tgan_deploy.serve")


PAGE = resources.files("tgan_deploy.serve").joinpath("static/index.html")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a client's X-Request-ID is kept only if it looks like an id


@dataclasses.dataclass(frozen=True)
class Guards:
    """What protects a server beyond localhost (all off by default): keys, browser origins, a per-client rate."""

    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    rate_limit: float | None = None  # requests per second per client


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
    """Counts and times every request by its route template (never the raw path), logs one line for it, and gives
    it a request id: the client's X-Request-ID, else a new one, returned in the response's X-Request-ID."""

    def __init__(self, app: ASGIApp, ctx: ServeContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        given = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")  # the router records the route it matched
            self.ctx.metrics.observe_request(scope["method"], route, status, seconds)
            client = scope.get("client") or ("-", 0)
            ACCESS_LOG.info('%s "%s %s" %d %.1fms id=%s', client[0], scope["method"], scope["path"][:200], status,
                            seconds * 1000, request_id)


def _depth_of(ctx: ServeContext, name: str) -> Callable[[], int]:
    """The queue depth of whichever version of `name` serves now (a reload swaps the batcher)."""

    def depth() -> int:
        model = next((m for m in ctx.registry.loaded() if m.name == name), None)
        return 0 if model is None else model.batcher.queue_depth

    return depth


def create_app(ctx: ServeContext, on_load_failure: Callable[[], None] | None = None,
               guards: Guards = Guards()) -> Starlette:
    routes = [Route("/", page), Route("/metrics", metrics), *routes_oip.ROUTES, *routes_images.ROUTES,
              *routes_repository.ROUTES]

    def load() -> None:
        try:
            ctx.registry.load()
        except Exception:
            LOG.exception("tgan-serve: loading the models failed; stopping")
            if on_load_failure is not None:
                on_load_failure()
            return
        for name in ctx.registry.names:
            ctx.metrics.track_queue(name, _depth_of(ctx, name))
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
    # add_middleware wraps: the last added is the outermost. Innermost first: rate limit, keys, CORS, observe.
    if guards.rate_limit is not None:
        app.add_middleware(RateLimitMiddleware, rate=guards.rate_limit,  # type: ignore[arg-type]
                           on_limited=ctx.metrics.rate_limited.inc)
    if guards.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=list(guards.api_keys))  # type: ignore[arg-type]
    if guards.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(guards.cors_origins),  # type: ignore[arg-type]
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", KEY_HEADER, "X-Request-ID",
                                          "Inference-Header-Content-Length"],
                           expose_headers=["ETag", "X-Request-ID", "Inference-Header-Content-Length"])
    app.add_middleware(ObserveMiddleware, ctx=ctx)  # type: ignore[arg-type]
    return app
