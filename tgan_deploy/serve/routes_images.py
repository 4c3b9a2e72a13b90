"""Seed-native routes (/v1): one seed's PNG, a grid of many seeds, an interpolation strip or GIF; all cacheable.

An image is a pure function of (artefact, seeds, options), so each response has a strong ETag derived from
those and `Cache-Control: immutable`: any HTTP cache or CDN in front of the service is correct.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tgan_deploy.runtime.animation import gif_bytes
from tgan_deploy.runtime.images import png_bytes
from tgan_deploy.runtime.latents import (
    MAX_SEED,
    check_interpolation,
    check_latent_options,
    check_seed,
    interpolate_latents,
    latents,
)
from tgan_deploy.serve.context import ServeContext
from tgan_deploy.serve.errors import HttpError
from tgan_deploy.serve.images import grid_png
from tgan_deploy.serve.registry import ServedModel

CACHE_CONTROL = "public, max-age=31536000, immutable"
SEED_TEXT = re.compile(r"\d{1,19}")


def _ctx(request: Request) -> ServeContext:
    ctx: ServeContext = request.app.state.ctx
    return ctx


def _image_model(request: Request) -> ServedModel:
    model = _ctx(request).model(request.path_params["name"])
    if model.sampler.kind != "image":
        raise HttpError(422, f"model {model.name!r} outputs 2-D points, not images: use POST /v2/models/"
                             f"{model.name}/infer")
    return model


def parse_seed(text: str, what: str = "seed") -> int:
    """A seed in a URL: digits only (so no sign, space or float), in the range `latents.check_seed` allows."""
    if not SEED_TEXT.fullmatch(text):
        raise HttpError(400, f"{what} {text[:30]!r} is not a non-negative integer (0 .. {MAX_SEED})")
    return check_seed(int(text), what=what)


def _options(request: Request) -> tuple[float | None, float | None]:
    """?truncation=&psi=, checked now: a bad value is a 400 even when the ETag would match."""
    truncation, psi = _number(request, "truncation"), _number(request, "psi")
    check_latent_options(truncation, psi)
    return truncation, psi


def _number(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise HttpError(400, f"query parameter {name}={text[:30]!r} is not a number") from None


def _int(request: Request, name: str, default: int, low: int = 1) -> int:
    text = request.query_params.get(name, str(default))
    if not (text.isascii() and text.isdigit()) or int(text) < low:
        raise HttpError(400, f"query parameter {name}={text[:30]!r} must be an integer >= {low}")
    return int(text)


async def _cached(request: Request, model: ServedModel, key: str, media: str,
                  produce: Callable[[], Awaitable[bytes]]) -> Response:
    """304 if the client already holds this exact image (If-None-Match), else the produced body with its ETag."""
    etag = '"' + hashlib.sha256(f"{model.artefact_sha256}|{key}".encode()).hexdigest()[:40] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    sent = request.headers.get("if-none-match", "")
    if etag in [tag.strip().removeprefix("W/") for tag in sent.split(",")] or sent.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(await produce(), media_type=media, headers=headers)


def _options_key(truncation: float | None, psi: float | None, label: int | None) -> str:
    return f"t={truncation!r}|psi={psi!r}" + ("" if label is None else f"|label={label}")


def _label(request: Request, model: ServedModel) -> int | None:
    """?label=7 or ?label=seven: the class index (None for an unconditional model); 400 naming the classes."""
    labels = model.sampler.check_labels(request.query_params.get("label"), 1)
    return None if labels is None else int(labels[0])


async def list_models(request: Request) -> Response:
    registry = _ctx(request).registry
    loaded = {m.name: m for m in registry.loaded()}
    models = []
    for name in registry.names:
        entry: dict[str, object] = {"name": name, "ready": name in loaded}
        if name in loaded:
            m = loaded[name]
            entry.update(kind=m.sampler.kind, latent_dim=m.sampler.latent_dim, shape=m.image_shape,
                         backend=m.sampler.backend, artefact_sha256=m.artefact_sha256, classes=m.sampler.classes)
        models.append(entry)
    return JSONResponse({"models": models, "max_images": _ctx(request).limits.max_images})


async def seed_png(request: Request) -> Response:
    model = _image_model(request)
    seed = parse_seed(request.path_params["seed"])
    truncation, psi = _options(request)
    label = _label(request, model)

    async def produce() -> bytes:
        images = await _ctx(request).run(lambda: model.batcher.submit([seed], truncation=truncation, psi=psi,
                                                                      labels=label, block=False),
                                         offload=truncation is not None)
        return png_bytes(images[0])

    return await _cached(request, model, f"image|{seed}|{_options_key(truncation, psi, label)}", "image/png", produce)


def _grid_seeds(request: Request) -> list[int]:
    listed = request.query_params.get("seeds")
    if listed is not None:
        seeds = [parse_seed(part.strip()) for part in listed.split(",") if part.strip()]
        if not seeds:
            raise HttpError(400, "seeds= is empty: give comma-separated seeds, e.g. seeds=3,17,42")
        return seeds
    start, n = _int(request, "seed", 0, low=0), _int(request, "n", 16)
    _ctx(request).check_count(n)
    return list(range(start, start + n))


async def grid(request: Request) -> Response:
    """Many seeds in one request: ?seeds=3,17,42 or ?seed=S&n=N (seeds S .. S+N-1), as one grid PNG."""
    ctx, model = _ctx(request), _image_model(request)
    seeds = _grid_seeds(request)
    ctx.check_count(len(seeds))
    columns = _int(request, "columns", 0, low=0) or None
    truncation, psi = _options(request)
    label = _label(request, model)

    async def produce() -> bytes:
        images = await ctx.run(lambda: model.batcher.submit(seeds, truncation=truncation, psi=psi, labels=label,
                                                            block=False), offload=True)
        return await run_in_threadpool(grid_png, images, columns)

    key = f"grid|{','.join(map(str, seeds))}|c={columns}|{_options_key(truncation, psi, label)}"
    return await _cached(request, model, key, "image/png", produce)


async def interpolation(request: Request) -> Response:
    """?a=SEED&b=SEED&steps=8&method=slerp: the morph from a's image to b's, as a strip PNG or a looping GIF."""
    ctx, model = _ctx(request), _image_model(request)
    fmt = request.path_params["format"]
    if fmt not in ("png", "gif"):
        raise HttpError(404, f"interpolate.{fmt[:10]} is not served: ask for interpolate.png (a strip) or .gif")
    a = parse_seed(request.query_params.get("a", ""), "a")
    b = parse_seed(request.query_params.get("b", ""), "b")
    steps = _int(request, "steps", 8, low=2)
    ctx.check_count(steps)
    method = request.query_params.get("method", "slerp")
    check_interpolation(steps, method)
    frame_ms = _int(request, "frame_ms", 100, low=10)
    truncation, psi = _options(request)
    label = _label(request, model)

    def submit():  # type: ignore[no-untyped-def]
        ends = latents([a, b], model.sampler.latent_dim, truncation=truncation, psi=psi)
        return model.batcher.submit_latents(interpolate_latents(ends[0], ends[1], steps, method), label,
                                            block=False)

    async def produce() -> bytes:
        frames = await ctx.run(submit, offload=True)
        if fmt == "gif":
            return await run_in_threadpool(gif_bytes, frames, 1000 / frame_ms)
        return await run_in_threadpool(grid_png, frames, steps)

    key = (f"interp|{a}|{b}|{steps}|{method}|{fmt}|{frame_ms if fmt == 'gif' else ''}|"
           f"{_options_key(truncation, psi, label)}")
    return await _cached(request, model, key, f"image/{fmt}", produce)


ROUTES = [
    Route("/v1/models", list_models),
    Route("/v1/models/{name}/images/{seed}.png", seed_png),
    Route("/v1/models/{name}/grid.png", grid),
    Route("/v1/models/{name}/interpolate.{format:str}", interpolation),
]
