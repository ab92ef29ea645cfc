"""Rate-limiting middleware for ASGI (Starlette, FastAPI...) and WSGI (Flask, Django...).

Each request is keyed by a function of the request (``None``: not limited) and checked by a
limiter, typically a bound ``Patterns`` method. A denied request gets ``429 Too Many Requests``
with the ``RateLimit-*`` and ``Retry-After`` headers; an allowed one goes on, and its response
carries the ``RateLimit-*`` headers."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Tuple

from ._types import RateLimit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOO_MANY = b"Too Many Requests\n"


def client_host(scope_or_environ: MutableMapping[str, Any]) -> str:
    """The peer's address: ASGI ``scope["client"]`` or WSGI ``REMOTE_ADDR``."""
    client = scope_or_environ.get("client")
    if client:
        return str(client[0])
    return str(scope_or_environ.get("REMOTE_ADDR", "unknown"))


class RateLimitMiddleware:
    """ASGI middleware. ``limiter(key)`` returns an awaitable ``RateLimit``, e.g.
    ``lambda k: p.token_bucket(k, 10, 5, 1000)`` with ``redis_patterns.asyncio.Patterns``;
    ``key(scope)`` names the limiter of a request (default: ``ratelimit:<client address>``)."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Callable[[str], Awaitable[RateLimit]],
        key: Callable[[Scope], Optional[str]] = lambda scope: f"ratelimit:{client_host(scope)}",
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.key(scope) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        result = await self.limiter(name)
        fields = [(k.lower().encode(), v.encode()) for k, v in result.headers().items()]
        if not result.allowed:
            plain = (b"content-type", b"text/plain; charset=utf-8")
            await send({"type": "http.response.start", "status": 429, "headers": [plain, *fields]})
            await send({"type": "http.response.body", "body": TOO_MANY})
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *fields]}
            await send(message)

        await self.app(scope, receive, send_with_fields)


Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class WSGIRateLimitMiddleware:
    """WSGI middleware: ``limiter(key)`` returns a ``RateLimit`` (sync ``Patterns``);
    ``key(environ)`` names the limiter (default: ``ratelimit:<REMOTE_ADDR>``)."""

    def __init__(
        self,
        app: WSGIApp,
        limiter: Callable[[str], RateLimit],
        key: Callable[[Environ], Optional[str]] = lambda env: f"ratelimit:{client_host(env)}",
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        name = self.key(environ)
        if name is None:
            return self.app(environ, start_response)
        result = self.limiter(name)
        fields: List[Tuple[str, str]] = list(result.headers().items())
        if not result.allowed:
            plain = ("Content-Type", "text/plain; charset=utf-8")
            start_response("429 Too Many Requests", [plain, *fields])
            return [TOO_MANY]

        def start_with_fields(status: str, headers: List[Tuple[str, str]], *rest: Any) -> Any:
            return start_response(status, [*headers, *fields], *rest)

        return self.app(environ, start_with_fields)
