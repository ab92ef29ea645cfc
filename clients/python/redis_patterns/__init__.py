"""redis-patterns for redis-py: rate limiting, locks, leaderboards, caching, sessions and job
queues as atomic server-side commands (the redis-patterns module, or its Lua twin where modules
cannot be loaded). The asyncio API is ``redis_patterns.asyncio``."""

from ._errors import (
    BackendError,
    CommandError,
    LockNotAcquired,
    LockNotOwned,
    PatternsError,
    PermissionDeniedError,
    WrongTypeError,
)
from ._sync import (
    Cache,
    Leaderboard,
    Lock,
    Patterns,
    Queue,
    RWLock,
    Semaphore,
    Sessions,
    Worker,
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
