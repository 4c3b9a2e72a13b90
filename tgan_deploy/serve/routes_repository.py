"""The OIP model repository extension (Triton's explicit model control): index, load (= reload from disk), unload.

`load` opens the export on disk beside the serving version and swaps it in (Registry.reload); a broken export
answers 400 with the reason and the old version keeps serving. SIGHUP does the same for every model (cli.py).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tgan_deploy.serve.context import ServeContext


def _ctx(request: Request) -> ServeContext:
    ctx: ServeContext = request.app.state.ctx
    return ctx


async def index(request: Request) -> Response:
    return JSONResponse(_ctx(request).registry.index())


async def load(request: Request) -> Response:
    # opening and warming up a model takes seconds: off the event loop, which keeps serving meanwhile
    await run_in_threadpool(_ctx(request).registry.reload, request.path_params["name"])
    return JSONResponse({})


async def unload(request: Request) -> Response:
    _ctx(request).registry.unload(request.path_params["name"])
    return JSONResponse({})


ROUTES = [
    Route("/v2/repository/index", index, methods=["POST"]),
    Route("/v2/repository/models/{name}/load", load, methods=["POST"]),
    Route("/v2/repository/models/{name}/unload", unload, methods=["POST"]),
]
