"""Smoke test on a 3-master Cluster, with the module on every node and without it (the twin,
loaded on every primary), through RedisCluster and its asyncio version; and backend detection
on a Cluster with the module on one node of three."""

from __future__ import annotations

import asyncio
import threading
from typing import Iterator, List

import pytest
import redis.asyncio.cluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

import redis_patterns
import redis_patterns.asyncio
from redis_patterns import BackendError, FixedWindow, RateLimiter, SlidingWindow, TokenBucket
from redis_patterns._ops import library_code, twin_code

from .conftest import hear_invalidation
from .servers import Cluster


@pytest.fixture(scope="module", params=["module", "twin"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(modules=3 if request.param == "module" else 0)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def partly_loaded() -> Iterator[Cluster]:
    """The module on the first node only."""
    c = Cluster(modules=1)
    yield c
    c.stop()


def expected(cluster: Cluster) -> str:
    return "module" if cluster.nodes[0].module else "twin"


def twin_loaded(cluster: Cluster) -> List[bool]:
    """Whether each node holds the bundled twin."""
    loaded = []
    for node in cluster.nodes:
        with node.client() as r:
            listed = r.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "patterns", "WITHCODE")
        loaded.append(library_code(listed) == twin_code())
    return loaded


def assert_twin_on_every_primary(cluster: Cluster) -> None:
    assert twin_loaded(cluster) == [expected(cluster) == "twin"] * 3


def flush(cluster: Cluster) -> None:
    """Deletes every key and the twin, on each node."""
    for node in cluster.nodes:
        with node.client() as r:
            r.flushall()
            r.function_flush()


# 20 keys, spread over the three nodes' slots.
SPREAD = [f"api:{i}" for i in range(20)]


def user_limits(user: str) -> List[RateLimiter]:
    """Several limits for one call: their keys share a slot (a hashtag)."""
    return [
        TokenBucket(f"api:{{{user}}}:minute", 10, 10, 60000, cost=4),
        FixedWindow(f"api:{{{user}}}:day", 2, 86400000),
        SlidingWindow(f"api:{{{user}}}:hour", 5, 3600000, exact=True),
    ]


ACROSS_SLOTS = [FixedWindow("api:{u7}:day", 2, 86400000), FixedWindow("api:{u8}:day", 2, 86400000)]


def test_sync_cluster(cluster: Cluster) -> None:
    rc = RedisCluster(host="127.0.0.1", port=cluster.port)
    p = redis_patterns.Patterns(rc)
    assert p.backend == expected(cluster)
    assert_twin_on_every_primary(cluster)
    if expected(cluster) == "module":
        assert redis_patterns.Patterns(rc, backend="module").backend == "module"
    else:
        with pytest.raises(BackendError, match="not loaded on 3 of the 3 primaries"):
            _ = redis_patterns.Patterns(rc, backend="module").backend
    # Keys in many slots.
    assert {rc.get_node_from_key(key).port for key in SPREAD} == {n.port for n in cluster.nodes}
    for key in SPREAD:
        assert p.token_bucket(key, 10, 5, 1000).remaining == 9
    limits = user_limits("u7")
    assert [r.remaining for r in p.limit_all(limits).limits] == [6, 1, 4]
    assert p.refund(limits) == [10, 2, 5]
    with pytest.raises(RedisClusterException, match="same key slot"):
        p.limit_all(ACROSS_SLOTS)
    s = p.sessions.create("sessions:{u1}", 60000, 120000, {"user": 1})
    assert p.sessions.get(s) == {"user": "1"}
    assert p.cache.get_or_set("product:{9}", lambda: [1, 2], 60000, tags=["tag:{9}"]) == [1, 2]
    assert hear_invalidation(p.cache, "tag:{9}") == (1, ["tag:{9}"])
    lb = p.leaderboard("game:{c}")
    lb.add({"a": 1, "b": 2})
    assert lb.rank("a").rank == 2
    # A wait on the key's own node, from a connection of that node's pool.
    holder = p.lock("lock:{c}", ttl_ms=5000, auto_extend=False)
    assert holder.acquire()
    releasing = threading.Timer(0.1, holder.release)
    releasing.start()
    waiter = p.lock("lock:{c}", ttl_ms=5000, wait_ms=5000, auto_extend=False)
    assert waiter.acquire() and waiter.token == holder.token + 1
    releasing.join()
    waiter.release()
    # A read/write lock's derived keys share its slot; a writer waits for the reader there.
    reader = p.rwlock("doc:{c}", "read", ttl_ms=5000, auto_extend=False)
    assert reader.acquire()
    releasing = threading.Timer(0.1, reader.release)
    releasing.start()
    writer = p.rwlock("doc:{c}", "write", ttl_ms=5000, wait_ms=5000, auto_extend=False)
    assert writer.acquire() and writer.token == 1
    releasing.join()
    assert p.rwlock_info("doc:{c}").mode == "write"
    writer.release()
    # A queue's derived keys share its slot; a blocked pop is woken by a push.
    q = p.queue("jobs:{c}")
    pushing = threading.Timer(0.1, q.push, ("wake",))
    pushing.start()
    [job] = q.pop("g", "c", block_ms=5000, max_deliveries=1)
    pushing.join()
    assert q.nack("g", job.id) and q.pop("g", "c", max_deliveries=1) == []
    assert q.redrive("g") == 1
    rc.close()


async def test_async_cluster(cluster: Cluster) -> None:
    rc = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster.port)
    p = redis_patterns.asyncio.Patterns(rc)
    assert await p.detect_backend() == expected(cluster)
    for i in range(20):
        assert (await p.fixed_window(f"login:{i}", 5, 60000)).remaining == 4
    limits = user_limits("u9")
    for _ in range(2):
        assert await p.limit_all(limits)
    denied = await p.limit_all(limits)
    assert (denied.allowed, denied.denied) == (False, 0)  # 8 of 10 tokens gone: 4 more do not fit
    assert await p.refund(limits[1:]) == [1, 4]
    with pytest.raises(RedisClusterException, match="same key slot"):
        await p.refund(ACROSS_SLOTS)
    assert await p.cache.get_or_set("report:{3}", lambda: "r", 60000, tags=["tag:{3}"]) == "r"
    got: List[str] = []
    task = p.cache.on_invalidate(got.append)
    await asyncio.sleep(0.3)
    assert await p.cache.invalidate("tag:{3}") == 1
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    assert got == ["tag:{3}"]
    holder = p.lock("lock:{a}", ttl_ms=5000, auto_extend=False)
    assert await holder.acquire()
    waiting = asyncio.create_task(p.lock("lock:{a}", wait_ms=5000, auto_extend=False).acquire())
    await asyncio.sleep(0.1)
    await holder.release()
    assert await waiting is True
    reader = p.rwlock("doc:{a}", "read", ttl_ms=5000, auto_extend=False)
    assert await reader.acquire()
    writing = asyncio.create_task(
        p.rwlock("doc:{a}", "write", wait_ms=5000, auto_extend=False).acquire()
    )
    await asyncio.sleep(0.1)
    await reader.release()
    assert await writing is True
    q = p.queue("jobs:{a}")
    popping = asyncio.create_task(q.pop("g", "c", block_ms=5000))
    await asyncio.sleep(0.1)
    job_id = await q.push("wake")
    assert [job.id for job in await popping] == [job_id]
    assert await q.ack("g", job_id) == 1
    await rc.aclose()


async def detected_without_module_list(cluster: Cluster) -> List[str]:
    """The backend the sync and the asyncio API detect for a user who may not run MODULE (as on
    managed services): each primary is probed with a module command (some answer MOVED)."""
    for node in cluster.nodes:
        with node.client() as r:
            r.execute_command(
                "ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-module"
            )
    login = {"username": "limited", "password": "pw"}
    rc = RedisCluster(host="127.0.0.1", port=cluster.port, **login)
    arc = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster.port, **login)
    detected = [
        redis_patterns.Patterns(rc).backend,
        await redis_patterns.asyncio.Patterns(arc).detect_backend(),
    ]
    rc.close()
    await arc.aclose()
    return detected


async def test_detection_without_module_list(cluster: Cluster) -> None:
    assert await detected_without_module_list(cluster) == [expected(cluster)] * 2


MODULE_REFUSED = r'not loaded on 2 of the 3 primaries \(backend: "module"\)'


def test_sync_partly_loaded_cluster(partly_loaded: Cluster) -> None:
    flush(partly_loaded)
    rc = RedisCluster(host="127.0.0.1", port=partly_loaded.port)
    # The primary redis-py lists first has the module: asking it alone would take the module.
    assert rc.get_primaries()[0].port == partly_loaded.nodes[0].port
    p = redis_patterns.Patterns(rc)
    assert p.backend == "twin"
    assert twin_loaded(partly_loaded) == [True, True, True]
    for key in SPREAD:
        assert p.token_bucket(key, 10, 5, 1000).remaining == 9
    with pytest.raises(BackendError, match=MODULE_REFUSED):
        _ = redis_patterns.Patterns(rc, backend="module").backend
    rc.close()


async def test_async_partly_loaded_cluster(partly_loaded: Cluster) -> None:
    flush(partly_loaded)
    rc = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=partly_loaded.port)
    await rc.initialize()
    assert rc.get_primaries()[0].port == partly_loaded.nodes[0].port
    p = redis_patterns.asyncio.Patterns(rc)
    assert await p.detect_backend() == "twin"
    assert twin_loaded(partly_loaded) == [True, True, True]
    for key in SPREAD:
        assert (await p.fixed_window(key, 5, 60000)).remaining == 4
    with pytest.raises(BackendError, match=MODULE_REFUSED):
        await redis_patterns.asyncio.Patterns(rc, backend="module").detect_backend()
    await rc.aclose()
    assert await detected_without_module_list(partly_loaded) == ["twin", "twin"]
