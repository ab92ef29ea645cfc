"""The asyncio API: the same classes and methods as ``redis_patterns``, as coroutines, over
``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``. The classes are ``_api``'s and the
logic ``_ops``'s, shared with the sync API; only the driving differs: awaited, background work
on tasks."""

from __future__ import annotations

import asyncio
import inspect
from contextlib import nullcontext
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import _api as api
from . import _errors, _types
from . import _ops as ops
from ._errors import *  # noqa: F403 (re-exported, as by redis_patterns)
from ._errors import from_response
from ._types import *  # noqa: F403

__all__ = [*api.CLASSES, *_errors.__all__, *_types.__all__]

T = TypeVar("T")
Client = Union[Redis, RedisCluster]

# How long past its own timeout a blocked module call may take to answer before we give up.
BLOCKING_GRACE_S = 5.0
# A wait without limit still needs a number for redis-py's read timeout: a year.
FOREVER_S = 365 * 86400.0


class _Task(ops.Background):
    """An operation run as a task; ``stopping`` ends its pauses."""

    def __init__(self, driver: _Driver, op: ops.Op[None]) -> None:
        self.stopping = asyncio.Event()
        self.task = asyncio.create_task(driver.run(op, self.stopping))


class _Driver(api.AsyncDriver):
    """Runs operations on the client; resolves the backend before the first one."""

    cluster_type = RedisCluster
    lock_type = asyncio.Lock

    def as_cluster(self) -> RedisCluster:
        assert isinstance(self.client, RedisCluster)
        return self.client

    async def subscriber(self) -> Redis:
        """A client to subscribe with: the client itself, or on a Cluster (whose asyncio client
        has no pub/sub) one to a primary, which sees every node's ``PUBLISH``."""
        if not self.cluster:
            assert isinstance(self.client, Redis)
            return self.client
        cluster = self.as_cluster()
        await cluster.initialize()
        node = cluster.get_primaries()[0]
        pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return Redis(connection_pool=pool)

    def current_backend(self) -> str:
        return self.resolved or self.requested

    def spawn(self, op: ops.Op[None]) -> ops.Background:
        return _Task(self, op)

    def guard(self) -> nullcontext[None]:
        return nullcontext()  # tasks switch only at an await

    async def backend(self) -> str:
        if self.resolved is None:
            async with self.resolving:
                if self.resolved is None:
                    self.resolved = await self.drive(ops.detect(self.requested))
        return self.resolved

    async def run(self, op: ops.Op[T], stopping: Optional[asyncio.Event] = None) -> T:
        await self.backend()
        return await self.drive(op, stopping)

    async def drive(self, op: ops.Op[T], stopping: Optional[asyncio.Event] = None) -> T:
        outcome = ops.Outcome()
        while not isinstance(step := outcome.resume(op), ops.Done):
            try:
                outcome = ops.Outcome(await self.step(step, stopping))
            except Exception as error:
                outcome = ops.Outcome(error=error)
        return step.value

    async def step(self, step: ops.Step, stopping: Optional[asyncio.Event]) -> Any:
        if isinstance(step, ops.Call):
            return await self.drive(ops.reloading(self, step))
        if isinstance(step, ops.Send):
            return await self.send(step.call)
        if isinstance(step, ops.Sleep):
            return await self.sleep(step.seconds, stopping)
        if isinstance(step, ops.Compute):
            result = step.fn()
            return await result if inspect.isawaitable(result) else result
        if isinstance(step, ops.Stop):
            return await self.stop(step.handles)
        if isinstance(step, ops.Primaries):
            if self.cluster:
                cluster = self.as_cluster()
                await cluster.initialize()
                return cluster.get_primaries()
            return [self.client]
        target = self.client if step.node is None else step.node
        try:
            return await target.execute_command(*step.args)
        except ResponseError as e:
            raise from_response(e) from e

    @staticmethod
    async def sleep(seconds: float, stopping: Optional[asyncio.Event]) -> Optional[bool]:
        if stopping is None:
            await asyncio.sleep(seconds)
            return None
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    @staticmethod
    async def stop(handles: Sequence[ops.Background]) -> None:
        tasks = [handle for handle in handles if isinstance(handle, _Task)]
        for task in tasks:
            task.stopping.set()
        current = asyncio.current_task()
        await asyncio.gather(*(task.task for task in tasks if task.task is not current))

    async def send(self, call: ops.Call) -> Any:
        try:
            if self.twin:
                return await self.client.execute_command(*ops.fcall(call))
            if call.wait_ms is not None and not self.cluster:
                return await self.blocking(call)
            # A Cluster client sends each concurrent command on a connection of its own, read
            # within its socket_timeout (it has no public way to lend one out).
            return await self.client.execute_command(*call.module)
        except ResponseError as e:
            raise from_response(e) from e

    async def blocking(self, call: ops.Call) -> Any:
        """A command that may block on the server: on a connection of its own from the pool
        (never one the caller may hold), read however long the client's socket timeout."""
        assert isinstance(self.client, Redis)
        pool = self.client.connection_pool
        try:
            conn = await pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            conn = await pool.get_connection(str(call.module[0]))
        try:
            await conn.send_command(*call.module)
            wait = call.wait_ms or 0
            timeout = wait / 1000 + BLOCKING_GRACE_S if wait else FOREVER_S
            return await conn.read_response(timeout=timeout)
        except ResponseError:
            raise
        except BaseException:
            await conn.disconnect()  # its reply, if any, must not reach the next user
            raise
        finally:
            await pool.release(conn)


H = TypeVar("H", bound=api.Held[_Driver])


class _Scoped(api.Held[_Driver]):
    """``async with`` takes a hold (raising ``LockNotAcquired``) and gives it back."""

    async def __aenter__(self: H) -> H:
        return self._entered(await self.acquire())

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class Lock(api.Lock[_Driver], _Scoped):
    """``redis_patterns.Lock`` for asyncio: ``async with``; lease renewal runs as a task."""


class RWLock(api.RWLock[_Driver], Lock):
    """``redis_patterns.RWLock`` for asyncio: ``async with``."""


class Semaphore(api.Semaphore[_Driver], _Scoped):
    """``redis_patterns.Semaphore`` for asyncio: ``async with``."""


class Leaderboard(api.Leaderboard[_Driver]):
    """``redis_patterns.Leaderboard`` for asyncio."""


class Cache(api.Cache[_Driver]):
    """``redis_patterns.Cache`` for asyncio; ``compute`` may be sync or return an awaitable."""

    get_or_set = api.awaiting(api.Cache._get_or_set)

    def on_invalidate(self, callback: Callable[[str], Any]) -> asyncio.Task[None]:
        """Calls ``callback(tag)`` (awaited if it returns an awaitable) for every tag
        invalidated, from a task; cancel the task when done. The subscription is active once
        the task has run (``await asyncio.sleep(0)`` after this call)."""
        return asyncio.create_task(self._listen(callback))

    async def _listen(self, callback: Callable[[str], Any]) -> None:
        pubsub = (await self._driver.subscriber()).pubsub()
        try:
            await pubsub.subscribe(ops.CHANNEL)
            async for message in pubsub.listen():
                if message["type"] == "message":
                    result = callback(ops.text(message["data"]))
                    if inspect.isawaitable(result):
                        await result
        finally:
            await pubsub.aclose() if hasattr(pubsub, "aclose") else await pubsub.close()


class Sessions(api.Sessions[_Driver]):
    """``redis_patterns.Sessions`` for asyncio."""


class Worker(api.Worker[_Driver]):
    """``redis_patterns.Worker`` for asyncio: ``concurrency`` tasks, and one renewing leases;
    ``async with queue.worker(...):`` or ``start()`` and ``await stop()``."""

    async def __aenter__(self) -> Worker:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Queue(api.Queue[_Driver, Worker]):
    """``redis_patterns.Queue`` for asyncio."""

    _worker_class = Worker


class Patterns(
    api.Patterns[_Driver, Client, Lock, RWLock, Semaphore, Leaderboard, Queue, Cache, Sessions]
):
    """redis-patterns over ``redis.asyncio.Redis`` or ``RedisCluster``; see
    ``redis_patterns.Patterns``."""

    _driver_class = _Driver
    _classes = api.Classes(Lock, RWLock, Semaphore, Leaderboard, Queue, Cache, Sessions)

    async def detect_backend(self) -> str:
        """Resolves the backend (loading the twin when needed) and returns it."""
        return await self._driver.backend()
