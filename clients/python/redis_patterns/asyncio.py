"""The asyncio API: the same classes and methods as ``redis_patterns``, as coroutines, over
``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``. The logic is ``_ops``, shared with
the sync API; only the driving differs."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import _ops as ops
from ._errors import (
    BackendError,
    CommandError,
    LockNotAcquired,
    LockNotOwned,
    PatternsError,
    PermissionDeniedError,
    WrongTypeError,
    from_response,
)
from ._types import (
    Entry,
    Job,
    JSONSerializer,
    LockInfo,
    Page,
    QueueStats,
    Ranked,
    RateLimit,
    RWLockInfo,
    Serializer,
)

__all__ = [
    "BackendError",
    "Cache",
    "CommandError",
    "Entry",
    "Job",
    "JSONSerializer",
    "Leaderboard",
    "Lock",
    "LockInfo",
    "LockNotAcquired",
    "LockNotOwned",
    "Page",
    "Patterns",
    "PatternsError",
    "PermissionDeniedError",
    "Queue",
    "QueueStats",
    "Ranked",
    "RateLimit",
    "RWLock",
    "RWLockInfo",
    "Semaphore",
    "Serializer",
    "Sessions",
    "Worker",
    "WrongTypeError",
]

T = TypeVar("T")
Client = Union[Redis, RedisCluster]
Key = ops.Key
log = logging.getLogger("redis_patterns")

# How long past its own timeout a blocked module call may take to answer before we give up.
BLOCKING_GRACE_S = 5.0
# A wait without limit still needs a number for redis-py's read timeout: a year.
FOREVER_S = 365 * 86400.0


class _Driver(ops.Context):
    """Runs operations on the client; resolves the backend before the first one."""

    def __init__(self, client: Client, backend: str) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.requested = backend
        self.resolved: Optional[str] = None
        self.resolving = asyncio.Lock()

    @property
    def twin(self) -> bool:  # type: ignore[override]
        return self.resolved == "twin"

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

    async def backend(self) -> str:
        if self.resolved is None:
            async with self.resolving:
                if self.resolved is None:
                    self.resolved = await self.drive(ops.detect(self.requested))
        return self.resolved

    async def run(self, op: ops.Op[T]) -> T:
        await self.backend()
        return await self.drive(op)

    async def drive(self, op: ops.Op[T]) -> T:
        reply: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                step = op.send(reply) if error is None else op.throw(error)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            try:
                reply = await self.step(step)
            except CommandError as e:
                error = e

    async def step(self, step: ops.Step) -> Any:
        if isinstance(step, ops.Call):
            return await self.call(step)
        if isinstance(step, ops.Sleep):
            await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, ops.Compute):
            result = step.fn()
            return await result if inspect.isawaitable(result) else result
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

    async def call(self, call: ops.Call) -> Any:
        try:
            return await self.send(call)
        except CommandError as e:
            if not (self.twin and ops.is_missing_function(e)):
                raise
        await self.drive(ops.load_twin())
        return await self.send(call)

    async def send(self, call: ops.Call) -> Any:
        try:
            if self.twin:
                keys, args = call.keys, call.args
                return await self.client.execute_command(
                    "FCALL", call.function, len(keys), *keys, *args
                )
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


class Patterns:
    """redis-patterns over ``redis.asyncio.Redis`` or ``RedisCluster``; see
    ``redis_patterns.Patterns``. The backend is resolved on the first call (or by
    ``await p.detect_backend()``); ``p.backend`` is then ``"module"`` or ``"twin"``."""

    def __init__(
        self, client: Client, backend: str = "auto", serializer: Optional[Serializer] = None
    ) -> None:
        if backend not in ops.BACKENDS:
            raise ValueError(f"backend must be one of {ops.BACKENDS}, not {backend!r}")
        self._driver = _Driver(client, backend)
        self.cache = Cache(self._driver, serializer or ops.DEFAULT_SERIALIZER)
        self.sessions = Sessions(self._driver)

    @property
    def backend(self) -> str:
        """``"module"`` or ``"twin"`` once resolved; until then the backend asked for."""
        return self._driver.resolved or self._driver.requested

    async def detect_backend(self) -> str:
        """Resolves the backend (loading the twin when needed) and returns it."""
        return await self._driver.backend()

    async def load_twin(self) -> None:
        """(Re)loads the bundled twin on every primary whose copy is missing or differs."""
        await self._driver.drive(ops.load_twin())

    async def token_bucket(
        self, key: Key, capacity: int, rate: int, period_ms: int, cost: int = 1
    ) -> RateLimit:
        op = ops.token_bucket(self._driver, key, capacity, rate, period_ms, cost)
        return await self._driver.run(op)

    async def fixed_window(self, key: Key, limit: int, window_ms: int, cost: int = 1) -> RateLimit:
        return await self._driver.run(ops.fixed_window(self._driver, key, limit, window_ms, cost))

    async def sliding_window(
        self, key: Key, limit: int, window_ms: int, cost: int = 1, exact: bool = False
    ) -> RateLimit:
        op = ops.sliding_window(self._driver, key, limit, window_ms, cost, exact)
        return await self._driver.run(op)

    async def throttle(
        self, key: Key, max_burst: int, count_per_period: int, period_s: int, quantity: int = 1
    ) -> RateLimit:
        op = ops.throttle(self._driver, key, max_burst, count_per_period, period_s, quantity)
        return await self._driver.run(op)

    def lock(
        self,
        key: Key,
        ttl_ms: int = 30000,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
        auto_extend: bool = True,
    ) -> Lock:
        """A lock with fencing tokens; use ``async with p.lock(...) as lock:``."""
        return Lock(self._driver, key, ttl_ms, wait_ms, owner, auto_extend)

    def rwlock(
        self,
        key: Key,
        mode: str,
        ttl_ms: int = 30000,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
        auto_extend: bool = True,
    ) -> RWLock:
        """A read/write lock held in ``mode`` ("read" or "write"); use
        ``async with p.rwlock(key, "read"):``. See ``RWLock``."""
        return RWLock(self._driver, key, mode, ttl_ms, wait_ms, owner, auto_extend)

    async def rwlock_info(self, key: Key) -> Optional[RWLockInfo]:
        """``RWLOCK.INFO``: the mode, writer, token, readers, ms left and waiters; None when
        free."""
        return await self._driver.run(ops.rwlock_info(self._driver, key))

    async def lock_info(self, key: Key) -> Optional[LockInfo]:
        return await self._driver.run(ops.lock_info(self._driver, key))

    def semaphore(
        self,
        key: Key,
        limit: int,
        ttl_ms: int,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
    ) -> Semaphore:
        return Semaphore(self._driver, key, limit, ttl_ms, wait_ms, owner)

    async def fenced_hset(self, resource: Key, token: int, mapping: Mapping[str, Any]) -> bool:
        return await self._driver.run(ops.fenced_hset(self._driver, resource, token, mapping))

    def leaderboard(self, key: Key) -> Leaderboard:
        return Leaderboard(self._driver, key)

    def queue(self, name: Key) -> Queue:
        return Queue(self._driver, name)


class Lock:
    """``redis_patterns.Lock`` for asyncio: ``async with``; auto-extension runs as a task that
    stops, marking ``lost``, when a renewal fails. Twin waits are polled with backoff."""

    def __init__(
        self,
        driver: _Driver,
        key: Key,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
        auto_extend: bool,
    ) -> None:
        self._driver = driver
        self.key = key
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.owner = owner or ops.new_owner()
        self.auto_extend = auto_extend
        self.token: Optional[int] = None
        self.lost = False
        self._holds = 0
        self._extender: Optional[asyncio.Task[None]] = None

    async def acquire(self, wait_ms: Optional[int] = None) -> bool:
        wait = self.wait_ms if wait_ms is None else wait_ms
        token = await self._driver.run(self._acquire_op(wait))
        if token is None:
            return False
        self.token, self.lost = token, False
        self._holds += 1
        if self.auto_extend and self._extender is None:
            self._extender = asyncio.create_task(self._extend_loop())
        return True

    async def release(self) -> None:
        self._holds = max(self._holds - 1, 0)
        if self._holds == 0:
            await self._stop_extending()
        if not await self._driver.run(self._release_op()):
            raise LockNotOwned(f"lock {ops.text(self.key)!r} is not held by {self.owner!r}")

    async def extend(self, ttl_ms: Optional[int] = None) -> None:
        if not await self._driver.run(self._extend_op(ttl_ms or self.ttl_ms)):
            raise LockNotOwned(f"lock {ops.text(self.key)!r} is not held by {self.owner!r}")

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.lock_acquire(self._driver, self.key, self.owner, self.ttl_ms, wait)

    def _release_op(self) -> ops.Op[bool]:
        return ops.lock_release(self._driver, self.key, self.owner)

    def _extend_op(self, ttl_ms: int) -> ops.Op[bool]:
        return ops.lock_extend(self._driver, self.key, self.owner, ttl_ms)

    async def _extend_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self.extend()
            except Exception:
                self.lost = True
                self._extender = None
                return

    async def _stop_extending(self) -> None:
        task, self._extender = self._extender, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> Lock:
        if not await self.acquire():
            raise LockNotAcquired(f"lock {ops.text(self.key)!r} was not granted")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class RWLock(Lock):
    """A read/write lock (``RWLOCK.*``) held in one ``mode``: "read" holds coexist, a "write"
    hold excludes readers and other writers and has a fencing ``token`` (None for a read hold).
    Otherwise as ``Lock``: ``async with`` acquires and releases, ``wait_ms`` waits on the
    server (FIFO for both modes, the module) or is polled with backoff (the twin),
    ``auto_extend`` renews the lease while held."""

    def __init__(
        self,
        driver: _Driver,
        key: Key,
        mode: str,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
        auto_extend: bool,
    ) -> None:
        self.mode = ops.rwlock_mode(mode).lower()
        super().__init__(driver, key, ttl_ms, wait_ms, owner, auto_extend)

    async def acquire(self, wait_ms: Optional[int] = None) -> bool:
        """Takes the hold (a writer again: one more; a reader again: refreshes it);
        ``wait_ms`` overrides the lock's."""
        granted = await super().acquire(wait_ms)
        if granted and self.mode == "read":  # again: a refresh, not one more hold
            self.token, self._holds = None, 1
        return granted

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.rwlock_acquire(self._driver, self.key, self.owner, self.ttl_ms, self.mode, wait)

    def _release_op(self) -> ops.Op[bool]:
        return ops.rwlock_release(self._driver, self.key, self.owner)

    def _extend_op(self, ttl_ms: int) -> ops.Op[bool]:
        return ops.rwlock_extend(self._driver, self.key, self.owner, ttl_ms)

    async def __aenter__(self) -> RWLock:
        if not await self.acquire():
            raise LockNotAcquired(f"{self.mode} lock {ops.text(self.key)!r} was not granted")
        return self


class Semaphore:
    """``redis_patterns.Semaphore`` for asyncio (``async with``)."""

    def __init__(
        self,
        driver: _Driver,
        key: Key,
        limit: int,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
    ) -> None:
        self._driver = driver
        self.key = key
        self.limit = limit
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.owner = owner or ops.new_owner()

    async def acquire(self, wait_ms: Optional[int] = None) -> bool:
        wait = self.wait_ms if wait_ms is None else wait_ms
        op = ops.sem_acquire(self._driver, self.key, self.owner, self.limit, self.ttl_ms, wait)
        return await self._driver.run(op)

    async def release(self) -> None:
        if not await self._driver.run(ops.sem_release(self._driver, self.key, self.owner)):
            raise LockNotOwned(f"no permit of {ops.text(self.key)!r} held by {self.owner!r}")

    async def count(self) -> int:
        return await self._driver.run(ops.sem_count(self._driver, self.key))

    async def __aenter__(self) -> Semaphore:
        if not await self.acquire():
            raise LockNotAcquired(f"no permit of {ops.text(self.key)!r} was granted")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class Leaderboard:
    """``redis_patterns.Leaderboard`` for asyncio."""

    def __init__(self, driver: _Driver, key: Key) -> None:
        self._driver = driver
        self.key = key

    async def add(self, scores: Mapping[str, float]) -> int:
        return await self._driver.run(ops.lb_add(self._driver, self.key, scores))

    async def incr(self, member: str, amount: float) -> float:
        return await self._driver.run(ops.lb_incr(self._driver, self.key, member, amount))

    async def add_with_rank(
        self, scores: Mapping[str, float], ranking: str = "ordinal", order: str = "desc"
    ) -> List[Ranked]:
        """``LB.ADD ... WITHRANK``: sets scores and answers each member's rank after the whole
        write, ``Ranked(rank, member, score, total_members)``, in ``scores``' order."""
        op = ops.lb_add_ranked(self._driver, self.key, scores, ranking, order)
        return await self._driver.run(op)

    async def incr_with_rank(
        self, member: str, amount: float, ranking: str = "ordinal", order: str = "desc"
    ) -> Ranked:
        """``LB.INCR ... WITHRANK``: adds to the score and answers the member's new rank."""
        op = ops.lb_incr_ranked(self._driver, self.key, member, amount, ranking, order)
        return await self._driver.run(op)

    async def remove(self, *members: str) -> int:
        return await self._driver.run(ops.lb_remove(self._driver, self.key, members))

    async def rank(
        self, member: str, ranking: str = "ordinal", order: str = "desc"
    ) -> Optional[Entry]:
        return await self._driver.run(ops.lb_rank(self._driver, self.key, member, ranking, order))

    async def around(
        self, member: str, n: int, ranking: str = "ordinal", order: str = "desc"
    ) -> Optional[List[Entry]]:
        op = ops.lb_around(self._driver, self.key, member, n, ranking, order)
        return await self._driver.run(op)

    async def top(
        self, n: int, offset: int = 0, ranking: str = "ordinal", order: str = "desc"
    ) -> List[Entry]:
        return await self._driver.run(ops.lb_top(self._driver, self.key, n, offset, ranking, order))

    async def page(
        self, page: int, size: int, ranking: str = "ordinal", order: str = "desc"
    ) -> Page:
        op = ops.lb_page(self._driver, self.key, page, size, ranking, order)
        return await self._driver.run(op)

    async def percentile(self, member: str, order: str = "desc") -> Optional[float]:
        return await self._driver.run(ops.lb_percentile(self._driver, self.key, member, order))


class Cache:
    """``redis_patterns.Cache`` for asyncio; ``compute`` may be sync or return an awaitable."""

    def __init__(self, driver: _Driver, serializer: Serializer) -> None:
        self._driver = driver
        self.serializer = serializer

    async def get_or_set(
        self,
        key: Key,
        compute: Callable[[], Union[T, Awaitable[T]]],
        ttl_ms: int,
        delta_ms: Optional[int] = None,
        grace_ms: int = 0,
        tags: Sequence[Key] = (),
        beta: float = 1.0,
        lease_ms: Optional[int] = None,
        max_wait_ms: Optional[int] = None,
    ) -> T:
        """See ``redis_patterns.Cache.get_or_set``."""
        fill = ops.Fill(ttl_ms, delta_ms, grace_ms, tags)
        op = ops.get_or_set(
            self._driver, key, compute, fill, beta, lease_ms, max_wait_ms, self.serializer
        )
        return await self._driver.run(op)

    async def set(
        self,
        key: Key,
        value: Any,
        ttl_ms: int,
        delta_ms: int = 0,
        grace_ms: int = 0,
        tags: Sequence[Key] = (),
    ) -> None:
        data = self.serializer.dumps(value)
        op = ops.cache_set(self._driver, key, data, ttl_ms, delta_ms, grace_ms, tags)
        await self._driver.run(op)

    async def get(self, key: Key, default: Any = None) -> Any:
        data = await self._driver.run(ops.cache_peek(self._driver, key))
        return default if data is None else self.serializer.loads(data)

    async def tag(self, key: Key, *tags: Key) -> int:
        return await self._driver.run(ops.cache_tag(self._driver, key, tags))

    async def invalidate(self, *tags: Key) -> int:
        return await self._driver.run(ops.cache_invalidate(self._driver, tags))

    def cached(
        self,
        ttl_ms: int,
        tags: Union[Sequence[Key], Callable[..., Sequence[Key]]] = (),
        key: Optional[Callable[..., Key]] = None,
        prefix: str = "cache:",
        grace_ms: int = 0,
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """Decorator for coroutine functions: ``get_or_set`` keyed by the function and its
        arguments (or ``key(*args, **kwargs)``)."""

        def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> T:
                name = key(*args, **kwargs) if key else ops.cache_key(prefix, fn, args, kwargs)
                listed = tags(*args, **kwargs) if callable(tags) else tags
                return await self.get_or_set(
                    name, lambda: fn(*args, **kwargs), ttl_ms, grace_ms=grace_ms, tags=listed
                )

            return wrapper

        return decorate

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


class Sessions:
    """``redis_patterns.Sessions`` for asyncio."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver

    async def create(
        self,
        index: Key,
        idle_ms: int,
        absolute_ms: int,
        data: Mapping[str, Any],
        max_sessions: Optional[int] = None,
    ) -> str:
        op = ops.session_create(self._driver, index, idle_ms, absolute_ms, data, max_sessions)
        return await self._driver.run(op)

    async def get(self, session: Key) -> Optional[Dict[str, str]]:
        return await self._driver.run(ops.session_get(self._driver, session))

    async def set(self, session: Key, mapping: Mapping[str, Any]) -> bool:
        return await self._driver.run(ops.session_set(self._driver, session, mapping))

    async def rotate(self, session: Key) -> Optional[str]:
        return await self._driver.run(ops.session_rotate(self._driver, session))

    async def destroy(self, session: Key) -> bool:
        return await self._driver.run(ops.session_destroy(self._driver, session))

    async def destroy_all(self, index: Key) -> int:
        return await self._driver.run(ops.session_destroy_all(self._driver, index))

    async def list(self, index: Key) -> List[str]:
        return await self._driver.run(ops.session_list(self._driver, index))

    async def count(self, index: Key) -> int:
        return await self._driver.run(ops.session_count(self._driver, index))


class Queue:
    """``redis_patterns.Queue`` for asyncio. A blocking ``pop`` (the module) waits on a
    connection of its own; on a Cluster, within the client's ``socket_timeout``."""

    def __init__(self, driver: _Driver, key: Key) -> None:
        self._driver = driver
        self.key = key

    async def push(
        self,
        payload: Union[str, bytes],
        delay_ms: Optional[int] = None,
        dedupe: Optional[str] = None,
        dedupe_ttl_ms: int = ops.DEFAULT_DEDUPE_TTL_MS,
    ) -> str:
        op = ops.queue_push(self._driver, self.key, payload, delay_ms, dedupe, dedupe_ttl_ms)
        return await self._driver.run(op)

    async def pop(
        self,
        group: str,
        consumer: str,
        count: int = 1,
        block_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
        max_deliveries: Optional[int] = None,
    ) -> List[Job]:
        op = ops.queue_pop(
            self._driver, self.key, group, consumer, count, block_ms, lease_ms, max_deliveries
        )
        return await self._driver.run(op)

    async def ack(self, group: str, *job_ids: str) -> int:
        return await self._driver.run(ops.queue_ack(self._driver, self.key, group, job_ids))

    async def nack(self, group: str, job_id: str, delay_ms: Optional[int] = None) -> bool:
        op = ops.queue_nack(self._driver, self.key, group, job_id, delay_ms)
        return await self._driver.run(op)

    async def extend(self, group: str, consumer: str, job_id: str, lease_ms: int) -> bool:
        op = ops.queue_extend(self._driver, self.key, group, consumer, job_id, lease_ms)
        return await self._driver.run(op)

    async def redrive(self, group: str, count: Optional[int] = None) -> int:
        return await self._driver.run(ops.queue_redrive(self._driver, self.key, group, count))

    async def stats(self, group: str) -> QueueStats:
        return await self._driver.run(ops.queue_stats(self._driver, self.key, group))

    def worker(
        self,
        group: str,
        consumer: str,
        handler: Callable[[Job], Any],
        concurrency: int = 1,
        lease_ms: int = 30000,
        max_deliveries: Optional[int] = None,
        poll_ms: int = 1000,
        retry_ms: int = 1000,
        max_retry_ms: int = 60000,
    ) -> Worker:
        """A ``Worker`` awaiting ``handler(job)`` (a coroutine function, or a plain one)."""
        options = ops.WorkerOptions(lease_ms, max_deliveries, poll_ms, retry_ms, max_retry_ms)
        return Worker(self, group, consumer, handler, concurrency, options)


class Worker:
    """``redis_patterns.Worker`` for asyncio: ``concurrency`` tasks, and one renewing leases;
    ``async with queue.worker(...):`` or ``start()`` and ``await stop()``."""

    def __init__(
        self,
        queue: Queue,
        group: str,
        consumer: str,
        handler: Callable[[Job], Any],
        concurrency: int,
        options: ops.WorkerOptions,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.concurrency = concurrency
        self.options = options
        self.processed = 0
        self.failed = 0
        self._held: Dict[str, Job] = {}
        self._stopping = asyncio.Event()
        self._loops: List[asyncio.Task[None]] = []
        self._extender: Optional[asyncio.Task[None]] = None

    def start(self) -> Worker:
        if self._loops:
            raise RuntimeError("the worker is already running")
        self._stopping.clear()
        self._loops = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        self._extender = asyncio.create_task(self._extend_loop())
        return self

    async def stop(self) -> None:
        """Stops popping, waits for the jobs in hand, then stops renewing leases."""
        self._stopping.set()
        loops, self._loops = self._loops, []
        await asyncio.gather(*loops)
        extender, self._extender = self._extender, None
        if extender is not None:
            extender.cancel()
            try:
                await extender
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> Worker:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        o = self.options
        while not self._stopping.is_set():
            try:
                for job in await self.queue.pop(
                    self.group, self.consumer, 1, o.poll_ms, o.lease_ms, o.max_deliveries
                ):
                    await self._handle(job)
            except Exception:
                log.exception("queue worker %s/%s", ops.text(self.queue.key), self.consumer)
                try:
                    await asyncio.wait_for(self._stopping.wait(), o.poll_ms / 1000)
                except asyncio.TimeoutError:
                    pass

    async def _handle(self, job: Job) -> None:
        self._held[job.id] = job
        try:
            result = self.handler(job)
            if inspect.isawaitable(result):
                await result
            done = True
        except Exception:
            log.warning("job %s failed (delivery %d)", job.id, job.deliveries, exc_info=True)
            done = False
        finally:
            self._held.pop(job.id, None)
        if done:
            await self.queue.ack(self.group, job.id)
        else:
            await self.queue.nack(self.group, job.id, self.options.retry_delay_ms(job.deliveries))
        self.processed += done
        self.failed += not done

    async def _extend_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.extend_every_s)
            for job_id in list(self._held):
                try:
                    kept = await self.queue.extend(
                        self.group, self.consumer, job_id, self.options.lease_ms
                    )
                except Exception:
                    log.exception("renewing the lease of job %s", job_id)
                    continue
                if not kept and job_id in self._held:  # it may run twice
                    log.warning("job %s: its lease was lost while it was handled", job_id)
