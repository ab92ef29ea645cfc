from __future__ import annotations

import asyncio
import pickle
import threading
import time
from typing import Any, List

import pytest
import redis.asyncio

import redis_patterns
import redis_patterns.asyncio
from redis_patterns import CommandError

from .conftest import Api, hear_invalidation, v

# A cache entry's value and delta_ms, read from its layout (README, Caching: key layout): a
# format byte and three 7-byte times, then the lease while one is held, then the value.
ENTRY = """local s = redis.call('GET', KEYS[1])
local format, fresh, stale, delta, at = struct.unpack('>Bi7i7i7', s)
if format >= 0xC2 then
  local _, _, len, token = struct.unpack('>i7i7I4', s, at)
  at = token + len
end
return {string.sub(s, at), delta}"""


def stored(api: Api, key: str) -> Any:
    """[value, delta_ms] of the entry at key."""
    return api.raw.eval(ENTRY, 1, key)


async def test_set_get_tag_invalidate(api: Api) -> None:
    c = api.p.cache
    assert await v(c.get("product:{42}")) is None
    assert await v(c.get("product:{42}", default="none")) == "none"
    await v(c.set("product:{42}", {"name": "lamp"}, 600000, tags=["tag:{42}:catalog"]))
    assert await v(c.get("product:{42}")) == {"name": "lamp"}
    assert stored(api, "product:{42}")[0] == '{"name":"lamp"}'
    assert await v(c.tag("product:{42}", "tag:{42}:lamps", "tag:{42}:catalog")) == 1
    assert await v(c.invalidate("tag:{42}:lamps")) == 1
    assert await v(c.get("product:{42}")) is None
    assert await v(c.invalidate("tag:{42}:lamps")) == 0
    with pytest.raises(CommandError, match="^ERR a key cannot be its own tag$"):
        await v(c.set("k", 1, 1000, tags=["k"]))
    with pytest.raises(CommandError, match="^ERR no cached value at key$"):
        await v(c.tag("absent", "t"))


async def test_get_or_set_miss_then_hit(api: Api) -> None:
    calls: List[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"n": len(calls)}

    c = api.p.cache
    assert await v(c.get_or_set("report:{7}", compute, 60000, tags=["tag:{7}"])) == {"n": 1}
    assert await v(c.get_or_set("report:{7}", compute, 60000, tags=["tag:{7}"])) == {"n": 1}
    assert len(calls) == 1
    # The measured compute time is stored as XFetch's delta; the tag lists the key.
    assert stored(api, "report:{7}")[1] >= 0
    assert api.raw.zscore("tag:{7}", "report:{7}") is not None
    assert await v(c.invalidate("tag:{7}")) == 1
    assert await v(c.get_or_set("report:{7}", compute, 60000, delta_ms=5)) == {"n": 2}
    assert stored(api, "report:{7}")[1] == 5


async def test_get_or_set_refresh_and_stale(api: Api) -> None:
    c = api.p.cache
    await v(c.set("price", 1, 30, grace_ms=60000))
    await asyncio.sleep(0.05)  # now stale, within its grace
    seen: List[Any] = []

    async def recompute() -> int:
        # While this caller holds the lease (REFRESH), another one is served the stale value.
        seen.append(await v(c.get_or_set("price", lambda: 99, 60000)))
        return 2

    def compute() -> Any:
        if api.is_async:
            return recompute()
        seen.append(c.get_or_set("price", lambda: 99, 60000))
        return 2

    assert await v(c.get_or_set("price", compute, 60000)) == 2
    assert seen == [1]
    assert await v(c.get("price")) == 2


async def test_get_or_set_wait_bound_computes_without_storing(api: Api) -> None:
    c = api.p.cache
    inner: List[Any] = []

    def compute() -> Any:
        # The outer caller holds the lease (MISS): a caller that may not wait computes alone.
        result = c.get_or_set("slow", lambda: "inner", 60000, max_wait_ms=0)
        if api.is_async:

            async def finish() -> str:
                inner.append(await result)
                return "outer"

            return finish()
        inner.append(result)
        return "outer"

    assert await v(c.get_or_set("slow", compute, 60000)) == "outer"
    assert inner == ["inner"]
    assert await v(c.get("slow")) == "outer"


async def test_cached_decorator(api: Api) -> None:
    calls: List[int] = []
    if api.is_async:

        @api.p.cache.cached(ttl_ms=60000, tags=lambda n: [f"tag:square:{n}"])
        async def square(n: int) -> int:
            calls.append(n)
            return n * n

    else:

        @api.p.cache.cached(ttl_ms=60000, tags=lambda n: [f"tag:square:{n}"])
        def square(n: int) -> int:
            calls.append(n)
            return n * n

    assert [await v(square(3)), await v(square(3)), await v(square(4))] == [9, 9, 16]
    assert calls == [3, 4]
    assert await v(api.p.cache.invalidate("tag:square:3")) == 1
    assert await v(square(3)) == 9
    assert calls == [3, 4, 3]


class PickleSerializer:
    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def loads(self, data: Any) -> Any:
        return pickle.loads(data)


async def test_pluggable_serializer(api: Api) -> None:
    port = api.server.port
    value = {"when": (2024, 1, 1), "bytes": b"\x00\xff"}
    if api.is_async:
        ac = redis.asyncio.Redis(port=port)
        p = redis_patterns.asyncio.Patterns(ac, serializer=PickleSerializer())
        await p.cache.set("blob", value, 60000)
        assert await p.cache.get_or_set("blob", lambda: None, 60000) == value
        await ac.aclose()
    else:
        sp = redis_patterns.Patterns(api.server.client(), serializer=PickleSerializer())
        sp.cache.set("blob", value, 60000)
        assert sp.cache.get_or_set("blob", lambda: None, 60000) == value


async def test_on_invalidate(api: Api) -> None:
    got: List[str] = []
    await v(api.p.cache.set("k:{a}", 1, 60000, tags=["tag:{a}"]))
    if api.is_async:
        task = api.p.cache.on_invalidate(got.append)
        await asyncio.sleep(0.2)
        await api.p.cache.invalidate("tag:{a}")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        task.cancel()
    else:
        _, got = hear_invalidation(api.p.cache, "tag:{a}")
    assert got == ["tag:{a}"]


CALLERS = 50


async def test_get_or_set_computes_once_for_50_callers(api: Api) -> None:
    calls: List[int] = []

    def compute() -> dict:
        calls.append(1)
        time.sleep(0.2)
        return {"report": "ok"}

    if api.is_async:

        async def acompute() -> dict:
            calls.append(1)
            await asyncio.sleep(0.2)
            return {"report": "ok"}

        results = await asyncio.gather(
            *(api.p.cache.get_or_set("hot", acompute, 60000) for _ in range(CALLERS))
        )
    else:
        results = []
        barrier = threading.Barrier(CALLERS)
        lock = threading.Lock()

        def caller() -> None:
            barrier.wait()
            value = api.p.cache.get_or_set("hot", compute, 60000)
            with lock:
                results.append(value)

        threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [{"report": "ok"}] * CALLERS
    assert len(calls) == 1
