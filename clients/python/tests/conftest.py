"""Fixtures: each test runs against Redis 7.0 and Valkey 8.0 with the module and Redis 7.0
without it (the Lua twin), through the sync and the asyncio API, with the same assertions."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, Iterator, List, Tuple, Union

import pytest
import redis.asyncio
from redis import Redis

import redis_patterns
import redis_patterns.asyncio

from .servers import Server

# name -> (binary, module loaded)
SERVERS = {
    "redis-module": ("redis-server", True),
    "valkey-module": ("valkey-server", True),
    "redis-twin": ("redis-server", False),
}


@pytest.fixture(scope="session")
def servers() -> Iterator[dict]:
    started: dict = {}
    try:
        for name, (binary, module) in SERVERS.items():
            started[name] = Server(binary, module)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, servers: dict) -> Server:
    s: Server = servers[request.param]
    with s.client() as r:
        r.flushall()
        r.execute_command("ACL", "DELUSER", "limited")
    return s


async def v(value: Any) -> Any:
    """The value, awaited when the API under test is the asyncio one."""
    return await value if inspect.isawaitable(value) else value


@dataclass
class Api:
    """The API under test (``p``), whether it is async, the expected backend, and a sync client
    to the same server for inspection (``raw``)."""

    p: Union[redis_patterns.Patterns, redis_patterns.asyncio.Patterns]
    is_async: bool
    backend: str
    raw: Redis
    server: Server


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, server: Server) -> Any:
    raw = server.client(decode_responses=True)
    expected = "module" if server.module else "twin"
    if request.param == "sync":
        client = server.client()
        yield Api(redis_patterns.Patterns(client), False, expected, raw, server)
        client.close()
    else:
        aclient = redis.asyncio.Redis(port=server.port)
        yield Api(redis_patterns.asyncio.Patterns(aclient), True, expected, raw, server)
        await aclient.aclose()
    raw.close()


def hear_invalidation(cache: redis_patterns.Cache, tag: str) -> Tuple[int, List[str]]:
    """Invalidates ``tag`` while ``cache.on_invalidate`` (sync API) listens: how many keys were
    deleted, and the tags heard (waiting up to 2 s for the first)."""
    got: List[str] = []
    worker = cache.on_invalidate(got.append)
    time.sleep(0.3)
    deleted = cache.invalidate(tag)
    for _ in range(100):
        if got:
            break
        time.sleep(0.02)
    worker.stop()
    worker.join(5)
    return deleted, got
