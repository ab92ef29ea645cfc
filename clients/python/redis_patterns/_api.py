"""The public classes, written once for the sync and the asyncio API.

A method of these classes is an ``@operation``: a generator of ``_ops`` steps, which the
instance's driver runs. On the sync API (``redis_patterns``) calling it returns the result; on
the asyncio API (``redis_patterns.asyncio``) it returns a coroutine of the result. Each API
subclasses these classes with its driver and adds only what differs in kind: ``with`` or
``async with``, and the callbacks that are plain functions or coroutines. Background work (lock
renewal, queue workers) is an operation too, run on a thread or a task by ``Driver.spawn``."""

from __future__ import annotations

import functools
import logging
import sys
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    ClassVar,
    Coroutine,
    Dict,
    Generic,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Type,
    TypeVar,
    Union,
    overload,
)

from . import _ops as ops
from . import _types as types
from ._errors import LockNotAcquired, LockNotOwned

if sys.version_info >= (3, 10):
    from typing import ParamSpec

    P = ParamSpec("P")
else:  # Python 3.9 has no ParamSpec; only type checkers (Python >= 3.10) read it
    P = TypeVar("P")
if TYPE_CHECKING:
    from typing import Concatenate

T = TypeVar("T")
Key = ops.Key
log = logging.getLogger("redis_patterns")

# The classes each API defines, under these names (its ``__all__``).
CLASSES = (
    "Cache",
    "Leaderboard",
    "Lock",
    "Patterns",
    "Queue",
    "RWLock",
    "Semaphore",
    "Sessions",
    "Worker",
)


# --- Drivers -------------------------------------------------------------------------------


class Driver(ops.Context, ABC):
    """What the classes need of a driver, beyond running operations."""

    cluster_type: ClassVar[type]  # the client's Cluster class
    lock_type: ClassVar[Any]  # the lock that serializes resolving the backend

    def __init__(self, client: Any, backend: str) -> None:
        if backend not in ops.BACKENDS:
            raise ValueError(f"backend must be one of {ops.BACKENDS}, not {backend!r}")
        self.client = client
        self.cluster = isinstance(client, self.cluster_type)
        self.requested = backend
        self.resolved: Optional[str] = None
        self.resolving = self.lock_type()

    @property
    def twin(self) -> bool:  # type: ignore[override]
        """Read by operations, which run once the backend is resolved."""
        return self.resolved == "twin"

    @abstractmethod
    def run(self, op: ops.Op[T]) -> Any:
        """Runs an operation, once the backend is resolved: its result (sync) or a coroutine."""

    @abstractmethod
    def current_backend(self) -> str:
        """``Patterns.backend``."""

    @abstractmethod
    def spawn(self, op: ops.Op[None]) -> ops.Background:
        """Starts running ``op`` in the background (a thread or a task); its ``Sleep`` steps
        return True, at once, when it is told to stop (``ops.Stop``)."""

    @abstractmethod
    def guard(self) -> AbstractContextManager[Any]:
        """A mutex for state the background work shares (a no-op for asyncio's tasks)."""


class SyncDriver(Driver):
    @abstractmethod
    def run(self, op: ops.Op[T]) -> T: ...

    @abstractmethod
    def drive(self, op: ops.Op[T]) -> T: ...


class AsyncDriver(Driver):
    @abstractmethod
    async def run(self, op: ops.Op[T]) -> T: ...

    @abstractmethod
    async def drive(self, op: ops.Op[T]) -> T: ...


D = TypeVar("D", bound=Driver, covariant=True)


class Facade(Generic[D]):
    """An object whose operations its driver runs."""

    def __init__(self, driver: D) -> None:
        self._driver = driver


class operation(Generic[P, T]):
    """Makes an operation (a method yielding steps) a method of the API: the sync driver returns
    its result, the asyncio driver a coroutine of it. ``backend=False``: it runs before the
    backend is resolved (loading the twin)."""

    def __init__(self, method: Callable[Concatenate[Any, P], ops.Op[T]]) -> None:
        self.method = method
        self.resolve = True
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: Any) -> operation[P, T]: ...

    @overload
    def __get__(self, obj: Facade[SyncDriver], owner: Any) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, obj: Facade[AsyncDriver], owner: Any
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, obj: Optional[Facade[Any]], owner: Any) -> Any:
        if obj is None:
            return self
        method = self.method
        run = obj._driver.run if self.resolve else obj._driver.drive

        @functools.wraps(method)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return run(method(obj, *args, **kwargs))

        bound.__wrapped__ = method.__get__(obj, owner)
        return bound


def setup(method: Callable[Concatenate[Any, P], ops.Op[T]]) -> operation[P, T]:
    """An ``operation`` that runs before the backend is resolved."""
    op = operation(method)
    op.resolve = False
    return op


class SyncDecorator(Protocol):
    def __call__(self, fn: Callable[..., T], /) -> Callable[..., T]: ...


class AsyncDecorator(Protocol):
    def __call__(self, fn: Callable[..., Awaitable[T]], /) -> Callable[..., Awaitable[T]]: ...


class decorator(Generic[P]):
    """A method returning a decorator whose functions the driver runs: typed for plain
    functions on the sync API, coroutine functions on the asyncio one."""

    def __init__(self, method: Callable[Concatenate[Any, P], Callable[..., Any]]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: Any) -> decorator[P]: ...

    @overload
    def __get__(self, obj: Facade[SyncDriver], owner: Any) -> Callable[P, SyncDecorator]: ...

    @overload
    def __get__(self, obj: Facade[AsyncDriver], owner: Any) -> Callable[P, AsyncDecorator]: ...

    def __get__(self, obj: Optional[Facade[Any]], owner: Any) -> Any:
        return self if obj is None else self.method.__get__(obj, owner)


# --- Locks and semaphores ------------------------------------------------------------------

H = TypeVar("H", bound="Held[Any]")


class Held(Facade[D]):
    """What a lock and a semaphore share: ``acquire`` (with the holder's default wait),
    ``release``, and entering only when granted."""

    key: Key
    owner: str
    wait_ms: Optional[int]

    def _take(self, wait_ms: Optional[int]) -> ops.Op[bool]:
        raise NotImplementedError

    def _give_back(self) -> ops.Op[None]:
        raise NotImplementedError

    def _refusal(self) -> str:
        raise NotImplementedError

    @operation
    def acquire(self, wait_ms: Optional[int] = None) -> ops.Op[bool]:
        """Takes the lock (again: one more hold) or a permit; ``wait_ms`` overrides the
        holder's. Returns whether it was granted."""
        return (yield from self._take(self.wait_ms if wait_ms is None else wait_ms))

    @operation
    def release(self) -> ops.Op[None]:
        """Gives the hold back; raises ``LockNotOwned`` when this owner held nothing (it had
        expired)."""
        yield from self._give_back()

    def _entered(self: H, granted: bool) -> H:
        if not granted:
            raise LockNotAcquired(self._refusal())
        return self


class Lock(Held[D]):
    """A lock with fencing tokens, redis-py ``Lock``-like: ``with`` (asyncio: ``async with``)
    acquires (raising ``LockNotAcquired``) and releases; ``acquire()`` returns whether it was
    granted.

    ``wait_ms``: None tries once; a number waits that long (0: without limit). On the module
    the wait blocks on the server, FIFO, on a connection of its own. On the twin, which cannot
    block, it is polled with jittered backoff (5 ms to 200 ms): not FIFO.

    ``auto_extend`` renews the lease every third of ``ttl_ms`` in the background (a daemon
    thread, or a task) while held; if a renewal fails it stops and ``lost`` becomes True.
    ``token`` is the fencing token: present it with every write to the protected resource
    (``Patterns.fenced_hset``). The same owner acquiring again gets one more hold (same
    token)."""

    _family = "LOCK"  # the commands' prefix

    def __init__(
        self,
        driver: D,
        key: Key,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
        auto_extend: bool,
    ) -> None:
        super().__init__(driver)
        self.key = key
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.owner = owner or ops.new_owner()
        self.auto_extend = auto_extend
        self.token: Optional[int] = None
        self.lost = False
        self._holds = 0
        self._extender: Optional[ops.Background] = None

    def _take(self, wait_ms: Optional[int]) -> ops.Op[bool]:
        token = yield from self._acquire_op(wait_ms)
        if token is None:
            return False
        self.lost = False
        self._granted(token)
        if self.auto_extend and self._extender is None:
            self._extender = self._driver.spawn(self._renewals())
        return True

    def _granted(self, token: int) -> None:
        """Acquiring again is one more hold, with the same token."""
        self.token = token
        self._holds += 1

    def _give_back(self) -> ops.Op[None]:
        self._holds = max(self._holds - 1, 0)
        if self._holds == 0 and self._extender is not None:
            extender, self._extender = self._extender, None
            yield ops.Stop((extender,))
        if not (yield from self._release_op()):
            raise LockNotOwned(self._not_owned())

    @operation
    def extend(self, ttl_ms: Optional[int] = None) -> ops.Op[None]:
        """Sets the lease to end ``ttl_ms`` (default: the lock's) from now; raises
        ``LockNotOwned`` when the lock is no longer held."""
        if not (yield from self._extend_op(ttl_ms or self.ttl_ms)):
            raise LockNotOwned(self._not_owned())

    def _renewals(self) -> ops.Op[None]:
        """Renews the lease every third of ``ttl_ms`` until stopped; a failed renewal marks
        the lock ``lost`` and ends it (the next ``acquire`` starts another)."""
        while not (yield ops.Sleep(self.ttl_ms / 3000)):
            try:
                if not (yield from self._extend_op(self.ttl_ms)):
                    raise LockNotOwned(self._not_owned())
            except Exception:
                self.lost = True
                self._extender = None
                return

    def _not_owned(self) -> str:
        return f"lock {ops.text(self.key)!r} is not held by {self.owner!r}"

    def _refusal(self) -> str:
        return f"lock {ops.text(self.key)!r} was not granted"

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.lock_acquire(self._driver, self.key, self.owner, self.ttl_ms, wait)

    def _release_op(self) -> ops.Op[bool]:
        return ops.lock_release(self._driver, self.key, self.owner, self._family)

    def _extend_op(self, ttl_ms: int) -> ops.Op[bool]:
        return ops.lock_extend(self._driver, self.key, self.owner, ttl_ms, self._family)


class RWLock(Lock[D]):
    """A read/write lock (``RWLOCK.*``) held in one ``mode``: "read" holds coexist, a "write"
    hold excludes readers and other writers and has a fencing ``token`` (None for a read hold).
    Otherwise as ``Lock``: ``with`` (asyncio: ``async with``) acquires and releases,
    ``wait_ms`` waits on the server (FIFO for both modes, the module) or is polled with backoff
    (the twin), ``auto_extend`` renews the lease while held. ``acquire`` again: a writer takes
    one more hold, a reader refreshes its one."""

    _family = "RWLOCK"

    def __init__(
        self,
        driver: D,
        key: Key,
        mode: str,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
        auto_extend: bool,
    ) -> None:
        self.mode = ops.rwlock_mode(mode).lower()
        super().__init__(driver, key, ttl_ms, wait_ms, owner, auto_extend)

    def _granted(self, token: int) -> None:
        if self.mode == "read":  # again: a refresh, not one more hold
            self.token, self._holds = None, 1
        else:
            super()._granted(token)

    def _refusal(self) -> str:
        return f"{self.mode} {super()._refusal()}"

    def _acquire_op(self, wait: Optional[int]) -> ops.Op[Optional[int]]:
        return ops.rwlock_acquire(self._driver, self.key, self.owner, self.ttl_ms, self.mode, wait)


class Semaphore(Held[D]):
    """A counting semaphore: ``with`` (asyncio: ``async with``) takes one of ``limit`` permits
    (raising ``LockNotAcquired``) for ``ttl_ms`` and returns it. Waits as ``Lock``'s."""

    def __init__(
        self,
        driver: D,
        key: Key,
        limit: int,
        ttl_ms: int,
        wait_ms: Optional[int],
        owner: Optional[str],
    ) -> None:
        super().__init__(driver)
        self.key = key
        self.limit = limit
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.owner = owner or ops.new_owner()

    def _take(self, wait_ms: Optional[int]) -> ops.Op[bool]:
        op = ops.sem_acquire(self._driver, self.key, self.owner, self.limit, self.ttl_ms, wait_ms)
        return (yield from op)

    def _give_back(self) -> ops.Op[None]:
        if not (yield from ops.sem_release(self._driver, self.key, self.owner)):
            raise LockNotOwned(f"no permit of {ops.text(self.key)!r} held by {self.owner!r}")

    def _refusal(self) -> str:
        return f"no permit of {ops.text(self.key)!r} was granted"

    @operation
    def count(self) -> ops.Op[int]:
        """The permits in use."""
        return (yield from ops.sem_count(self._driver, self.key))


# --- Leaderboards, cache, sessions ---------------------------------------------------------


class Leaderboard(Facade[D]):
    """``LB.*`` on one board. ``ranking``: ordinal, dense, competition or modified; ``order``:
    desc (highest first) or asc. Entries are ``Entry(rank, member, score)``."""

    def __init__(self, driver: D, key: Key) -> None:
        super().__init__(driver)
        self.key = key

    @operation
    def add(self, scores: Mapping[str, float]) -> ops.Op[int]:
        """Sets scores; among equal scores the earlier achiever ranks first. Returns how many
        members are new."""
        return (yield from ops.lb_add(self._driver, self.key, scores))

    @operation
    def incr(self, member: str, amount: float) -> ops.Op[float]:
        """Adds to a member's score; returns the new score."""
        return (yield from ops.lb_incr(self._driver, self.key, member, amount))

    @operation
    def add_with_rank(
        self, scores: Mapping[str, float], ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[List[types.Ranked]]:
        """``add`` that also returns each member's ``Ranked(rank, member, score, total)``
        after the write, in the order given (``WITHRANK``)."""
        return (yield from ops.lb_add_ranked(self._driver, self.key, scores, ranking, order))

    @operation
    def incr_with_rank(
        self, member: str, amount: float, ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[types.Ranked]:
        """``incr`` that returns the member's ``Ranked(rank, member, score, total)``."""
        op = ops.lb_incr_ranked(self._driver, self.key, member, amount, ranking, order)
        return (yield from op)

    @operation
    def remove(self, *members: str) -> ops.Op[int]:
        return (yield from ops.lb_remove(self._driver, self.key, members))

    @operation
    def rank(
        self, member: str, ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[Optional[types.Entry]]:
        return (yield from ops.lb_rank(self._driver, self.key, member, ranking, order))

    @operation
    def around(
        self, member: str, n: int, ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[Optional[List[types.Entry]]]:
        """The ``n`` entries around member (None when it is absent)."""
        return (yield from ops.lb_around(self._driver, self.key, member, n, ranking, order))

    @operation
    def top(
        self, n: int = 10, offset: int = 0, ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[List[types.Entry]]:
        return (yield from ops.lb_top(self._driver, self.key, n, offset, ranking, order))

    @operation
    def page(
        self, page: int, size: int, ranking: str = "ordinal", order: str = "desc"
    ) -> ops.Op[types.Page]:
        """Page ``page`` (1-based) of ``size`` entries, and the number of pages."""
        return (yield from ops.lb_page(self._driver, self.key, page, size, ranking, order))

    @operation
    def percentile(self, member: str, order: str = "desc") -> ops.Op[Optional[float]]:
        """The share of members with a strictly worse score, in percent."""
        return (yield from ops.lb_percentile(self._driver, self.key, member, order))


class Cache(Facade[D]):
    """``CACHE.*``: tagged entries with stampede protection; values go through the serializer
    (JSON unless ``Patterns(serializer=...)``)."""

    def __init__(self, driver: D, serializer: types.Serializer) -> None:
        super().__init__(driver)
        self.serializer = serializer

    def _get_or_set(
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
    ) -> ops.Op[T]:
        """Read-through: the cached value, or ``compute()`` stored for ``ttl_ms``.

        HIT and STALE (within ``grace_ms``, while another caller recomputes) return the cached
        value; MISS and REFRESH (XFetch chose this caller early, or the value is stale) call
        ``compute`` (asyncio: awaited when it returns an awaitable), fill with the lease and
        return its result; WAIT (another caller computes) sleeps the hinted time and asks
        again, for at most ``max_wait_ms`` (default: the lease, 10 s), then computes without
        storing. ``delta_ms`` defaults to the measured compute time. Exceptions from
        ``compute`` propagate (its lease then lapses after ``lease_ms``)."""
        fill = ops.Fill(ttl_ms, delta_ms, grace_ms, tags)
        op = ops.get_or_set(
            self._driver, key, compute, fill, beta, lease_ms, max_wait_ms, self.serializer
        )
        return (yield from op)

    @decorator
    def cached(
        self,
        ttl_ms: int,
        tags: Union[Sequence[Key], Callable[..., Sequence[Key]]] = (),
        key: Optional[Callable[..., Key]] = None,
        prefix: str = "cache:",
        grace_ms: int = 0,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``get_or_set`` keyed by the function and its arguments (or ``key(*args,
        **kwargs)``); ``tags`` may be a function of the arguments too. asyncio: for coroutine
        functions."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                name = key(*args, **kwargs) if key else ops.cache_key(prefix, fn, args, kwargs)
                listed = tags(*args, **kwargs) if callable(tags) else tags
                compute = functools.partial(fn, *args, **kwargs)
                op = self._get_or_set(name, compute, ttl_ms, grace_ms=grace_ms, tags=listed)
                return self._driver.run(op)

            return wrapper

        return decorate

    @operation
    def set(
        self,
        key: Key,
        value: Any,
        ttl_ms: int,
        delta_ms: int = 0,
        grace_ms: int = 0,
        tags: Sequence[Key] = (),
    ) -> ops.Op[None]:
        """Caches ``value`` for ``ttl_ms`` (then stale for ``grace_ms``) under ``tags``."""
        data = self.serializer.dumps(value)
        yield from ops.cache_set(self._driver, key, data, ttl_ms, delta_ms, grace_ms, tags)

    @operation
    def get(self, key: Key, default: Any = None) -> ops.Op[Any]:
        """The cached value (fresh or stale within its grace), else ``default``."""
        data = yield from ops.cache_peek(self._driver, key)
        return default if data is None else self.serializer.loads(data)

    @operation
    def tag(self, key: Key, *tags: Key) -> ops.Op[int]:
        """Lists a cached key under more tags; returns how many were new."""
        return (yield from ops.cache_tag(self._driver, key, tags))

    @operation
    def invalidate(self, *tags: Key) -> ops.Op[int]:
        """Deletes every key listed under the tags; returns how many."""
        return (yield from ops.cache_invalidate(self._driver, tags))


class Sessions(Facade[D]):
    """``SESSION.*``: sessions with idle and absolute timeouts, listed per index."""

    @operation
    def create(
        self,
        index: Key,
        idle_ms: int,
        absolute_ms: int,
        data: Mapping[str, Any],
        max_sessions: Optional[int] = None,
    ) -> ops.Op[str]:
        """Creates a session in ``index`` and returns its key (128-bit id from a CSPRNG).
        ``max_sessions`` caps the index's live sessions: the ones soonest to expire are
        destroyed in the same command to make room."""
        op = ops.session_create(self._driver, index, idle_ms, absolute_ms, data, max_sessions)
        return (yield from op)

    @operation
    def get(self, session: Key) -> ops.Op[Optional[Dict[str, str]]]:
        """The session's fields (sliding its idle timeout), None when gone."""
        return (yield from ops.session_get(self._driver, session))

    @operation
    def set(self, session: Key, mapping: Mapping[str, Any]) -> ops.Op[bool]:
        """Sets fields; False when the session is gone."""
        return (yield from ops.session_set(self._driver, session, mapping))

    @operation
    def rotate(self, session: Key) -> ops.Op[Optional[str]]:
        """Moves the session to a new id (at login); its new key, None when gone."""
        return (yield from ops.session_rotate(self._driver, session))

    @operation
    def destroy(self, session: Key) -> ops.Op[bool]:
        return (yield from ops.session_destroy(self._driver, session))

    @operation
    def destroy_all(self, index: Key) -> ops.Op[int]:
        return (yield from ops.session_destroy_all(self._driver, index))

    @operation
    def list(self, index: Key) -> ops.Op[List[str]]:
        """The index's live session keys, soonest to expire first."""
        return (yield from ops.session_list(self._driver, index))

    @operation
    def count(self, index: Key) -> ops.Op[int]:
        return (yield from ops.session_count(self._driver, index))


# --- Queues --------------------------------------------------------------------------------

W = TypeVar("W", bound="Worker[Any]")


class Queue(Facade[D], Generic[D, W]):
    """``QUEUE.*`` on one queue: jobs with leases, retries, dead letters, delays and dedupe (see
    the main README's Queues section). Payloads are text (bytes are sent as they are; replies
    are decoded as UTF-8): serialize structured jobs yourself, e.g. with ``json.dumps``."""

    _worker_class: Type[W]

    def __init__(self, driver: D, key: Key) -> None:
        super().__init__(driver)
        self.key = key

    @operation
    def push(
        self,
        payload: Union[str, bytes],
        delay_ms: Optional[int] = None,
        dedupe: Optional[str] = None,
        dedupe_ttl_ms: int = ops.DEFAULT_DEDUPE_TTL_MS,
    ) -> ops.Op[str]:
        """Adds a job (deliverable after ``delay_ms``) and returns its id. With ``dedupe``, a
        push whose dedupe id was pushed within ``dedupe_ttl_ms`` (default 1 h) adds nothing
        and returns the first job's id."""
        op = ops.queue_push(self._driver, self.key, payload, delay_ms, dedupe, dedupe_ttl_ms)
        return (yield from op)

    @operation
    def pop(
        self,
        group: str,
        consumer: str,
        count: int = 1,
        block_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
        max_deliveries: Optional[int] = None,
    ) -> ops.Op[List[types.Job]]:
        """Up to ``count`` jobs for ``consumer``, each leased for ``lease_ms`` (server default
        30 s); [] when there is none. ``block_ms`` waits that long for one (0: without limit):
        on the server (FIFO per group) with the module, on a connection of its own (asyncio on
        a Cluster: within the client's ``socket_timeout``); polled with jittered backoff (5 ms
        to 200 ms) on the twin. A job past ``max_deliveries`` (default 10) goes to the dead
        letters instead."""
        op = ops.queue_pop(
            self._driver, self.key, group, consumer, count, block_ms, lease_ms, max_deliveries
        )
        return (yield from op)

    @operation
    def ack(self, group: str, *job_ids: str) -> ops.Op[int]:
        """Completes jobs; returns how many were pending."""
        return (yield from ops.queue_ack(self._driver, self.key, group, job_ids))

    @operation
    def nack(self, group: str, job_id: str, delay_ms: Optional[int] = None) -> ops.Op[bool]:
        """Gives a job back, to be delivered again after ``delay_ms``; False when it was not
        pending."""
        return (yield from ops.queue_nack(self._driver, self.key, group, job_id, delay_ms))

    @operation
    def extend(self, group: str, consumer: str, job_id: str, lease_ms: int) -> ops.Op[bool]:
        """Ends ``consumer``'s lease of the job ``lease_ms`` from now; False when it no longer
        holds it."""
        op = ops.queue_extend(self._driver, self.key, group, consumer, job_id, lease_ms)
        return (yield from op)

    @operation
    def redrive(self, group: str, count: Optional[int] = None) -> ops.Op[int]:
        """Moves up to ``count`` (server default 100) of the group's dead letters back as new
        jobs; returns how many."""
        return (yield from ops.queue_redrive(self._driver, self.key, group, count))

    @operation
    def stats(self, group: str) -> ops.Op[types.QueueStats]:
        return (yield from ops.queue_stats(self._driver, self.key, group))

    def worker(
        self,
        group: str,
        consumer: str,
        handler: Callable[[types.Job], Any],
        concurrency: int = 1,
        lease_ms: int = 30000,
        max_deliveries: Optional[int] = None,
        poll_ms: int = 1000,
        retry_ms: int = 1000,
        max_retry_ms: int = 60000,
    ) -> W:
        """A ``Worker`` running ``handler(job)`` for the group's jobs (asyncio: a coroutine
        function, or a plain one); see ``Worker``."""
        options = ops.WorkerOptions(lease_ms, max_deliveries, poll_ms, retry_ms, max_retry_ms)
        return self._worker_class(self, group, consumer, handler, concurrency, options)


WK = TypeVar("WK", bound="Worker[Any]")


class Worker(Facade[D]):
    """Runs ``handler(job)`` on ``concurrency`` threads (asyncio: tasks, awaiting it when it
    returns an awaitable), each popping one job at a time as ``consumer``. One more renews the
    leases of the jobs being handled every third of ``lease_ms``. A handler that returns acks
    its job; one that raises nacks it, to be retried after ``retry_ms`` doubled per earlier
    delivery (at most ``max_retry_ms``, jittered), until it dead-letters after
    ``max_deliveries``. Use ``with queue.worker(...):`` (asyncio: ``async with``) or ``start()``
    and ``stop()``: stopping lets the jobs in hand finish (and be acked or nacked), and takes
    at most ``poll_ms`` more (a blocked pop's timeout). A pop, ack or nack that fails (the
    server unreachable) is logged and retried after ``poll_ms``; a lease lost while its handler
    runs (the job may then be handled twice) is logged too. ``processed`` and ``failed`` count
    the jobs handled."""

    def __init__(
        self,
        queue: Queue[D, Any],
        group: str,
        consumer: str,
        handler: Callable[[types.Job], Any],
        concurrency: int,
        options: ops.WorkerOptions,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        super().__init__(queue._driver)
        self.queue = queue
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.concurrency = concurrency
        self.options = options
        self.processed = 0
        self.failed = 0
        self._held: Dict[str, types.Job] = {}
        self._guard = self._driver.guard()
        self._stopping = False
        self._loops: List[ops.Background] = []
        self._extender: Optional[ops.Background] = None

    def start(self: WK) -> WK:
        if self._loops:
            raise RuntimeError("the worker is already running")
        self._stopping = False
        self._loops = [self._driver.spawn(self._loop()) for _ in range(self.concurrency)]
        self._extender = self._driver.spawn(self._renewals())
        return self

    @operation
    def stop(self) -> ops.Op[None]:
        """Stops popping, waits for the jobs in hand, then stops renewing leases."""
        self._stopping = True
        loops, self._loops = self._loops, []
        yield ops.Stop(tuple(loops))
        extender, self._extender = self._extender, None
        if extender is not None:
            yield ops.Stop((extender,))

    def _loop(self) -> ops.Op[None]:
        o, key = self.options, self.queue.key
        while not self._stopping:
            try:
                args = (self.group, self.consumer, 1, o.poll_ms, o.lease_ms, o.max_deliveries)
                jobs = yield from ops.queue_pop(self._driver, key, *args)
                for job in jobs:
                    yield from self._handle(job)
            except Exception:
                log.exception("queue worker %s/%s", ops.text(key), self.consumer)
                if (yield ops.Sleep(o.poll_ms / 1000)):
                    return

    def _handle(self, job: types.Job) -> ops.Op[None]:
        with self._guard:
            self._held[job.id] = job
        try:
            yield ops.Compute(functools.partial(self.handler, job))
            done = True
        except Exception:
            log.warning("job %s failed (delivery %d)", job.id, job.deliveries, exc_info=True)
            done = False
        finally:
            with self._guard:
                self._held.pop(job.id, None)
        key = self.queue.key
        if done:
            yield from ops.queue_ack(self._driver, key, self.group, (job.id,))
        else:
            delay = self.options.retry_delay_ms(job.deliveries)
            yield from ops.queue_nack(self._driver, key, self.group, job.id, delay)
        with self._guard:
            self.processed += done
            self.failed += not done

    def _renewals(self) -> ops.Op[None]:
        lease_ms, key = self.options.lease_ms, self.queue.key
        while not (yield ops.Sleep(self.options.extend_every_s)):
            with self._guard:
                held = list(self._held)
            for job_id in held:
                try:
                    op = ops.queue_extend(
                        self._driver, key, self.group, self.consumer, job_id, lease_ms
                    )
                    kept = yield from op
                except Exception:
                    log.exception("renewing the lease of job %s", job_id)
                    continue
                with self._guard:
                    lost = not kept and job_id in self._held
                if lost:  # still handled here, but no longer ours: it may run twice
                    log.warning("job %s: its lease was lost while it was handled", job_id)


# --- The entry point -----------------------------------------------------------------------

L = TypeVar("L", bound="Lock[Any]")
RW = TypeVar("RW", bound="RWLock[Any]")
S = TypeVar("S", bound="Semaphore[Any]")
LB = TypeVar("LB", bound="Leaderboard[Any]")
Q = TypeVar("Q", bound="Queue[Any, Any]")
C = TypeVar("C", bound="Cache[Any]")
SS = TypeVar("SS", bound="Sessions[Any]")
CL = TypeVar("CL")  # the client


@dataclass(frozen=True)
class Classes(Generic[L, RW, S, LB, Q, C, SS]):
    """An API's classes, for ``Patterns`` to make."""

    lock: Type[L]
    rwlock: Type[RW]
    semaphore: Type[S]
    leaderboard: Type[LB]
    queue: Type[Q]
    cache: Type[C]
    sessions: Type[SS]


class Patterns(Facade[D], Generic[D, CL, L, RW, S, LB, Q, C, SS]):
    """redis-patterns over a redis-py client (``redis_patterns``: ``Redis`` or
    ``RedisCluster``; ``redis_patterns.asyncio``: their ``redis.asyncio`` versions).

    ``backend``: ``"module"`` (the module's commands; ``BackendError`` where a primary lacks
    it), ``"twin"`` (the bundled Lua Functions library, loaded on every primary when missing or
    different), or ``"auto"`` (the module when every primary has it, else the twin), resolved
    on first use. Every method behaves the same on both, but for waits: the twin cannot block,
    so a wait is polled with backoff (neither FIFO nor prompt).
    """

    _driver_class: Type[D]
    _classes: Classes[L, RW, S, LB, Q, C, SS]

    def __init__(
        self, client: CL, backend: str = "auto", serializer: Optional[types.Serializer] = None
    ) -> None:
        super().__init__(self._driver_class(client, backend))
        self.cache = self._classes.cache(self._driver, serializer or ops.DEFAULT_SERIALIZER)
        self.sessions = self._classes.sessions(self._driver)

    @property
    def backend(self) -> str:
        """``"module"`` or ``"twin"``. The sync API resolves it (and loads the twin when
        needed) on first access; the asyncio one on the first call (or ``await
        p.detect_backend()``), and until then it is the backend asked for."""
        return self._driver.current_backend()

    @setup
    def load_twin(self) -> ops.Op[None]:
        """(Re)loads the bundled twin on every primary whose copy is missing or differs."""
        yield from ops.load_twin()

    # Rate limiting

    @operation
    def token_bucket(
        self, key: Key, capacity: int, rate: int, period_ms: int, cost: int = 1
    ) -> ops.Op[types.RateLimit]:
        """``RL.TOKENBUCKET``: capacity tokens, refilled at rate per period_ms (GCRA)."""
        return (yield from ops.limiter(types.TokenBucket(key, capacity, rate, period_ms, cost)))

    @operation
    def fixed_window(
        self, key: Key, limit: int, window_ms: int, cost: int = 1
    ) -> ops.Op[types.RateLimit]:
        """``RL.FIXEDWINDOW``: at most limit per window_ms, windows aligned to the epoch."""
        return (yield from ops.limiter(types.FixedWindow(key, limit, window_ms, cost)))

    @operation
    def sliding_window(
        self, key: Key, limit: int, window_ms: int, cost: int = 1, exact: bool = False
    ) -> ops.Op[types.RateLimit]:
        """``RL.SLIDINGWINDOW``: weighted previous window, or with ``exact`` a log."""
        return (yield from ops.limiter(types.SlidingWindow(key, limit, window_ms, cost, exact)))

    @operation
    def limit_all(self, limits: Sequence[types.RateLimiter]) -> ops.Op[types.AllLimits]:
        """``RL.ALL``: every limit admits and consumes, or none does (one atomic decision)."""
        return (yield from ops.limit_all(limits))

    @operation
    def refund(self, limits: Sequence[types.RateLimiter]) -> ops.Op[List[int]]:
        """``RL.REFUND``: gives each limit its cost back, never past full; each one's remaining."""
        return (yield from ops.refund(limits))

    @operation
    def throttle(
        self, key: Key, max_burst: int, count_per_period: int, period_s: int, quantity: int = 1
    ) -> ops.Op[types.RateLimit]:
        """``CL.THROTTLE`` (redis-cell's arguments); times in the result are in ms."""
        op = ops.throttle(self._driver, key, max_burst, count_per_period, period_s, quantity)
        return (yield from op)

    # Locks and semaphores

    def lock(
        self,
        key: Key,
        ttl_ms: int = 30000,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
        auto_extend: bool = True,
    ) -> L:
        """A lock with fencing tokens; use ``with p.lock(...) as lock:`` (asyncio: ``async
        with``). See ``Lock``."""
        return self._classes.lock(self._driver, key, ttl_ms, wait_ms, owner, auto_extend)

    def rwlock(
        self,
        key: Key,
        mode: str,
        ttl_ms: int = 30000,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
        auto_extend: bool = True,
    ) -> RW:
        """A read/write lock held in ``mode`` ("read" or "write"); use
        ``with p.rwlock(key, "read"):`` (asyncio: ``async with``). See ``RWLock``."""
        return self._classes.rwlock(self._driver, key, mode, ttl_ms, wait_ms, owner, auto_extend)

    @operation
    def rwlock_info(self, key: Key) -> ops.Op[Optional[types.RWLockInfo]]:
        """``RWLOCK.INFO``: the mode, writer, token, readers, ms left and waiters; None when
        free."""
        return (yield from ops.rwlock_info(self._driver, key))

    @operation
    def lock_info(self, key: Key) -> ops.Op[Optional[types.LockInfo]]:
        """``LOCK.INFO``: the holder, token, ms left, holds and waiters; None when free."""
        return (yield from ops.lock_info(self._driver, key))

    def semaphore(
        self,
        key: Key,
        limit: int,
        ttl_ms: int,
        wait_ms: Optional[int] = None,
        owner: Optional[str] = None,
    ) -> S:
        """A counting semaphore of ``limit`` expiring permits; see ``Semaphore``."""
        return self._classes.semaphore(self._driver, key, limit, ttl_ms, wait_ms, owner)

    @operation
    def fenced_hset(self, resource: Key, token: int, mapping: Mapping[str, Any]) -> ops.Op[bool]:
        """``LOCK.FENCEDHSET``: writes the fields unless a newer token wrote the resource."""
        return (yield from ops.fenced_hset(self._driver, resource, token, mapping))

    def leaderboard(self, key: Key) -> LB:
        """The leaderboard stored at ``key`` (any sorted set)."""
        return self._classes.leaderboard(self._driver, key)

    def queue(self, name: Key) -> Q:
        """The job queue stored at ``name`` (a stream, with its derived keys)."""
        return self._classes.queue(self._driver, name)


# --- Methods whose type the descriptor cannot carry ----------------------------------------

F = TypeVar("F", bound=Facade[Any])


def _public(method: Callable[..., ops.Op[Any]]) -> Any:
    """``method`` (``_name``) as the API's ``name``, run by the instance's driver."""

    @functools.wraps(method)
    def run(self: Facade[Any], *args: Any, **kwargs: Any) -> Any:
        return self._driver.run(method(self, *args, **kwargs))

    run.__name__ = method.__name__.lstrip("_")
    run.__qualname__ = run.__qualname__.replace(method.__name__, run.__name__)
    return run


def blocking(method: Callable[Concatenate[F, P], ops.Op[T]]) -> Callable[Concatenate[F, P], T]:
    """A generic operation (whose type ``operation`` would lose) as a sync method."""
    return _public(method)


def awaiting(
    method: Callable[Concatenate[F, P], ops.Op[T]],
) -> Callable[Concatenate[F, P], Coroutine[Any, Any, T]]:
    """A generic operation as an asyncio method."""
    return _public(method)
