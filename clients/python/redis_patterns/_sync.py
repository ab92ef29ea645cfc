"""The synchronous API: ``_api``'s classes, their operations run over a redis-py client and
their background work on daemon threads."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, TypeVar, Union

from redis import Redis
from redis.client import PubSubWorkerThread
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import _api as api
from . import _ops as ops
from ._errors import from_response

T = TypeVar("T")
Client = Union[Redis, RedisCluster]

# How long past its own timeout a blocked module call may take to answer before we give up.
BLOCKING_GRACE_S = 5.0


class _Thread(ops.Background):
    """An operation run on a daemon thread; ``stopping`` ends its pauses."""

    def __init__(self, driver: _Driver, op: ops.Op[None]) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=driver.run, args=(op, self.stopping), daemon=True)
        self.thread.start()


class _Driver(api.SyncDriver):
    """Runs operations on the client; resolves the backend on first use."""

    cluster_type = RedisCluster
    lock_type = threading.Lock

    @property
    def backend(self) -> str:
        if self.resolved is None:
            with self.resolving:
                if self.resolved is None:
                    self.resolved = self.drive(ops.detect(self.requested))
        return self.resolved

    def current_backend(self) -> str:
        return self.backend

    def as_cluster(self) -> RedisCluster:
        assert isinstance(self.client, RedisCluster)
        return self.client

    def spawn(self, op: ops.Op[None]) -> ops.Background:
        return _Thread(self, op)

    def guard(self) -> threading.Lock:
        return threading.Lock()

    def run(self, op: ops.Op[T], stopping: Optional[threading.Event] = None) -> T:
        self.backend  # noqa: B018 (resolves it before the operation reads ctx.twin)
        return self.drive(op, stopping)

    def drive(self, op: ops.Op[T], stopping: Optional[threading.Event] = None) -> T:
        outcome = ops.Outcome()
        while not isinstance(step := outcome.resume(op), ops.Done):
            try:
                outcome = ops.Outcome(self.step(step, stopping))
            except Exception as error:
                outcome = ops.Outcome(error=error)
        return step.value

    def step(self, step: ops.Step, stopping: Optional[threading.Event]) -> Any:
        if isinstance(step, ops.Call):
            return self.drive(ops.reloading(self, step))
        if isinstance(step, ops.Send):
            return self.send(step.call)
        if isinstance(step, ops.Sleep):
            if stopping is not None:
                return stopping.wait(step.seconds)
            time.sleep(step.seconds)
            return None
        if isinstance(step, ops.Compute):
            return step.fn()
        if isinstance(step, ops.Stop):
            return self.stop(step.handles)
        if isinstance(step, ops.Primaries):
            if self.cluster:
                return [node.redis_connection for node in self.as_cluster().get_primaries()]
            return [self.client]
        target = self.client if step.node is None else step.node
        try:
            return target.execute_command(*step.args)
        except ResponseError as e:
            raise from_response(e) from e

    def stop(self, handles: Sequence[ops.Background]) -> None:
        threads = [handle for handle in handles if isinstance(handle, _Thread)]
        for thread in threads:
            thread.stopping.set()
        for thread in threads:
            if thread.thread is not threading.current_thread():
                thread.thread.join()

    def send(self, call: ops.Call) -> Any:
        try:
            if self.twin:
                return self.client.execute_command(*ops.fcall(call))
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


H = TypeVar("H", bound=api.Held[_Driver])


class _Scoped(api.Held[_Driver]):
    """``with`` takes a hold (raising ``LockNotAcquired``) and gives it back."""

    def __enter__(self: H) -> H:
        return self._entered(self.acquire())

    def __exit__(self, *exc: object) -> None:
        self.release()


class Lock(api.Lock[_Driver], _Scoped):
    """A lock with fencing tokens (see ``_api.Lock``); ``with`` acquires and releases, lease
    renewal runs on a daemon thread."""


class RWLock(api.RWLock[_Driver], Lock):
    """A read/write lock (see ``_api.RWLock``); ``with`` acquires and releases."""


class Semaphore(api.Semaphore[_Driver], _Scoped):
    """A counting semaphore (see ``_api.Semaphore``); ``with`` takes a permit."""


class Leaderboard(api.Leaderboard[_Driver]):
    """``LB.*`` on one board (see ``_api.Leaderboard``)."""


class Cache(api.Cache[_Driver]):
    """``CACHE.*`` (see ``_api.Cache``); ``on_invalidate`` listens from a thread."""

    get_or_set = api.blocking(api.Cache._get_or_set)

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


class Sessions(api.Sessions[_Driver]):
    """``SESSION.*`` (see ``_api.Sessions``)."""


class Worker(api.Worker[_Driver]):
    """A queue worker on threads (see ``_api.Worker``); ``with`` starts and stops it."""

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Queue(api.Queue[_Driver, Worker]):
    """``QUEUE.*`` on one queue (see ``_api.Queue``)."""

    _worker_class = Worker


class Patterns(
    api.Patterns[_Driver, Client, Lock, RWLock, Semaphore, Leaderboard, Queue, Cache, Sessions]
):
    """redis-patterns over a redis-py ``Redis`` or ``RedisCluster`` (see ``_api.Patterns``)."""

    _driver_class = _Driver
    _classes = api.Classes(Lock, RWLock, Semaphore, Leaderboard, Queue, Cache, Sessions)
