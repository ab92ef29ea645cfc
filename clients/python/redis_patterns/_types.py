"""Result types, shared by the sync and the asyncio API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Union

__all__ = [
    "Entry",
    "Job",
    "JSONSerializer",
    "LockInfo",
    "Page",
    "QueueStats",
    "Ranked",
    "RateLimit",
    "RWLockInfo",
    "Serializer",
]


def _ceil_seconds(ms: int) -> int:
    return -(-ms // 1000)


@dataclass(frozen=True)
class RateLimit:
    """One rate-limiting decision. Times are milliseconds; ``retry_after_ms`` is -1 when the
    request was allowed, or when its cost can never fit."""

    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int
    reset_after_ms: int

    def __bool__(self) -> bool:
        return self.allowed

    def headers(self) -> Dict[str, str]:
        """The IETF ``RateLimit-Limit``/``-Remaining``/``-Reset`` fields (seconds, rounded up),
        plus ``Retry-After`` when denied and a retry can succeed."""
        fields = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(_ceil_seconds(self.reset_after_ms)),
        }
        if not self.allowed and self.retry_after_ms >= 0:
            fields["Retry-After"] = str(_ceil_seconds(self.retry_after_ms))
        return fields


class Entry(NamedTuple):
    """A leaderboard entry: 1-based rank, member, score."""

    rank: int
    member: str
    score: float


class Ranked(NamedTuple):
    """A leaderboard write's ``WITHRANK`` answer: the member's 1-based rank after the write, the
    member, its score and the board's number of members."""

    rank: int
    member: str
    score: float
    total_members: int


class Page(NamedTuple):
    """One page of a leaderboard and the number of pages."""

    total_pages: int
    entries: List[Entry]


@dataclass(frozen=True)
class LockInfo:
    """``LOCK.INFO``: who holds a lock, with which token, for how long (ms), and the queue."""

    owner: str
    token: int
    ttl_ms: int
    holds: int
    waiters: int


@dataclass(frozen=True)
class RWLockInfo:
    """``RWLOCK.INFO``: ``mode`` ("read" or "write"); the writer and its token (None when
    read); the live read holds; ms until the write lease or the last read lease ends; waiters."""

    mode: str
    owner: Optional[str]
    token: Optional[int]
    readers: int
    ttl_ms: int
    waiters: int


@dataclass(frozen=True)
class Job:
    """A job ``QUEUE.POP`` delivered: its id (a stream id), payload (text) and deliveries (this
    one included)."""

    id: str
    payload: str
    deliveries: int


@dataclass(frozen=True)
class QueueStats:
    """``QUEUE.STATS`` for one group: jobs ready, delayed (or nacked with a delay), pending
    (delivered, not completed), dead, and the group's consumers."""

    ready: int
    delayed: int
    pending: int
    dead: int
    consumers: int


class Serializer(Protocol):
    """How cached values become bytes and back (``json`` by default; ``pickle`` fits too)."""

    def dumps(self, value: Any) -> Union[bytes, str]: ...

    def loads(self, data: Union[bytes, str]) -> Any: ...


class JSONSerializer:
    """Compact JSON, UTF-8."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def loads(self, data: Union[bytes, str]) -> Any:
        return json.loads(data)
