"""redis-patterns for redis-py: rate limiting, locks, leaderboards, caching and sessions as
atomic server-side commands (the redis-patterns module, or its Lua twin where modules cannot be
loaded). The asyncio API is ``redis_patterns.asyncio``."""

from ._errors import (
    BackendError,
    CommandError,
    LockNotAcquired,
    LockNotOwned,
    PatternsError,
    PermissionDeniedError,
    WrongTypeError,
)
from ._sync import Cache, Leaderboard, Lock, Patterns, Semaphore, Sessions
from ._types import Entry, JSONSerializer, LockInfo, Page, RateLimit, Serializer

__all__ = [
    "BackendError",
    "Cache",
    "CommandError",
    "Entry",
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
    "RateLimit",
    "Semaphore",
    "Serializer",
    "Sessions",
    "WrongTypeError",
]
