from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List, Tuple

import pytest
import redis.asyncio
from redis import Redis

import redis_patterns
import redis_patterns.asyncio
from redis_patterns import LockNotAcquired, LockNotOwned
from redis_patterns._ops import record

from .conftest import Api, v


async def enter(api: Api, lock: Any) -> Any:
    return await lock.__aenter__() if api.is_async else lock.__enter__()


async def leave(api: Api, lock: Any) -> None:
    await v(lock.__aexit__(None, None, None) if api.is_async else lock.__exit__(None, None, None))


async def granted_on_release(api: Api, waiter: Any, holder: Any) -> None:
    """``waiter.acquire()`` waits while ``holder`` holds, and is granted once it releases 0.2 s
    later."""
    if api.is_async:
        task = asyncio.create_task(waiter.acquire())
        await asyncio.sleep(0.2)
        assert not task.done()
        await holder.release()
        assert await task is True
    else:
        releasing = threading.Timer(0.2, holder.release)
        releasing.start()
        started = time.monotonic()
        assert waiter.acquire() is True
        assert time.monotonic() - started >= 0.15
        releasing.join()


async def test_lock_acquire_reenter_release_fence(api: Api) -> None:
    p = api.p
    a = p.lock("lock:{order:42}", ttl_ms=30000, owner="worker-a", auto_extend=False)
    assert await v(a.acquire()) is True
    assert a.token == 1
    b = p.lock("lock:{order:42}", ttl_ms=30000, owner="worker-b", auto_extend=False)
    assert await v(b.acquire()) is False
    with pytest.raises(LockNotAcquired):
        await enter(api, b)
    assert await v(a.acquire()) is True and a.token == 1  # one more hold, same token
    info = await v(p.lock_info("lock:{order:42}"))
    assert (info.owner, info.token, info.holds, info.waiters) == ("worker-a", 1, 2, 0)
    assert 0 < info.ttl_ms <= 30000
    assert await v(p.fenced_hset("order:{order:42}", 1, {"status": "paid"})) is True
    await v(a.release())
    await v(a.release())
    assert await v(p.lock_info("lock:{order:42}")) is None
    with pytest.raises(LockNotOwned):
        await v(a.release())
    assert await enter(api, b) is b
    assert b.token == 2
    assert await v(p.fenced_hset("order:{order:42}", 2, {"status": "shipped"})) is True
    assert await v(p.fenced_hset("order:{order:42}", 1, {"status": "refunded"})) is False
    assert api.raw.hget("order:{order:42}", "status") == "shipped"
    await v(b.extend(60000))
    assert (await v(p.lock_info("lock:{order:42}"))).ttl_ms > 30000
    await leave(api, b)
    with pytest.raises(LockNotOwned):
        await v(b.extend())


async def test_lock_waits_until_released(api: Api) -> None:
    p = api.p
    holder = p.lock("lock:w", ttl_ms=10000, auto_extend=False)
    await enter(api, holder)
    waiter = p.lock("lock:w", ttl_ms=10000, wait_ms=5000, auto_extend=False)
    await granted_on_release(api, waiter, holder)
    assert waiter.token == 2
    # A wait that runs out: not granted.
    late = p.lock("lock:w", ttl_ms=1000, wait_ms=100, auto_extend=False)
    assert await v(late.acquire()) is False
    await v(waiter.release())


async def test_auto_extend_keeps_a_slow_holder_and_marks_loss(api: Api) -> None:
    p = api.p
    # Renewed every 333 ms: a loaded machine may delay a renewal by up to 667 ms.
    slow = p.lock("lock:slow", ttl_ms=1000)
    await enter(api, slow)
    other = p.lock("lock:slow", ttl_ms=1000, auto_extend=False)
    for _ in range(5):  # 2.5 s, two and a half leases
        await asyncio.sleep(0.5) if api.is_async else time.sleep(0.5)
        assert await v(other.acquire()) is False
    assert slow.lost is False
    assert (await v(p.lock_info("lock:slow"))).token == slow.token
    await leave(api, slow)
    # The lock deleted behind its holder's back: the next renewal fails and marks it lost.
    lost = p.lock("lock:lost", ttl_ms=300)
    await enter(api, lost)
    api.raw.delete("lock:lost")
    for _ in range(50):
        if lost.lost:
            break
        await asyncio.sleep(0.02) if api.is_async else time.sleep(0.02)
    assert lost.lost is True
    with pytest.raises(LockNotOwned):
        await leave(api, lost)


async def test_semaphore(api: Api) -> None:
    p = api.p
    a = p.semaphore("pool:db", 2, 60000, owner="worker-a")
    b = p.semaphore("pool:db", 2, 60000, owner="worker-b")
    c = p.semaphore("pool:db", 2, 60000, wait_ms=100, owner="worker-c")
    await enter(api, a)
    assert await v(b.acquire()) is True
    assert await v(c.count()) == 2
    with pytest.raises(LockNotAcquired):
        await enter(api, c)
    await leave(api, a)
    assert await v(c.acquire()) is True
    await v(b.release())
    await v(c.release())
    assert await v(c.count()) == 0
    with pytest.raises(LockNotOwned):
        await v(c.release())


WORKERS = 5


async def queue_in_order(api: Api, key: str, waiters: int) -> None:
    """On the module, waits until ``waiters`` clients queue on the server (FIFO order is
    their arrival order); the twin has no queue."""
    if api.backend != "module":
        await asyncio.sleep(0.02)
        return
    for _ in range(500):
        if record(api.raw.execute_command("LOCK.INFO", key))["waiters"] == waiters:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("waiter did not queue")


def check_grants(api: Api, grants: List[Tuple[int, int]], spans: List[Tuple[float, float]]) -> None:
    tokens = [token for _, token in grants]
    assert len(tokens) == WORKERS + 1
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)  # increasing
    if api.backend == "module":
        assert [worker for worker, _ in grants] == list(range(WORKERS + 1))  # FIFO
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # never two holders


async def test_lock_contended_by_threads_and_tasks(api: Api) -> None:
    key = "lock:{contended}"
    grants: List[Tuple[int, int]] = []
    spans: List[Tuple[float, float]] = []
    if api.is_async:

        async def worker(i: int) -> None:
            async with api.p.lock(key, ttl_ms=5000, wait_ms=20000) as lock:
                started = time.monotonic()
                grants.append((i, lock.token))
                await asyncio.sleep(0.03)
                spans.append((started, time.monotonic()))

        first = api.p.lock(key, ttl_ms=5000)
        await first.acquire()
        grants.append((0, first.token))
        tasks = []
        for i in range(1, WORKERS + 1):
            tasks.append(asyncio.create_task(worker(i)))
            await queue_in_order(api, key, i)
        await first.release()
        await asyncio.gather(*tasks)
    else:
        mutex = threading.Lock()

        def tworker(i: int) -> None:
            with api.p.lock(key, ttl_ms=5000, wait_ms=20000) as lock:
                started = time.monotonic()
                with mutex:
                    grants.append((i, lock.token))
                time.sleep(0.03)
                with mutex:
                    spans.append((started, time.monotonic()))

        first = api.p.lock(key, ttl_ms=5000)
        first.acquire()
        grants.append((0, first.token))
        threads = []
        for i in range(1, WORKERS + 1):
            threads.append(threading.Thread(target=tworker, args=(i,)))
            threads[-1].start()
            await queue_in_order(api, key, i)
        first.release()
        for t in threads:
            t.join()
    check_grants(api, grants, spans)


async def test_wait_outlasts_the_clients_socket_timeout(api: Api) -> None:
    """A wait longer than the client's socket timeout: the blocked call is read on its own
    connection, whatever that timeout. (The waiter's lock is released through the test's own
    client: redis-py may retry a command that timed out, and a retried release finds nothing.)"""
    port = api.server.port
    holder = api.p.lock("lock:t", ttl_ms=10000, auto_extend=False)
    await enter(api, holder)
    if api.is_async:
        client = redis.asyncio.Redis(port=port, socket_timeout=0.2)
        waiter = redis_patterns.asyncio.Patterns(client).lock(
            "lock:t", wait_ms=5000, auto_extend=False
        )
        task = asyncio.create_task(waiter.acquire())
        await asyncio.sleep(0.6)
        await holder.release()
        assert await task is True
        await api.p.lock("lock:t", owner=waiter.owner).release()
        await client.aclose()
    else:
        client = Redis(port=port, socket_timeout=0.2)
        sync_waiter = redis_patterns.Patterns(client).lock(
            "lock:t", wait_ms=5000, auto_extend=False
        )
        releasing = threading.Timer(0.6, holder.release)
        releasing.start()
        assert sync_waiter.acquire() is True
        releasing.join()
        api.p.lock("lock:t", owner=sync_waiter.owner).release()
        client.close()


async def test_rwlock_readers_share_writer_excludes(api: Api) -> None:
    p = api.p
    key = "doc:{42}"
    r1 = p.rwlock(key, "read", ttl_ms=30000, owner="reader-1", auto_extend=False)
    r2 = p.rwlock(key, "READ", ttl_ms=30000, owner="reader-2", auto_extend=False)
    assert await enter(api, r1) is r1 and r1.token is None
    assert await v(r2.acquire()) is True
    info = await v(p.rwlock_info(key))
    assert (info.mode, info.owner, info.token, info.readers, info.waiters) == (
        "read",
        None,
        None,
        2,
        0,
    )
    assert 0 < info.ttl_ms <= 30000
    w = p.rwlock(key, "write", ttl_ms=30000, owner="writer", auto_extend=False)
    assert await v(w.acquire()) is False
    with pytest.raises(LockNotAcquired, match="^write lock"):
        await enter(api, w)
    assert await v(r1.acquire()) is True  # a refresh: one release drops it
    await v(r1.extend(60000))
    assert (await v(p.rwlock_info(key))).ttl_ms > 30000
    await leave(api, r1)
    await v(r2.release())
    with pytest.raises(LockNotOwned):
        await v(r2.release())
    assert await v(p.rwlock_info(key)) is None
    assert await enter(api, w) is w and w.token == 1
    assert await v(w.acquire()) is True and w.token == 1  # one more hold, same token
    assert await v(r1.acquire()) is False
    info = await v(p.rwlock_info(key))
    assert (info.mode, info.owner, info.token, info.readers) == ("write", "writer", 1, 0)
    await v(w.release())
    await leave(api, w)
    assert await v(p.rwlock_info(key)) is None
    with pytest.raises(LockNotOwned):
        await v(w.extend())
    assert await v(w.acquire()) is True and w.token == 2
    await v(w.release())
    with pytest.raises(ValueError):
        p.rwlock(key, "shared")


async def test_rwlock_writer_waits_for_readers(api: Api) -> None:
    p = api.p
    reader = p.rwlock("rw:w", "read", ttl_ms=10000, auto_extend=False)
    await enter(api, reader)
    writer = p.rwlock("rw:w", "write", ttl_ms=10000, wait_ms=5000, auto_extend=False)
    await granted_on_release(api, writer, reader)
    assert writer.token == 1
    late = p.rwlock("rw:w", "read", ttl_ms=1000, wait_ms=100, auto_extend=False)
    assert await v(late.acquire()) is False
    await v(writer.release())
    assert await v(late.acquire()) is True


async def test_rwlock_auto_extends(api: Api) -> None:
    lock = api.p.rwlock("rw:auto", "read", ttl_ms=300)
    await enter(api, lock)
    await (asyncio.sleep(0.6) if api.is_async else v(time.sleep(0.6)))
    assert (await v(api.p.rwlock_info("rw:auto"))).readers == 1 and not lock.lost
    await leave(api, lock)
    assert await v(api.p.rwlock_info("rw:auto")) is None
