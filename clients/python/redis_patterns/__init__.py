"""redis-patterns for redis-py: rate limiting, locks, leaderboards, caching, sessions and job
queues as atomic server-side commands (the redis-patterns module, or its Lua twin where modules
cannot be loaded). The asyncio API is ``redis_patterns.asyncio``."""

from . import _api, _errors, _types
from ._errors import *  # noqa: F403 (the errors, listed in _errors.__all__)
from ._sync import (
    Cache as Cache,
)
from ._sync import (
    Leaderboard as Leaderboard,
)
from ._sync import (
    Lock as Lock,
)
from ._sync import (
    Patterns as Patterns,
)
from ._sync import (
    Queue as Queue,
)
from ._sync import (
    RWLock as RWLock,
)
from ._sync import (
    Semaphore as Semaphore,
)
from ._sync import (
    Sessions as Sessions,
)
from ._sync import (
    Worker as Worker,
)
from ._types import *  # noqa: F403 (the result types, listed in _types.__all__)

__all__ = [*_api.CLASSES, *_errors.__all__, *_types.__all__]
