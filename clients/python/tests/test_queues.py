from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

import pytest

from redis_patterns import CommandError, Job, QueueStats

from .conftest import Api, v

Q = "jobs:{mail}"


async def sleep(api: Api, seconds: float) -> None:
    await asyncio.sleep(seconds) if api.is_async else time.sleep(seconds)


async def wait_for(api: Api, condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await v(condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        await sleep(api, 0.02)


async def test_push_pop_ack_and_stats(api: Api) -> None:
    q = api.p.queue(Q)
    first = await v(q.push("hello"))
    second = await v(q.push(b"world"))
    assert api.raw.xrange(Q)[0] == (first, {"payload": "hello"})
    jobs = await v(q.pop("mailers", "w1", count=5))
    assert jobs == [Job(first, "hello", 1), Job(second, "world", 1)]
    stats = await v(q.stats("mailers"))
    assert stats == QueueStats(ready=0, delayed=0, pending=2, dead=0, consumers=1)
    assert await v(q.pop("mailers", "w1")) == []
    assert await v(q.ack("mailers", first, second, "0-1")) == 2
    assert await v(q.stats("mailers")) == QueueStats(0, 0, 0, 0, 1)
    assert api.raw.xlen(Q) == 0  # completed by every group: trimmed


async def test_dedupe_delay_and_nack(api: Api) -> None:
    q = api.p.queue(Q)
    job = await v(q.push("once", dedupe="order-7", dedupe_ttl_ms=60000))
    assert await v(q.push("twice", dedupe="order-7", dedupe_ttl_ms=60000)) == job
    later = await v(q.push("later", delay_ms=300))
    assert await v(q.stats("g")) == QueueStats(1, 1, 0, 0, 0)  # no group yet
    assert [j.id for j in await v(q.pop("g", "c", count=5))] == [job]
    assert (await v(q.stats("g"))).delayed == 1
    assert await v(q.nack("g", job, delay_ms=200)) is True
    assert await v(q.nack("g", "1-1")) is False
    await sleep(api, 0.35)
    popped = await v(q.pop("g", "c", count=5))
    # Due jobs are delivered oldest due time first; the nack counted as a delivery.
    assert sorted((j.id, j.deliveries) for j in popped) == sorted([(job, 2), (later, 1)])


def server_ms(api: Api) -> int:
    seconds, micros = api.raw.time()
    return seconds * 1000 + micros // 1000


async def until_lease_ends(api: Api, group: str, job: str) -> None:
    """Waits until the server's clock has passed the end of ``job``'s lease in ``group``."""
    end = api.raw.zscore(f"{Q}:leases:{group}", job)
    assert end is not None
    await wait_for(api, lambda: server_ms(api) > end)


async def test_crashed_consumer_lease_extend_and_dead_letters(api: Api) -> None:
    q = api.p.queue(Q)
    job = await v(q.push("poison"))
    [held] = await v(q.pop("g", "crashes", lease_ms=200))
    # Extended well past the first lease, so that the check below falls between the two ends
    # however late it runs on a loaded machine.
    assert await v(q.extend("g", "crashes", job, 1000)) is True
    assert await v(q.extend("g", "other", job, 1000)) is False
    await sleep(api, 0.25)
    assert await v(q.pop("g", "other")) == []  # the extended lease still holds
    await until_lease_ends(api, "g", job)
    [again] = await v(q.pop("g", "other", lease_ms=100, max_deliveries=2))
    assert (again.id, again.deliveries) == (held.id, 2)
    await sleep(api, 0.15)
    # A third delivery would pass MAXDELIVERIES 2: the job goes to the dead letters.
    assert await v(q.pop("g", "other", max_deliveries=2)) == []
    [(_, dead)] = api.raw.xrange("jobs:{mail}:dead")
    assert (dead["job"], dead["payload"], dead["deliveries"]) == (job, "poison", "2")
    assert (await v(q.stats("g"))).dead == 1
    assert await v(q.redrive("g")) == 1
    [redriven] = await v(q.pop("g", "other"))
    assert (redriven.payload, redriven.deliveries) == ("poison", 1)


async def test_blocking_pop_is_woken_by_a_push(api: Api) -> None:
    q = api.p.queue(Q)
    if api.is_async:
        waiting = asyncio.create_task(q.pop("g", "c", block_ms=5000))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        job = await q.push("wake")
        assert [j.id for j in await waiting] == [job]
    else:
        pushing = threading.Timer(0.2, q.push, ("wake",))
        pushing.start()
        started = time.monotonic()
        [got] = q.pop("g", "c", block_ms=5000)
        assert got.payload == "wake" and time.monotonic() - started >= 0.15
        pushing.join()
    started = time.monotonic()
    assert await v(q.pop("g", "c", block_ms=150)) == []
    assert time.monotonic() - started >= 0.14


async def test_bad_input_is_an_error(api: Api) -> None:
    q = api.p.queue(Q)
    with pytest.raises(CommandError, match="lease_ms must be a positive integer"):
        await v(q.pop("g", "c", lease_ms=0))
    with pytest.raises(CommandError, match="job_id must be a stream id"):
        await v(q.ack("g", "nope"))
    assert api.raw.exists(Q) == 0


def handler_for(api: Api, fn: Any) -> Any:
    if not api.is_async:
        return fn

    async def handler(job: Job) -> None:
        await asyncio.to_thread(fn, job)

    return handler


async def start(api: Api, worker: Any) -> None:
    await v(worker.__aenter__() if api.is_async else worker.__enter__())


async def stop(api: Api, worker: Any) -> None:
    await v(worker.stop())


async def test_worker_acks_retries_and_dead_letters(api: Api) -> None:
    q = api.p.queue(Q)
    ok = [await v(q.push(f"ok-{i}")) for i in range(6)]
    bad = await v(q.push("fail"))
    seen: List[Job] = []
    guard = threading.Lock()

    def work(job: Job) -> None:
        with guard:
            seen.append(job)
        if job.payload == "fail":
            raise ValueError("always fails")

    worker = q.worker(
        "g", "w", handler_for(api, work), concurrency=3, max_deliveries=3, poll_ms=100, retry_ms=20
    )

    async def settled() -> bool:
        return (await v(q.stats("g"))).dead == 1 and worker.processed == 6

    await start(api, worker)
    await wait_for(api, settled)
    await stop(api, worker)
    assert sorted(j.id for j in seen if j.payload != "fail") == sorted(ok)
    assert [j.deliveries for j in seen if j.payload == "fail"] == [1, 2, 3]
    assert worker.failed == 3
    assert await v(q.stats("g")) == QueueStats(0, 0, 0, 1, 1)
    assert api.raw.xrange("jobs:{mail}:dead")[0][1]["job"] == bad
    assert api.raw.xlen(Q) == 0


def holder(api: Api, job_id: str) -> Any:
    if not any(g["name"] == "g" for g in api.raw.xinfo_groups(Q)):
        return None
    pending = api.raw.xpending_range(Q, "g", "-", "+", 10)
    return next((p["consumer"] for p in pending if p["message_id"] == job_id), None)


async def test_worker_extends_the_lease_of_a_slow_job_and_stops_cleanly(api: Api) -> None:
    q = api.p.queue(Q)
    job = await v(q.push("slow"))
    done = threading.Event()

    def work(job: Job) -> None:
        time.sleep(1.2)  # six leases of 200 ms
        done.set()

    worker = q.worker("g", "slow", handler_for(api, work), lease_ms=200, poll_ms=100)
    await start(api, worker)
    await wait_for(api, lambda: holder(api, job) == "slow")
    while not done.is_set():  # another consumer never gets it while it is being handled
        assert await v(q.pop("g", "thief")) == []
        await sleep(api, 0.05)
    await stop(api, worker)  # waits for the job in hand to be acked
    assert (worker.processed, worker.failed) == (1, 0)
    stats = await v(q.stats("g"))
    assert (stats.ready, stats.pending) == (0, 0)
    await v(q.push("after"))
    await sleep(api, 0.3)
    assert (await v(q.stats("g"))).ready == 1  # a stopped worker pops nothing


async def test_worker_reports_a_lost_lease(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    q = api.p.queue(Q)
    job = await v(q.push("stolen"))

    def work(job: Job) -> None:
        time.sleep(0.8)

    worker = q.worker("g", "slow", handler_for(api, work), lease_ms=150, poll_ms=100)
    with caplog.at_level("WARNING", logger="redis_patterns"):
        await start(api, worker)
        await wait_for(api, lambda: holder(api, job) == "slow")
        api.raw.xclaim(Q, "g", "thief", 0, [job])  # another consumer took it behind its back
        await wait_for(api, lambda: "its lease was lost" in caplog.text)
        await stop(api, worker)
    assert f"job {job}: its lease was lost while it was handled" in caplog.text
