from __future__ import annotations

from typing import Any, Callable, Iterable, List

import httpx
import pytest
import redis.asyncio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import redis_patterns
import redis_patterns.asyncio
from redis_patterns.middleware import RateLimitMiddleware, WSGIRateLimitMiddleware

from .conftest import Server


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_asgi_middleware_through_starlette(server: Server) -> None:
    client = redis.asyncio.Redis(port=server.port)
    p = redis_patterns.asyncio.Patterns(client)
    app = Starlette(routes=[Route("/", hello), Route("/free", hello)])
    limited = RateLimitMiddleware(
        app,
        limiter=lambda key: p.fixed_window(key, 2, 60000),
        key=lambda scope: None if scope["path"] == "/free" else f"rl:{scope['client'][0]}",
    )
    transport = httpx.ASGITransport(app=limited, client=("10.0.0.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = await http.get("/")
        assert (first.status_code, first.text) == (200, "hello")
        assert first.headers["ratelimit-limit"] == "2"
        assert first.headers["ratelimit-remaining"] == "1"
        assert "retry-after" not in first.headers
        assert (await http.get("/")).status_code == 200
        denied = await http.get("/")
        assert denied.status_code == 429
        assert denied.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(denied.headers["retry-after"]) <= 60
        free = await http.get("/free")
        assert free.status_code == 200 and "ratelimit-limit" not in free.headers
    assert server.client().exists("rl:10.0.0.7") == 1
    await client.aclose()


def wsgi_hello(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_wsgi_middleware(server: Server) -> None:
    p = redis_patterns.Patterns(server.client())
    app = WSGIRateLimitMiddleware(wsgi_hello, limiter=lambda key: p.token_bucket(key, 1, 1, 60000))
    transport = httpx.WSGITransport(app=app, remote_addr="10.0.0.8")
    with httpx.Client(transport=transport, base_url="http://test") as http:
        ok = http.get("/")
        assert ok.status_code == 200 and ok.text == "hello"
        assert ok.headers["ratelimit-remaining"] == "0"
        denied = http.get("/")
        assert denied.status_code == 429
        assert int(denied.headers["retry-after"]) == 60
    seen: List[str] = server.client(decode_responses=True).keys("ratelimit:*")
    assert seen == ["ratelimit:10.0.0.8"]


@pytest.fixture(params=["redis-module", "redis-twin"])
def server(request: pytest.FixtureRequest, servers: dict) -> Server:
    s: Server = servers[request.param]
    with s.client() as r:
        r.flushall()
    return s
