"""Open Inference Protocol routes (/v2): health, server and model metadata, infer (JSON and binary tensors)."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tgan_deploy import __version__
from tgan_deploy.artefact import INPUT_NAME, LABEL_NAME
from tgan_deploy.serve.context import ServeContext
from tgan_deploy.serve.errors import HttpError
from tgan_deploy.serve.oip import DATATYPE_OF, HEADER_LENGTH, InferRequest, decode_request, encode_response
from tgan_deploy.serve.registry import ServedModel

SEED_INPUT, LATENT_INPUT, LABEL_INPUT = "seed", INPUT_NAME, LABEL_NAME  # label: class-conditional models
MIX_SEED_INPUT = "mix_seed"  # style models: INT64 [n] or [1], with the mix_cutoff parameter (runtime/wspace.py)
W_PARAMETERS = ("psi_cutoff", "mix_cutoff")  # request parameters of style models only
VERSION = "1"  # each export is one immutable version
OFFLOAD_ABOVE = 64  # input values: more, or truncation, and the latents are computed off the event loop


def _ctx(request: Request) -> ServeContext:
    ctx: ServeContext = request.app.state.ctx
    return ctx


def _model(request: Request) -> ServedModel:
    version = request.path_params.get("version", VERSION)
    model = _ctx(request).model(request.path_params["name"])
    if version != VERSION:
        raise HttpError(404, f"model {model.name!r} has only version {VERSION}, not {version[:20]!r}")
    return model


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    is_ready = _ctx(request).registry.ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "tgan-serve", "version": __version__,
                         "extensions": ["binary_tensor_data", "model_repository"]})


def model_metadata_dict(model: ServedModel) -> dict[str, Any]:
    output = model.sampler.metadata
    style = model.sampler.w_space
    out_dtype = "FP32" if model.sampler.kind == "points" else "UINT8"
    return {
        "name": model.name, "versions": [VERSION], "platform": f"tgan-deploy/{model.sampler.backend}",
        "inputs": [{"name": SEED_INPUT, "datatype": "INT64", "shape": [-1]},
                   {"name": LATENT_INPUT, "datatype": "FP32", "shape": [-1, model.sampler.latent_dim]},
                   *([{"name": LABEL_INPUT, "datatype": "INT64", "shape": [-1]}] if model.sampler.num_classes else []),
                   *([{"name": MIX_SEED_INPUT, "datatype": "INT64", "shape": [-1]}] if style else [])],
        "outputs": [{"name": model.output_name, "datatype": out_dtype,
                     "shape": [-1, *model.image_shape]}],
        "parameters": {"kind": output["kind"], "latent_dim": model.sampler.latent_dim,
                       "artefact_sha256": model.artefact_sha256,
                       "request_parameters": ["truncation", "psi", *(W_PARAMETERS if style else ())],
                       "layout": "NHWC", "seed_rule": model.sampler.seed_rule,
                       **({"classes": model.sampler.classes} if model.sampler.num_classes else {}),
                       **({"num_ws": model.sampler.num_ws} if style else {})},
    }


async def model_metadata(request: Request) -> Response:
    return JSONResponse(model_metadata_dict(_model(request)))


async def model_ready(request: Request) -> Response:
    _model(request)  # 404 unknown, 503 loading
    return JSONResponse({"name": request.path_params["name"], "ready": True})


async def infer(request: Request) -> Response:
    ctx = _ctx(request)
    model = _model(request)
    req = decode_request(await ctx.body(request), request.headers.get(HEADER_LENGTH))
    offload = "truncation" in req.parameters or sum(a.size for a in req.inputs.values()) > OFFLOAD_ABOVE
    output_name = model.output_name
    if req.outputs is None:
        binary = {output_name: bool(req.parameters.get("binary_data_output", False))}
    else:  # checked before inference: a bad request costs no batch
        unknown = set(req.outputs) - {output_name}
        if unknown:
            raise HttpError(400, f"unknown output {sorted(unknown)[0][:40]!r}: this model's output is {output_name!r}")
        binary = req.outputs
    images = await ctx.run(lambda: _submit(ctx, model, req), offload)
    body, headers = encode_response(model.name, req.id, {output_name: images}, binary)
    media = "application/octet-stream" if headers else "application/json"
    return Response(body, media_type=media, headers=headers)


def _submit(ctx: ServeContext, model: ServedModel, req: InferRequest) -> Any:
    """Validate the inputs (in the caller's thread) and queue them on the model's batcher."""
    labels = req.inputs.get(LABEL_INPUT)
    mix = req.inputs.get(MIX_SEED_INPUT)
    unknown = set(req.inputs) - {SEED_INPUT, LATENT_INPUT, LABEL_INPUT, MIX_SEED_INPUT}
    if unknown:
        raise HttpError(400, f"unknown input {sorted(unknown)[0][:40]!r}: send {SEED_INPUT!r} (INT64 [n]) or "
                             f"{LATENT_INPUT!r} (FP32 [n, {model.sampler.latent_dim}]), and {LABEL_INPUT!r} "
                             f"(INT64 [n] or [1]) for a class-conditional model, {MIX_SEED_INPUT!r} (INT64 [n] or "
                             "[1]) for style mixing")
    if len(set(req.inputs) - {LABEL_INPUT, MIX_SEED_INPUT}) != 1:
        raise HttpError(400, f"send exactly one of {SEED_INPUT!r} and {LATENT_INPUT!r}")
    for name, given in ((LABEL_INPUT, labels), (MIX_SEED_INPUT, mix)):
        if given is not None and (given.dtype.kind not in "iu" or given.ndim != 1):
            raise HttpError(400, f"input {name!r} must be INT64 of shape [n] or [1], got "
                                 f"{DATATYPE_OF.get(given.dtype, given.dtype)} {list(given.shape)}")
    truncation, psi = req.parameters.get("truncation"), req.parameters.get("psi")  # checked by the batcher
    w_parameters = {name: req.parameters[name] for name in W_PARAMETERS if name in req.parameters}
    if SEED_INPUT in req.inputs:
        seeds = req.inputs[SEED_INPUT]
        if seeds.dtype.kind not in "iu" or seeds.ndim != 1:
            raise HttpError(400, f"input {SEED_INPUT!r} must be INT64 of shape [n], got "
                                 f"{DATATYPE_OF.get(seeds.dtype, seeds.dtype)} {list(seeds.shape)}")
        ctx.check_count(len(seeds))
        mix_seeds = None if mix is None else int(mix[0]) if len(mix) == 1 else mix.tolist()
        return model.batcher.submit(seeds.tolist(), truncation=truncation, psi=psi, labels=labels, block=False,
                                    mix_seeds=mix_seeds, **w_parameters)
    z = req.inputs[LATENT_INPUT]
    if mix is not None or "mix_cutoff" in w_parameters:
        raise HttpError(400, f"style mixing takes the {SEED_INPUT!r} input (the mix seeds' latents come from "
                             f"{MIX_SEED_INPUT!r}); mix latents yourself through {LATENT_INPUT!r}")
    if truncation is not None or (psi is not None and not model.sampler.w_space):
        raise HttpError(400, f"truncation (and psi, except for a style model) apply to the {SEED_INPUT!r} input; "
                             f"scale or clip {LATENT_INPUT!r} yourself")
    if z.dtype != np.float32 or z.ndim != 2 or z.shape[1] != model.sampler.latent_dim:
        raise HttpError(400, f"input {LATENT_INPUT!r} must be FP32 of shape [n, {model.sampler.latent_dim}], got "
                             f"{DATATYPE_OF.get(z.dtype, z.dtype)} {list(z.shape)}")
    ctx.check_count(len(z))
    return model.batcher.submit_latents(z, labels, block=False, psi=psi, **w_parameters)


ROUTES = [
    Route("/v2/health/live", live),
    Route("/v2/health/ready", ready),
    Route("/v2", server_metadata),
    Route("/v2/models/{name}", model_metadata),
    Route("/v2/models/{name}/versions/{version}", model_metadata),
    Route("/v2/models/{name}/ready", model_ready),
    Route("/v2/models/{name}/versions/{version}/ready", model_ready),
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
]
