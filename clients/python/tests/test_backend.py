from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio

import redis_patterns
import redis_patterns.asyncio
from redis_patterns import BackendError, FixedWindow, PermissionDeniedError, TokenBucket
from redis_patterns._ops import library_code, twin_code

from .conftest import Api, v
from .servers import REPO, Server

# Runs a test on the server without the module only.
TWIN_ONLY = pytest.mark.parametrize("server", ["redis-twin"], indirect=True)


def test_bundled_twin_is_dist() -> None:
    bundled = Path(redis_patterns.__file__).with_name("patterns.lua").read_text()
    assert bundled == (REPO / "dist/patterns.lua").read_text()
    assert twin_code() == bundled


async def test_backend_is_detected(api: Api) -> None:
    if api.is_async:
        assert api.p.backend == "auto"
        assert await api.p.detect_backend() == api.backend
    assert api.p.backend == api.backend
    listed = api.raw.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "patterns", "WITHCODE")
    # The twin is loaded only where the module is not.
    assert (library_code(listed) == twin_code()) is (api.backend == "twin")


def limited_user(server: Server) -> redis.Redis:
    """A user who may not run MODULE (as on managed services)."""
    with server.client() as r:
        r.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-module")
    return server.client(username="limited", password="pw")


async def test_detection_without_module_list(api: Api) -> None:
    client = limited_user(api.server)
    if api.is_async:
        aclient = redis.asyncio.Redis(port=api.server.port, username="limited", password="pw")
        assert await redis_patterns.asyncio.Patterns(aclient).detect_backend() == api.backend
        await aclient.aclose()
    else:
        assert redis_patterns.Patterns(client).backend == api.backend
    client.close()


@TWIN_ONLY
async def test_twin_is_reloaded_when_it_differs_and_when_flushed(api: Api) -> None:
    old = "#!lua name=patterns\nredis.register_function('rl_tokenbucket', function() return 0 end)"
    api.raw.execute_command("FUNCTION", "LOAD", "REPLACE", old)
    if api.is_async:
        assert await api.p.detect_backend() == "twin"
    assert api.p.backend == "twin"
    code = api.raw.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "patterns", "WITHCODE")
    assert library_code(code) == twin_code()
    api.raw.execute_command("FUNCTION", "FLUSH")
    assert (await v(api.p.token_bucket("k", 10, 5, 1000))).remaining == 9


async def test_forced_backends(api: Api) -> None:
    client = api.server.client()
    if api.backend == "twin":
        forced = redis_patterns.Patterns(client, backend="module")
        with pytest.raises(BackendError, match=r'not loaded on this server \(backend: "module"\)'):
            forced.token_bucket("k", 10, 5, 1000)
    else:
        assert redis_patterns.Patterns(client, backend="module").backend == "module"
    twin = redis_patterns.Patterns(client, backend="twin")
    assert twin.backend == "twin"
    assert twin.token_bucket("k2", 10, 5, 1000).remaining == 9
    with pytest.raises(ValueError):
        redis_patterns.Patterns(client, backend="lua")
    client.close()


@TWIN_ONLY
async def test_twin_not_loadable(api: Api) -> None:
    with api.server.client() as r:
        r.execute_command(
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-function"
        )
    if api.is_async:
        aclient = redis.asyncio.Redis(port=api.server.port, username="limited", password="pw")
        with pytest.raises(BackendError, match="Lua twin cannot be loaded"):
            await redis_patterns.asyncio.Patterns(aclient).token_bucket("k", 1, 1, 1000)
        await aclient.aclose()
    else:
        client = api.server.client(username="limited", password="pw")
        with pytest.raises(BackendError, match="Lua twin cannot be loaded"):
            _ = redis_patterns.Patterns(client).backend
        client.close()


async def test_noperm_keeps_its_code(api: Api) -> None:
    with api.server.client() as r:
        r.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~rl:*", "&*", "+@all")
    if api.backend == "twin":  # the twin must be loaded by a user who may
        await v(api.p.token_bucket("rl:x", 1, 1, 1000))
    client = api.server.client(username="limited", password="pw")
    p = redis_patterns.Patterns(client)
    assert p.token_bucket("rl:a", 10, 5, 1000).allowed
    with pytest.raises(PermissionDeniedError) as error:
        p.token_bucket("other", 10, 5, 1000)
    assert str(error.value).startswith("NOPERM ")
    # Every limit's key is declared: one the user may not touch refuses the call, which writes
    # nothing.
    with pytest.raises(PermissionDeniedError):
        p.limit_all([TokenBucket("rl:b", 10, 5, 1000), FixedWindow("other", 1, 1000)])
    assert api.raw.exists("rl:b") == 0
    client.close()
