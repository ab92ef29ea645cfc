"""The synchronous API: drives the operations of ``_ops`` over a redis-py client."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TypeVar, Union

from redis import Redis
from redis.client import PubSubWorkerThread
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import _ops as ops
from ._errors import CommandError, LockNotAcquired, LockNotOwned, from_response
from ._types import (
    Entry,
    Job,
    LockInfo,
    Page,
    QueueStats,
    Ranked,
    RateLimit,
    RWLockInfo,
    Serializer,
)

T = TypeVar("T")
Client = Union[Redis, RedisCluster]
Key = ops.Key
log = logging.getLogger("redis_patterns")

# How long past its own timeout a blocked module call may take to answer before we give up.
BLOCKING_GRACE_S = 5.0


class _Driver(ops.Context):
    """Runs operations on the client; resolves the backend on first use."""

    def __init__(self, client: Client, backend: str) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self.requested = backend
        self.resolved: Optional[str] = None
        self.resolving = threading.Lock()

    @property
    def backend(self) -> str:
        if self.resolved is None:
            with self.resolving:
                if self.resolved is None:
                    self.resolved = self.drive(ops.detect(self.requested))
        return self.resolved

    @property
    def twin(self) -> bool:  # type: ignore[override]
        return self.backend == "twin"

    def as_cluster(self) -> RedisCluster:
        assert isinstance(self.client, RedisCluster)
        return self.client

    def run(self, op: ops.Op[T]) -> T:
        self.backend  # noqa: B018 (resolves it before the operation reads ctx.twin)
        return self.drive(op)

    def drive(self, op: ops.Op[T]) -> T:
        reply: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                step = op.send(reply) if error is None else op.throw(error)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            try:
                reply = self.step(step)
            except CommandError as e:
                error = e

    def step(self, step: ops.Step) -> Any:
        if isinstance(step, ops.Call):
            return self.call(step)
        if isinstance(step, ops.Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, ops.Compute):
            return step.fn()
        if isinstance(step, ops.Primaries):
            if self.cluster:
                return [node.redis_connection for node in self.as_cluster().get_primaries()]
            return [self.client]
        target = self.client if step.node is None else step.node
        try:
            return target.execute_command(*step.args)
        except ResponseError as e:
            raise from_response(e) from e

    def call(self, call: ops.Call) -> Any:
        try:
            return self.send(call)
        except CommandError as e:
            if not (self.twin and ops.is_missing_function(e)):
                raise
        self.drive(ops.load_twin())
        return self.send(call)

    def send(self, call: ops.Call) -> Any:
        try:
            if self.twin:
                keys, args = call.keys, call.args
                return self.client.execute_command("FCALL", call.function, len(keys), *keys, *args)
            if call.wait_ms is not None:
                return self.blocking(call)
            return self.client.execute_command(*call.module)
        except ResponseError as e:
            raise from_response(e) from e

    def blocking(self, call: ops.Call) -> Any:
        """A command that may block on the server: on a connection of its own from the key's
        pool (never one the caller may hold), read when the server answers, however long the
        client's socket timeout."""
        if isinstance(self.client, RedisCluster):
            pool = self.client.get_node_from_key(call.keys[0]).redis_connection.connection_pool
        else:
            pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py before 5.3 wants a command name
            conn = pool.get_connection(str(call.module[0]))
        try:
            conn.send_command(*call.module)
            wait = call.wait_ms or 0
            give_up = time.monotonic() + wait / 1000 + BLOCKING_GRACE_S if wait else None
            while not conn.can_read(timeout=0.5):
                if give_up is not None and time.monotonic() > give_up:
                    raise TimeoutError(f"{call.module[0]!s} did not answer in time")
            return conn.read_response()
        except ResponseError:
            raise
        except BaseException:
            conn.disconnect()  # its reply, if any, must not reach the next user
            raise
        finally:
            pool.release(conn)


class Patterns:
    """redis-patterns over a redis-py ``Redis`` or ``RedisCluster``.

    ``backend``: ``"module"`` (the module's commands), ``"twin"`` (the bundled Lua Functions
    library, loaded on every primary when missing or different), or ``"auto"`` (the module when
    loaded, else the twin), resolved on first use. Every method behaves the same on both, but
    for waits: the twin cannot block, so a wait is polled with backoff (neither FIFO nor prompt).
    """

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
        """``"module"`` or ``"twin"`` (detected, and the twin loaded, on first access)."""
        return self._driver.backend

    def load_twin(self) -> None:
        """(Re)loads the bundled twin on every primary whose copy is missing or differs."""
        self._driver.drive(ops.load_twin())

    # Rate limiting

    def token_bucket(
        self, key: Key, capacity: int, rate: int, period_ms: int, cost: int = 1
    ) -> RateLimit:
        """``RL.TOKENBUCKET``: capacity tokens, refilled at rate per period_ms (GCRA)."""
        return self._driver.run(
            ops.token_bucket(self._driver, key, capacity, rate, period_ms, cost)
        )

    def fixed_window(self, key: Key, limit: int, window_ms: int, cost: int = 1) -> RateLimit:
        """``RL.FIXEDWINDOW``: at most limit per window_ms, windows aligned to the epoch."""
        return self._driver.run(ops.fixed_window(self._driver, key, limit, window_ms, cost))

    def sliding_window(
        self, key: Key, limit: int, window_ms: int, cost: int = 1, exact: bool = False
    ) -> RateLimit:
        """``RL.SLIDINGWINDOW``: weighted previous window, or with ``exact`` a log."""
        op = ops.sliding_window(self._driver, key, limit, window_ms, cost, exact)
        return self._driver.run(op)

    def throttle(
        self, key: Key, max_burst: int, count_per_period: int, period_s: int, quantity: int = 1
    ) -> RateLimit:
        """``CL.THROTTLE`` (redis-cell's arguments); times in the result are in ms."""
        op = ops.throttle(self._driver, key, max_burst, count_per_period, period_s, quantity)
        return self._driver.run(op)

    # Locks and semaphores

    def lock(
        self,
        key: Key,
        ttl_ms: int = 30000,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
        auto_extend: bool = True,
    ) -> Lock:
        """A lock with fencing tokens; use ``with p.lock(...) as lock:``. See ``Lock``."""
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
        ``with p.rwlock(key, "read"):``. See ``RWLock``."""
        return RWLock(self._driver, key, mode, ttl_ms, wait_ms, owner, auto_extend)

    def rwlock_info(self, key: Key) -> Optional[RWLockInfo]:
        """``RWLOCK.INFO``: the mode, writer, token, readers, ms left and waiters; None when
        free."""
        return self._driver.run(ops.rwlock_info(self._driver, key))

    def lock_info(self, key: Key) -> Optional[LockInfo]:
        """``LOCK.INFO``: the holder, token, ms left, holds and waiters; None when free."""
        return self._driver.run(ops.lock_info(self._driver, key))

    def semaphore(
        self,
        key: Key,
        limit: int,
        ttl_ms: int,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
    ) -> Semaphore:
        """A counting semaphore of ``limit`` expiring permits; see ``Semaphore``."""
        return Semaphore(self._driver, key, limit, ttl_ms, wait_ms, owner)

    def fenced_hset(self, resource: Key, token: int, mapping: Mapping[str, Any]) -> bool:
        """``LOCK.FENCEDHSET``: writes the fields unless a newer token wrote the resource."""
        return self._driver.run(ops.fenced_hset(self._driver, resource, token, mapping))

    def leaderboard(self, key: Key) -> Leaderboard:
        """The leaderboard stored at ``key`` (any sorted set)."""
        return Leaderboard(self._driver, key)

    def queue(self, name: Key) -> Queue:
        """The job queue stored at ``name`` (a stream, with its derived keys)."""
        return Queue(self._driver, name)


class Lock:
    """A lock with fencing tokens, redis-py ``Lock``-like: ``with`` acquires (raising
    ``LockNotAcquired``) and releases; ``acquire()`` returns whether it was granted.

    ``wait_ms``: None tries once; a number waits that long (0: without limit). On the module
    the wait blocks on the server, FIFO, on a connection of its own. On the twin, which cannot
    block, it is polled with jittered backoff (5 ms to 200 ms): not FIFO.

    ``auto_extend`` renews the lease every third of ``ttl_ms`` from a daemon thread while held;
    if a renewal fails the thread stops and ``lost`` becomes True. ``token`` is the fencing
    token: present it with every write to the protected resource (``Patterns.fenced_hset``).
    The same owner acquiring again gets one more hold (same token)."""

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
        self._stop = threading.Event()
        self._extender: Optional[threading.Thread] = None

    def acquire(self, wait_ms: Optional[int] = None) -> bool:
        """Takes the lock (or one more hold); ``wait_ms`` overrides the lock's."""
        wait = self.wait_ms if wait_ms is None else wait_ms
        token = self._driver.run(self._acquire_op(wait))
        if token is None:
            return False
        self.token, self.lost = token, False
        self._holds += 1
        if self.auto_extend and self._extender is None:
            self._stop.clear()
            self._extender = threading.Thread(target=self._extend_loop, daemon=True)
            self._extender.start()
        return True

    def release(self) -> None:
        """Drops one hold; raises ``LockNotOwned`` when this owner held nothing (expired)."""
        self._holds = max(self._holds - 1, 0)
        if self._holds == 0:
            self._stop_extending()
        if not self._driver.run(self._release_op()):
            raise LockNotOwned(f"lock {ops.text(self.key)!r} is not held by {self.owner!r}")

    def extend(self, ttl_ms: Optional[int] = None) -> None:
        """Sets the lease to end ``ttl_ms`` (default: the lock's) from now; raises
        ``LockNotOwned`` when the lock is no longer held."""
        if not self._driver.run(self._extend_op(ttl_ms or self.ttl_ms)):
            raise LockNotOwned(f"lock {ops.text(self.key)!r} is not held by {self.owner!r}")

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.lock_acquire(self._driver, self.key, self.owner, self.ttl_ms, wait)

    def _release_op(self) -> ops.Op[bool]:
        return ops.lock_release(self._driver, self.key, self.owner)

    def _extend_op(self, ttl_ms: int) -> ops.Op[bool]:
        return ops.lock_extend(self._driver, self.key, self.owner, ttl_ms)

    def _extend_loop(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.extend()
            except Exception:
                self.lost = True
                return

    def _stop_extending(self) -> None:
        self._stop.set()
        if self._extender is not None and self._extender is not threading.current_thread():
            self._extender.join()
        self._extender = None

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise LockNotAcquired(f"lock {ops.text(self.key)!r} was not granted")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RWLock(Lock):
    """A read/write lock (``RWLOCK.*``) held in one ``mode``: "read" holds coexist, a "write"
    hold excludes readers and other writers and has a fencing ``token`` (None for a read hold).
    Otherwise as ``Lock``: ``with`` acquires and releases, ``wait_ms`` waits on the
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

    def acquire(self, wait_ms: Optional[int] = None) -> bool:
        """Takes the hold (a writer again: one more; a reader again: refreshes it);
        ``wait_ms`` overrides the lock's."""
        granted = super().acquire(wait_ms)
        if granted and self.mode == "read":  # again: a refresh, not one more hold
            self.token, self._holds = None, 1
        return granted

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.rwlock_acquire(self._driver, self.key, self.owner, self.ttl_ms, self.mode, wait)

    def _release_op(self) -> ops.Op[bool]:
        return ops.rwlock_release(self._driver, self.key, self.owner)

    def _extend_op(self, ttl_ms: int) -> ops.Op[bool]:
        return ops.rwlock_extend(self._driver, self.key, self.owner, ttl_ms)

    def __enter__(self) -> RWLock:
        if not self.acquire():
            raise LockNotAcquired(f"{self.mode} lock {ops.text(self.key)!r} was not granted")
        return self


class Semaphore:
    """A counting semaphore: ``with`` takes one of ``limit`` permits (raising
    ``LockNotAcquired``) for ``ttl_ms`` and returns it. Waits as ``Lock``'s."""

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

    def acquire(self, wait_ms: Optional[int] = None) -> bool:
        wait = self.wait_ms if wait_ms is None else wait_ms
        op = ops.sem_acquire(self._driver, self.key, self.owner, self.limit, self.ttl_ms, wait)
        return self._driver.run(op)

    def release(self) -> None:
        """Returns the permit; raises ``LockNotOwned`` when it had expired."""
        if not self._driver.run(ops.sem_release(self._driver, self.key, self.owner)):
            raise LockNotOwned(f"no permit of {ops.text(self.key)!r} held by {self.owner!r}")

    def count(self) -> int:
        """The permits in use."""
        return self._driver.run(ops.sem_count(self._driver, self.key))

    def __enter__(self) -> Semaphore:
        if not self.acquire():
            raise LockNotAcquired(f"no permit of {ops.text(self.key)!r} was granted")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Leaderboard:
    """``LB.*`` on one board. ``ranking``: ordinal, dense, competition or modified; ``order``:
    desc (highest first) or asc. Entries are ``Entry(rank, member, score)``."""

    def __init__(self, driver: _Driver, key: Key) -> None:
        self._driver = driver
        self.key = key

    def add(self, scores: Mapping[str, float]) -> int:
        """Sets scores; among equal scores the earlier achiever ranks first. Returns how many
        members are new."""
        return self._driver.run(ops.lb_add(self._driver, self.key, scores))

    def incr(self, member: str, amount: float) -> float:
        """Adds to a member's score; returns the new score."""
        return self._driver.run(ops.lb_incr(self._driver, self.key, member, amount))

    def add_with_rank(
        self, scores: Mapping[str, float], ranking: str = "ordinal", order: str = "desc"
    ) -> List[Ranked]:
        """``LB.ADD ... WITHRANK``: sets scores and answers each member's rank after the whole
        write, ``Ranked(rank, member, score, total_members)``, in ``scores``' order."""
        op = ops.lb_add_ranked(self._driver, self.key, scores, ranking, order)
        return self._driver.run(op)

    def incr_with_rank(
        self, member: str, amount: float, ranking: str = "ordinal", order: str = "desc"
    ) -> Ranked:
        """``LB.INCR ... WITHRANK``: adds to the score and answers the member's new rank."""
        op = ops.lb_incr_ranked(self._driver, self.key, member, amount, ranking, order)
        return self._driver.run(op)

    def remove(self, *members: str) -> int:
        return self._driver.run(ops.lb_remove(self._driver, self.key, members))

    def rank(self, member: str, ranking: str = "ordinal", order: str = "desc") -> Optional[Entry]:
        return self._driver.run(ops.lb_rank(self._driver, self.key, member, ranking, order))

    def around(
        self, member: str, n: int, ranking: str = "ordinal", order: str = "desc"
    ) -> Optional[List[Entry]]:
        """The ``n`` entries around member (None when it is absent)."""
        op = ops.lb_around(self._driver, self.key, member, n, ranking, order)
        return self._driver.run(op)

    def top(
        self, n: int, offset: int = 0, ranking: str = "ordinal", order: str = "desc"
    ) -> List[Entry]:
        op = ops.lb_top(self._driver, self.key, n, offset, ranking, order)
        return self._driver.run(op)

    def page(self, page: int, size: int, ranking: str = "ordinal", order: str = "desc") -> Page:
        """Page ``page`` (1-based) of ``size`` entries, and the number of pages."""
        op = ops.lb_page(self._driver, self.key, page, size, ranking, order)
        return self._driver.run(op)

    def percentile(self, member: str, order: str = "desc") -> Optional[float]:
        """The share of members with a strictly worse score, in percent."""
        return self._driver.run(ops.lb_percentile(self._driver, self.key, member, order))


class Cache:
    """``CACHE.*``: tagged entries with stampede protection; values go through the serializer
    (JSON unless ``Patterns(serializer=...)``)."""

    def __init__(self, driver: _Driver, serializer: Serializer) -> None:
        self._driver = driver
        self.serializer = serializer

    def get_or_set(
        self,
        key: Key,
        compute: Callable[[], T],
        ttl_ms: int,
        delta_ms: Optional[int] = None,
        grace_ms: int = 0,
        tags: Sequence[Key] = (),
        beta: float = 1.0,
        lease_ms: Optional[int] = None,
        max_wait_ms: Optional[int] = None,
    ) -> T:
        """Read-through: the cached value, or ``compute()`` stored for ``ttl_ms``.

        HIT and STALE (within ``grace_ms``, while another caller recomputes) return the cached
        value; MISS and REFRESH (XFetch chose this caller early, or the value is stale) call
        ``compute``, fill with the lease and return its result; WAIT (another caller computes)
        sleeps the hinted time and asks again, for at most ``max_wait_ms`` (default: the lease,
        10 s), then computes without storing. ``delta_ms`` defaults to the measured compute time.
        Exceptions from ``compute`` propagate (its lease then lapses after ``lease_ms``)."""
        fill = ops.Fill(ttl_ms, delta_ms, grace_ms, tags)
        op = ops.get_or_set(
            self._driver, key, compute, fill, beta, lease_ms, max_wait_ms, self.serializer
        )
        return self._driver.run(op)

    def set(
        self,
        key: Key,
        value: Any,
        ttl_ms: int,
        delta_ms: int = 0,
        grace_ms: int = 0,
        tags: Sequence[Key] = (),
    ) -> None:
        """Caches ``value`` for ``ttl_ms`` (then stale for ``grace_ms``) under ``tags``."""
        data = self.serializer.dumps(value)
        self._driver.run(ops.cache_set(self._driver, key, data, ttl_ms, delta_ms, grace_ms, tags))

    def get(self, key: Key, default: Any = None) -> Any:
        """The cached value (fresh or stale within its grace), else ``default``."""
        data = self._driver.run(ops.cache_peek(self._driver, key))
        return default if data is None else self.serializer.loads(data)

    def tag(self, key: Key, *tags: Key) -> int:
        """Lists a cached key under more tags; returns how many were new."""
        return self._driver.run(ops.cache_tag(self._driver, key, tags))

    def invalidate(self, *tags: Key) -> int:
        """Deletes every key listed under the tags; returns how many."""
        return self._driver.run(ops.cache_invalidate(self._driver, tags))

    def cached(
        self,
        ttl_ms: int,
        tags: Union[Sequence[Key], Callable[..., Sequence[Key]]] = (),
        key: Optional[Callable[..., Key]] = None,
        prefix: str = "cache:",
        grace_ms: int = 0,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``get_or_set`` keyed by the function and its arguments (or ``key(*args,
        **kwargs)``); ``tags`` may be a function of the arguments too."""

        def decorate(fn: Callable[..., T]) -> Callable[..., T]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> T:
                name = key(*args, **kwargs) if key else ops.cache_key(prefix, fn, args, kwargs)
                listed = tags(*args, **kwargs) if callable(tags) else tags
                return self.get_or_set(
                    name, lambda: fn(*args, **kwargs), ttl_ms, grace_ms=grace_ms, tags=listed
                )

            return wrapper

        return decorate

    def on_invalidate(self, callback: Callable[[str], None]) -> PubSubWorkerThread:
        """Calls ``callback(tag)`` from a thread for every tag invalidated (the
        ``patterns:invalidate`` channel), e.g. to drop entries of a local cache. Returns the
        thread: ``.stop()`` it when done."""
        pubsub = self._driver.client.pubsub()

        def handle(message: Dict[str, Any]) -> None:
            callback(ops.text(message["data"]))

        pubsub.subscribe(**{ops.CHANNEL: handle})
        thread: PubSubWorkerThread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
        return thread


class Sessions:
    """``SESSION.*``: sessions with idle and absolute timeouts, listed per index."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver

    def create(
        self,
        index: Key,
        idle_ms: int,
        absolute_ms: int,
        data: Mapping[str, Any],
        max_sessions: Optional[int] = None,
    ) -> str:
        """Creates a session in ``index`` and returns its key (128-bit id from a CSPRNG).
        ``max_sessions`` caps the index's live sessions: the ones soonest to expire are
        destroyed in the same command to make room."""
        op = ops.session_create(self._driver, index, idle_ms, absolute_ms, data, max_sessions)
        return self._driver.run(op)

    def get(self, session: Key) -> Optional[Dict[str, str]]:
        """The session's fields (sliding its idle timeout), None when gone."""
        return self._driver.run(ops.session_get(self._driver, session))

    def set(self, session: Key, mapping: Mapping[str, Any]) -> bool:
        """Sets fields; False when the session is gone."""
        return self._driver.run(ops.session_set(self._driver, session, mapping))

    def rotate(self, session: Key) -> Optional[str]:
        """Moves the session to a new id (at login); its new key, None when gone."""
        return self._driver.run(ops.session_rotate(self._driver, session))

    def destroy(self, session: Key) -> bool:
        return self._driver.run(ops.session_destroy(self._driver, session))

    def destroy_all(self, index: Key) -> int:
        return self._driver.run(ops.session_destroy_all(self._driver, index))

    def list(self, index: Key) -> List[str]:
        """The index's live session keys, soonest to expire first."""
        return self._driver.run(ops.session_list(self._driver, index))

    def count(self, index: Key) -> int:
        return self._driver.run(ops.session_count(self._driver, index))


class Queue:
    """``QUEUE.*`` on one queue: jobs with leases, retries, dead letters, delays and dedupe (see
    the main README's Queues section). Payloads are text (bytes are sent as they are; replies
    are decoded as UTF-8): serialize structured jobs yourself, e.g. with ``json.dumps``."""

    def __init__(self, driver: _Driver, key: Key) -> None:
        self._driver = driver
        self.key = key

    def push(
        self,
        payload: Union[str, bytes],
        delay_ms: Optional[int] = None,
        dedupe: Optional[str] = None,
        dedupe_ttl_ms: int = ops.DEFAULT_DEDUPE_TTL_MS,
    ) -> str:
        """Adds a job (deliverable after ``delay_ms``) and returns its id. With ``dedupe``, a
        push whose dedupe id was pushed within ``dedupe_ttl_ms`` (default 1 h) adds nothing
        and returns the first job's id."""
        op = ops.queue_push(self._driver, self.key, payload, delay_ms, dedupe, dedupe_ttl_ms)
        return self._driver.run(op)

    def pop(
        self,
        group: str,
        consumer: str,
        count: int = 1,
        block_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
        max_deliveries: Optional[int] = None,
    ) -> List[Job]:
        """Up to ``count`` jobs for ``consumer``, each leased for ``lease_ms`` (server default
        30 s); [] when there is none. ``block_ms`` waits that long for one (0: without limit):
        on the server (FIFO per group) with the module, on a connection of its own; polled
        with jittered backoff (5 ms to 200 ms) on the twin. A job past ``max_deliveries``
        (default 10) goes to the dead letters instead."""
        op = ops.queue_pop(
            self._driver, self.key, group, consumer, count, block_ms, lease_ms, max_deliveries
        )
        return self._driver.run(op)

    def ack(self, group: str, *job_ids: str) -> int:
        """Completes jobs; returns how many were pending."""
        return self._driver.run(ops.queue_ack(self._driver, self.key, group, job_ids))

    def nack(self, group: str, job_id: str, delay_ms: Optional[int] = None) -> bool:
        """Gives a job back, to be delivered again after ``delay_ms``; False when it was not
        pending."""
        return self._driver.run(ops.queue_nack(self._driver, self.key, group, job_id, delay_ms))

    def extend(self, group: str, consumer: str, job_id: str, lease_ms: int) -> bool:
        """Ends ``consumer``'s lease of the job ``lease_ms`` from now; False when it no longer
        holds it."""
        op = ops.queue_extend(self._driver, self.key, group, consumer, job_id, lease_ms)
        return self._driver.run(op)

    def redrive(self, group: str, count: Optional[int] = None) -> int:
        """Moves up to ``count`` (server default 100) of the group's dead letters back as new
        jobs; returns how many."""
        return self._driver.run(ops.queue_redrive(self._driver, self.key, group, count))

    def stats(self, group: str) -> QueueStats:
        return self._driver.run(ops.queue_stats(self._driver, self.key, group))

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
        """A ``Worker`` running ``handler(job)`` for the group's jobs; see ``Worker``."""
        options = ops.WorkerOptions(lease_ms, max_deliveries, poll_ms, retry_ms, max_retry_ms)
        return Worker(self, group, consumer, handler, concurrency, options)


class Worker:
    """Runs ``handler(job)`` on ``concurrency`` threads, each popping one job at a time as
    ``consumer``. A thread renews the leases of the jobs being handled every third of
    ``lease_ms``. A handler that returns acks its job; one that raises nacks it, to be retried
    after ``retry_ms`` doubled per earlier delivery (at most ``max_retry_ms``, jittered), until
    it dead-letters after ``max_deliveries``. Use ``with queue.worker(...):`` or ``start()`` and
    ``stop()``: stopping lets the jobs in hand finish (and be acked or nacked), and takes at
    most ``poll_ms`` more (a blocked pop's timeout). A pop, ack or nack that fails (the server
    unreachable) is logged and retried after ``poll_ms``; a lease lost while its handler runs
    (the job may then be handled twice) is logged too. ``processed`` and ``failed`` count the
    jobs handled."""

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
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._loops: List[threading.Thread] = []
        self._extender: Optional[threading.Thread] = None

    def start(self) -> Worker:
        if self._loops:
            raise RuntimeError("the worker is already running")
        self._stopping.clear()
        self._idle.clear()
        self._loops = [
            threading.Thread(target=self._loop, daemon=True) for _ in range(self.concurrency)
        ]
        self._extender = threading.Thread(target=self._extend_loop, daemon=True)
        for thread in (*self._loops, self._extender):
            thread.start()
        return self

    def stop(self) -> None:
        """Stops popping, waits for the jobs in hand, then stops renewing leases."""
        self._stopping.set()
        for thread in self._loops:
            thread.join()
        self._idle.set()
        if self._extender is not None:
            self._extender.join()
        self._loops, self._extender = [], None

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        o = self.options
        while not self._stopping.is_set():
            try:
                for job in self.queue.pop(
                    self.group, self.consumer, 1, o.poll_ms, o.lease_ms, o.max_deliveries
                ):
                    self._handle(job)
            except Exception:
                log.exception("queue worker %s/%s", ops.text(self.queue.key), self.consumer)
                self._stopping.wait(o.poll_ms / 1000)

    def _handle(self, job: Job) -> None:
        with self._guard:
            self._held[job.id] = job
        try:
            self.handler(job)
            done = True
        except Exception:
            log.warning("job %s failed (delivery %d)", job.id, job.deliveries, exc_info=True)
            done = False
        finally:
            with self._guard:
                self._held.pop(job.id, None)
        if done:
            self.queue.ack(self.group, job.id)
        else:
            self.queue.nack(self.group, job.id, self.options.retry_delay_ms(job.deliveries))
        with self._guard:
            self.processed += done
            self.failed += not done

    def _extend_loop(self) -> None:
        while not self._idle.wait(self.options.extend_every_s):
            with self._guard:
                held = list(self._held)
            for job_id in held:
                try:
                    kept = self.queue.extend(
                        self.group, self.consumer, job_id, self.options.lease_ms
                    )
                except Exception:
                    log.exception("renewing the lease of job %s", job_id)
                    continue
                with self._guard:
                    lost = not kept and job_id in self._held
                if lost:  # still handled here, but no longer ours: it may run twice
                    log.warning("job %s: its lease was lost while it was handled", job_id)
