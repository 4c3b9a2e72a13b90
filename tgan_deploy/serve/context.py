"""What every route needs: the registry, the limits, the metrics, and the request helpers built on them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tgan_deploy.serve.errors import HttpError
from tgan_deploy.serve.metrics import Metrics
from tgan_deploy.serve.registry import Registry, ServedModel


@dataclasses.dataclass(frozen=True)
class Limits:
    max_images: int = 256  # per request
    max_body_bytes: int = 8 << 20


@dataclasses.dataclass
class ServeContext:
    registry: Registry
    limits: Limits
    metrics: Metrics

    def model(self, name: str) -> ServedModel:
        """The loaded model `name`: 404 if not served, 503 (Retry-After) while it is still warming up."""
        model = self.registry.get(name)  # UnknownModelError -> 404 through the app's TganError handler
        if model is None:
            raise HttpError(503, f"model {name!r} is still loading: retry shortly (GET /v2/health/ready says when)",
                            {"Retry-After": "1"})
        return model

    def check_count(self, n: int) -> None:
        if n > self.limits.max_images:
            raise HttpError(422, f"the request asks for {n} images; this server's limit is {self.limits.max_images} "
                                 "per request (tgan-serve --max-images): split it")

    async def run(self, submit: Callable[[], Future[np.ndarray]], offload: bool = False) -> np.ndarray:
        """Queue one request on a batcher and await its images. `submit` validates and computes the latents;
        offload: do that in a worker thread (many seeds or truncation), not on the event loop."""
        future = await run_in_threadpool(submit) if offload else submit()  # QueueFullError -> 503 (app handler)
        return await asyncio.wrap_future(future)

    async def body(self, request: Request) -> bytes:
        """The request body, refused with 413 past max_body_bytes (before reading it when Content-Length says so)."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"the request body is {int(declared)} bytes; the limit is {limit} "
                                 "(tgan-serve --max-body-bytes): send fewer inputs per request")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the request body exceeds {limit} bytes (tgan-serve --max-body-bytes): "
                                     "send fewer inputs per request")
            chunks.append(chunk)
        return b"".join(chunks)
