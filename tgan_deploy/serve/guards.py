"""Guard rails for a server beyond localhost, as ASGI middleware in front of the routes: API keys, per-client rates.

Order (outermost first, see app.py): the access log with request ids, CORS (Starlette's CORSMiddleware answers
preflights before any key is asked for: browsers send none with them), API keys, the per-client rate limit.
The health probes stay open (a load balancer or kubelet has no key) and are never rate limited.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from tgan_deploy.errors import ConfigError

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
KEY_HEADER = "x-api-key"  # besides `Authorization: Bearer KEY`: a plain header tritonclient's headers= sends as is
MIN_KEY_LENGTH = 16


def read_api_keys(path: Path) -> list[str]:
    """The keys of a keys file: one per line, `#` comments and blank lines skipped; ConfigError if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"--api-key-file {path} cannot be read ({reason}): give a readable UTF-8 file, "
                          "one key per line") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.split("#", 1)[0].strip()
        if not key:
            continue
        if len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
            raise ConfigError(f"--api-key-file {path} line {number}: a key must be {MIN_KEY_LENGTH}+ printable ASCII "
                              "characters without spaces (e.g. from `openssl rand -hex 24`)")
        keys.append(key)
    if not keys:
        raise ConfigError(f"--api-key-file {path} holds no key: write one key per line")
    return keys


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """401 (with WWW-Authenticate) unless the request carries one of the keys; the key's index (never the key)
    becomes the request's client id for the rate limit."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]

    def _match(self, token: str) -> int | None:
        given, found = token.encode("latin-1", "replace"), None
        for index, key in enumerate(self.keys):  # every key compared, in constant time each: no early exit
            if hmac.compare_digest(given, key) and found is None:
                found = index
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization") or ""
        scheme, _, bearer = authorization.partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else (_header(scope, KEY_HEADER.encode()) or "")
        index = self._match(token) if token else None
        if index is None:
            what = "a wrong API key" if token else "no API key"
            await _refuse(send, 401, f"this server needs an API key and the request has {what}: send "
                                     "`Authorization: Bearer KEY` (or an X-API-Key header)",
                          {"WWW-Authenticate": 'Bearer realm="tgan-serve"'})
            return
        scope.setdefault("state", {})["client"] = f"key-{index}"
        await self.app(scope, receive, send)


class TokenBucket:
    """`rate` requests per second, bursts of up to max(1, rate): the classic token bucket."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.stamp = self.capacity, now

    def take(self, now: float) -> float:
        """0 if a request may pass now (one token taken), else the seconds until it may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimitMiddleware:
    """429 with Retry-After past `rate` requests/s per client: its API key, else its address. Each client has its
    own bucket, so a flooding client spends only its own tokens and the others are served as before."""

    MAX_CLIENTS = 10_000  # buckets kept; past it the idle (full) ones are dropped

    def __init__(self, app: ASGIApp, rate: float, on_limited: Callable[[], None] | None = None) -> None:
        self.app, self.rate = app, rate
        self.on_limited = on_limited
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def _wait(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self.MAX_CLIENTS:
                    self._buckets = {c: b for c, b in self._buckets.items()
                                     if b.tokens + (now - b.stamp) * b.rate < b.capacity}
                bucket = self._buckets[client] = TokenBucket(self.rate, now)
            return bucket.take(now)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("state", {}).get("client") or (scope.get("client") or ("-", 0))[0]
        wait = self._wait(str(client))
        if wait > 0:
            if self.on_limited is not None:
                self.on_limited()
            await _refuse(send, 429, f"too many requests: this server allows {self.rate:g} per second per client "
                                     "(tgan-serve --rate-limit); retry after the Retry-After seconds",
                          {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        await self.app(scope, receive, send)
