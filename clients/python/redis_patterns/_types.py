"""Result types, and the limits the rate-limiting calls take, shared by the sync and the
asyncio API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, NamedTuple, Optional, Protocol, Tuple, Union

__all__ = [
    "AllLimits",
    "Entry",
    "FixedWindow",
    "Job",
    "JSONSerializer",
    "LockInfo",
    "Page",
    "QueueStats",
    "Ranked",
    "RateLimit",
    "RateLimiter",
    "RWLockInfo",
    "Serializer",
    "SlidingWindow",
    "TokenBucket",
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


# --- Limits, as arguments: one of them is a limiter's call, several are RL.ALL's or RL.REFUND's


@dataclass(frozen=True)
class TokenBucket:
    """A limit of ``limit_all`` and ``refund``, with ``RL.TOKENBUCKET``'s arguments: ``capacity``
    tokens, refilled at ``rate`` per ``period_ms`` (GCRA); a request takes ``cost`` of them."""

    token: ClassVar[str] = "TOKENBUCKET"
    key: Union[str, bytes]
    capacity: int
    rate: int
    period_ms: int
    cost: int = 1

    def arguments(self) -> Tuple[Union[str, int], ...]:
        """The command's arguments after the key."""
        return (self.capacity, self.rate, self.period_ms, "COST", self.cost)


@dataclass(frozen=True)
class FixedWindow:
    """``RL.FIXEDWINDOW``'s: at most ``limit`` per ``window_ms``, aligned to the epoch."""

    token: ClassVar[str] = "FIXEDWINDOW"
    key: Union[str, bytes]
    limit: int
    window_ms: int
    cost: int = 1

    def arguments(self) -> Tuple[Union[str, int], ...]:
        return (self.limit, self.window_ms, "COST", self.cost)


@dataclass(frozen=True)
class SlidingWindow(FixedWindow):
    """``RL.SLIDINGWINDOW``'s: the weighted previous window, or with ``exact`` a log."""

    token: ClassVar[str] = "SLIDINGWINDOW"
    exact: bool = False

    def arguments(self) -> Tuple[Union[str, int], ...]:
        return (*super().arguments(), *(("EXACT",) if self.exact else ()))


RateLimiter = Union[TokenBucket, FixedWindow, SlidingWindow]


@dataclass(frozen=True)
class AllLimits:
    """``RL.ALL``'s decision over several limits, atomically. ``allowed`` (also its truth
    value): every limit admitted and each consumed its cost. Else nothing was consumed and
    ``denied`` is the index (0-based, in the list given) of the first limit that denied.
    ``limits``: each limit's ``RateLimit`` in that order; when denied, a limit that would have
    admitted says allowed, with its remaining as it would be after this cost."""

    allowed: bool
    denied: Optional[int]
    limits: List[RateLimit]

    def __bool__(self) -> bool:
        return self.allowed


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
