"""HTTP answers for errors: every failure is a status code plus {"error": "<one line naming the fix>"}."""

from __future__ import annotations

from tgan_deploy.errors import TganError
from tgan_deploy.runtime.errors import (
    BatcherClosedError,
    InvalidLabelError,
    InvalidLatentError,
    InvalidLatentOptionError,
    InvalidSeedError,
    QueueFullError,
)
from tgan_deploy.serve.oip import ProtocolError
from tgan_deploy.serve.registry import ModelUnloadedError, ReloadError, UnknownModelError

RETRY_AFTER_S = 1


class HttpError(TganError):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def http_error(exc: Exception) -> HttpError:
    """The HTTP answer for an exception raised while serving a request."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, (InvalidSeedError, InvalidLatentError, InvalidLatentOptionError, InvalidLabelError,
                        ProtocolError)):
        return HttpError(400, str(exc))
    if isinstance(exc, UnknownModelError):
        return HttpError(404, str(exc))
    if isinstance(exc, (ModelUnloadedError, ReloadError)):  # as Triton answers them: 400 with the reason
        return HttpError(400, str(exc))
    if isinstance(exc, (QueueFullError, BatcherClosedError)):
        message = ("the server is busy (queue full): retry after the Retry-After seconds"
                   if isinstance(exc, QueueFullError) else "the server is shutting down: retry on another replica")
        return HttpError(503, message, {"Retry-After": str(RETRY_AFTER_S)})
    return HttpError(500, f"internal error ({type(exc).__name__}): see the server log")
