"""Seed-native routes (/v1): one seed's PNG, a grid of many seeds, an interpolation strip or GIF; all cacheable.

An image is a pure function of (artefact, seeds, options), so each response has a strong ETag derived from
those and `Cache-Control: immutable`: any HTTP cache or CDN in front of the service is correct.

Options (query parameters): truncation, psi; style models also psi_cutoff, mix_seed and mix_cutoff
(truncation in w on the first psi_cutoff layers; layers from mix_cutoff on from mix_seed: runtime/wspace.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

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
)
from tgan_deploy.runtime.provenance import w_info
from tgan_deploy.runtime.sampler import interpolation_method
from tgan_deploy.runtime.wspace import lerp_ws, refuse_w_controls
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


@dataclasses.dataclass(frozen=True)
class Options:
    """The latent and w-space controls of one request, checked against the model."""

    truncation: float | None = None
    psi: float | None = None
    psi_cutoff: int | None = None
    mix_seed: int | None = None
    mix_cutoff: int | None = None

    def submit_args(self) -> dict[str, Any]:
        """Keywords of BatchingSampler.submit (the w ones only where given, so plain models take them)."""
        return {"truncation": self.truncation, "psi": self.psi,
                **w_info(psi_cutoff=self.psi_cutoff, mix_seeds=self.mix_seed, mix_cutoff=self.mix_cutoff)}

    def key(self) -> str:
        return f"t={self.truncation!r}|psi={self.psi!r}" + "".join(
            f"|{k}={v}" for k, v in w_info(psi_cutoff=self.psi_cutoff, mix=self.mix_seed,
                                            mix_cutoff=self.mix_cutoff).items())


def _options(request: Request, model: ServedModel) -> Options:
    """?truncation=&psi= (and, style models, &psi_cutoff=&mix_seed=&mix_cutoff=), checked now: a bad value is a
    400 even when the ETag would match."""
    truncation, psi = _number(request, "truncation"), _number(request, "psi")
    check_latent_options(truncation, psi)
    mix_text = request.query_params.get("mix_seed")
    options = Options(truncation, psi, _optional_int(request, "psi_cutoff"),
                      None if mix_text is None else parse_seed(mix_text, "mix_seed"),
                      _optional_int(request, "mix_cutoff"))
    mixing = options.mix_seed is not None
    if model.sampler.w_space:
        model.sampler.w_controls(psi, options.psi_cutoff, mixing, options.mix_cutoff)
    else:
        refuse_w_controls(options.psi_cutoff, mixing, options.mix_cutoff)
    return options


def _optional_int(request: Request, name: str) -> int | None:
    return _int(request, name, 1) if request.query_params.get(name) is not None else None


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


def _options_key(options: Options, label: int | None) -> str:
    return options.key() + ("" if label is None else f"|label={label}")


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
    options = _options(request, model)
    label = _label(request, model)

    async def produce() -> bytes:
        images = await _ctx(request).run(lambda: model.batcher.submit([seed], labels=label, block=False,
                                                                      **options.submit_args()),
                                         offload=options.truncation is not None)
        return png_bytes(images[0])

    return await _cached(request, model, f"image|{seed}|{_options_key(options, label)}", "image/png", produce)


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
    options = _options(request, model)
    label = _label(request, model)

    async def produce() -> bytes:
        images = await ctx.run(lambda: model.batcher.submit(seeds, labels=label, block=False,
                                                            **options.submit_args()), offload=True)
        return await run_in_threadpool(grid_png, images, columns)

    key = f"grid|{','.join(map(str, seeds))}|c={columns}|{_options_key(options, label)}"
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
    method = interpolation_method(model.sampler, request.query_params.get("method"))  # style models: lerp in w
    check_interpolation(steps, method)
    frame_ms = _int(request, "frame_ms", 100, low=10)
    options = _options(request, model)
    if options.mix_seed is not None:
        raise HttpError(400, "mix_seed mixes the styles of images and grids, not of an interpolation: drop it")
    label = _label(request, model)
    sampler = model.sampler

    def submit():  # type: ignore[no-untyped-def]
        if sampler.w_space:  # the ends' ws (one mapping pass, in this worker thread), then synthesis batched
            ends = sampler.seed_ws([a, b], truncation=options.truncation, psi=options.psi,
                                   psi_cutoff=options.psi_cutoff, labels=label)
            return model.batcher.submit_ws(lerp_ws(ends[0], ends[1], steps), block=False)
        z_ends = sampler.seed_latents([a, b], truncation=options.truncation, psi=options.psi)
        return model.batcher.submit_latents(interpolate_latents(z_ends[0], z_ends[1], steps, method), label,
                                            block=False)

    async def produce() -> bytes:
        frames = await ctx.run(submit, offload=True)
        if fmt == "gif":
            return await run_in_threadpool(gif_bytes, frames, 1000 / frame_ms)
        return await run_in_threadpool(grid_png, frames, steps)

    key = (f"interp|{a}|{b}|{steps}|{method}|{fmt}|{frame_ms if fmt == 'gif' else ''}|"
           f"{_options_key(options, label)}")
    return await _cached(request, model, key, f"image/{fmt}", produce)


ROUTES = [
    Route("/v1/models", list_models),
    Route("/v1/models/{name}/images/{seed}.png", seed_png),
    Route("/v1/models/{name}/grid.png", grid),
    Route("/v1/models/{name}/interpolate.{format:str}", interpolation),
]
