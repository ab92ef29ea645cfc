"""The library's logic, free of I/O and shared by the sync and the asyncio API.

Every operation is a generator ("sans-I/O"): it yields steps (a command to run, a pause, the
user's function to call) and receives their results; ``redis_patterns`` and
``redis_patterns.asyncio`` only drive these generators. Arguments are built here, for both
backends (the module's commands and the Lua twin's ``FCALL``), and replies are parsed here.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Generic,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from ._errors import BackendError, CommandError
from ._types import (
    AllLimits,
    Entry,
    Job,
    JSONSerializer,
    LockInfo,
    Page,
    QueueStats,
    Ranked,
    RateLimit,
    RateLimiter,
    RWLockInfo,
    Serializer,
)

Key = Union[str, bytes]
Arg = Union[str, bytes, int, float]
T = TypeVar("T")

LIBRARY = "patterns"
MODULE_NAME = "patterns"
CHANNEL = "patterns:invalidate"
BACKENDS = ("auto", "module", "twin")


def twin_code() -> str:
    """The bundled Lua twin (``dist/patterns.lua``, copied into the package by ``make lua``)."""
    return resources.files("redis_patterns").joinpath("patterns.lua").read_text("utf-8")


# --- Steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One of the library's commands, in both forms: ``module`` is the module's command line;
    ``function``, ``keys`` and ``args`` the twin's ``FCALL``. ``wait_ms`` marks a module call
    that may block on the server that long (0: without limit): it runs on a connection of its
    own."""

    module: Tuple[Arg, ...]
    function: str
    keys: Tuple[Key, ...]
    args: Tuple[Arg, ...]
    wait_ms: Optional[int] = None


@dataclass(frozen=True)
class Raw:
    """A plain Redis command (setup: detection, ``FUNCTION LOAD``), on ``node`` when given
    (a handle from ``Primaries``), else on the client."""

    args: Tuple[Arg, ...]
    node: Any = None


@dataclass(frozen=True)
class Primaries:
    """Asks the driver for a client per primary (the client itself when not on a Cluster)."""


@dataclass(frozen=True)
class Sleep:
    """A pause. In the background (``Driver.spawn``) it replies True, at once, when told to
    stop; else it replies False or None."""

    seconds: float


@dataclass(frozen=True)
class Compute:
    """Calls the user's function (awaited by the asyncio driver when it returns an awaitable)."""

    fn: Callable[[], Any] = field(compare=False)


class Background:
    """A handle on an operation running in the background: a driver's thread or task."""


@dataclass(frozen=True)
class Stop:
    """Tells background operations to stop (their pauses end at once) and waits for them to
    end; never waits for the one it runs in."""

    handles: Tuple[Background, ...]


@dataclass(frozen=True)
class Send:
    """A ``Call`` sent as it is, once (``reloading`` makes a ``Call`` of it)."""

    call: Call


Step = Union[Call, Send, Raw, Primaries, Sleep, Compute, Stop]
Op = Generator[Step, Any, T]


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Outcome:
    """What a step gave, to send into the operation that yielded it: its reply, or its
    error (thrown in, for the operation to handle or let through)."""

    reply: Any = None
    error: Optional[Exception] = None

    def resume(self, op: Op[T]) -> Union[Step, Done[T]]:
        """The operation's next step, or its result."""
        try:
            return op.send(self.reply) if self.error is None else op.throw(self.error)
        except StopIteration as stop:
            return Done(stop.value)


class Context:
    """What operations need to know of the backend: resolved by the driver before they run."""

    twin: bool


def command(name: str, key: Key, *args: Arg, wait_ms: Optional[int] = None) -> Call:
    """A command whose twin takes the same arguments, the one key in ``KEYS``."""
    return Call((name, key, *args), function_name(name), (key,), args, wait_ms)


def twin_only(function: str, keys: Tuple[Key, ...], args: Tuple[Arg, ...]) -> Call:
    """A call built for the twin alone (it takes ids, leases or draws the module makes)."""
    return Call((), function, keys, args)


def function_name(name: str) -> str:
    return name.lower().replace(".", "_")


# --- Reply decoding ------------------------------------------------------------------------


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def optional_text(value: Any) -> Optional[str]:
    return None if value is None else text(value)


def record(reply: Any) -> Dict[str, Any]:
    """A record reply as a dict: RESP2 gives a flat [k, v, ...] array, RESP3 a map."""
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    return {text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def pairs(reply: Any) -> Dict[str, str]:
    return {k: text(v) for k, v in record(reply).items()}


def flatten(mapping: Mapping[str, Any]) -> Tuple[Arg, ...]:
    out: List[Arg] = []
    for name, value in mapping.items():
        out.extend((name, value))
    return tuple(out)


# --- Backend detection and the twin --------------------------------------------------------


def module_loaded(reply: Any) -> bool:
    """Whether a ``MODULE LIST`` reply (raw or parsed by redis-py) names the module."""
    for module in reply or ():
        if isinstance(module, dict):
            name = module.get("name", module.get(b"name"))
        else:
            name = pairs(module).get("name")
        if name is not None and text(name) == MODULE_NAME:
            return True
    return False


def library_code(reply: Any) -> Optional[str]:
    """The code of the ``patterns`` library in a ``FUNCTION LIST ... WITHCODE`` reply."""
    for library in reply or ():
        if isinstance(library, dict):
            fields = {text(k): v for k, v in library.items()}
        else:
            fields = {text(library[i]): library[i + 1] for i in range(0, len(library), 2)}
        if text(fields.get("library_name", "")) == LIBRARY:
            return text(fields["library_code"])
    return None


def detect(requested: str) -> Op[str]:
    """Resolves the backend: ``auto`` takes the module when every primary has it, else the twin
    (loaded where needed); ``module`` is refused, naming how many primaries lack it."""
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {requested!r}")
    if requested != "twin":
        nodes = yield Primaries()
        missing = 0
        for node in nodes:
            if not (yield from has_module(node)):
                missing += 1
        if missing == 0:
            return "module"
        if requested == "module":
            where = f"{missing} of the {len(nodes)} primaries" if len(nodes) > 1 else "this server"
            raise BackendError(
                f'the redis-patterns module is not loaded on {where} (backend: "module")'
            )
    yield from load_twin()
    return "twin"


def has_module(node: Any) -> Op[bool]:
    """Whether a server runs the module: ``MODULE LIST``, or where that is denied (ACL, managed
    services) a harmless module command (``SEM.COUNT`` on a probe key), by being unknown or not
    (a Cluster node answers ``MOVED`` for a slot it does not serve, after finding the command)."""
    try:
        return module_loaded((yield Raw(("MODULE", "LIST"), node)))
    except CommandError:
        pass
    try:
        yield Raw(("SEM.COUNT", "{patterns}:probe"), node)
    except CommandError as error:
        return "unknown command" not in error.message.lower()
    return True


def load_twin() -> Op[None]:
    """Loads the bundled twin on every primary whose copy is missing or differs."""
    code = twin_code()
    nodes = yield Primaries()
    for node in nodes:
        try:
            listed = yield Raw(("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY, "WITHCODE"), node)
            if library_code(listed) != code:
                yield Raw(("FUNCTION", "LOAD", "REPLACE", code), node)
        except CommandError as error:
            raise BackendError(
                f"the patterns module is not loaded and the Lua twin cannot be loaded: {error}"
            ) from error


def reloading(ctx: Context, call: Call) -> Op[Any]:
    """Runs a ``Call``; on the twin whose library vanished, reloads it and runs it again."""
    try:
        return (yield Send(call))
    except CommandError as error:
        if not (ctx.twin and is_missing_function(error)):
            raise
    yield from load_twin()
    return (yield Send(call))


def fcall(call: Call) -> Tuple[Arg, ...]:
    """The twin's command line for a call."""
    return ("FCALL", call.function, len(call.keys), *call.keys, *call.args)


def is_missing_function(error: CommandError) -> bool:
    """The twin's library vanished (``FUNCTION FLUSH``, a restart without persistence)."""
    return "function not found" in error.message.lower()


# --- Rate limiting -------------------------------------------------------------------------


def rate_limit(reply: Sequence[int]) -> RateLimit:
    allowed, limit, remaining, retry, reset = (int(x) for x in reply)
    return RateLimit(bool(allowed), limit, remaining, retry, reset)


def throttle_limit(reply: Sequence[int]) -> RateLimit:
    limited, limit, remaining, retry_s, reset_s = (int(x) for x in reply)
    retry = -1 if retry_s < 0 else retry_s * 1000
    return RateLimit(not limited, limit, remaining, retry, reset_s * 1000)


def limiter(limit: RateLimiter) -> Op[RateLimit]:
    """One limit, by its own command (``RL.TOKENBUCKET`` ...)."""
    reply = yield command(f"RL.{limit.token}", limit.key, *limit.arguments())
    return rate_limit(reply)


def limits_call(name: str, limits: Sequence[RateLimiter]) -> Call:
    """A command of limits (``RL.ALL limit [limit ...]``): the module takes each limit's token,
    key and arguments in turn; the twin each key in ``KEYS``, in order, and each limit's token
    and arguments in ``ARGV``."""
    module: List[Arg] = [name]
    args: List[Arg] = []
    for limit in limits:
        module.extend((limit.token, limit.key, *limit.arguments()))
        args.extend((limit.token, *limit.arguments()))
    keys = tuple(limit.key for limit in limits)
    return Call(tuple(module), function_name(name), keys, tuple(args))


def limit_all(limits: Sequence[RateLimiter]) -> Op[AllLimits]:
    allowed, denied, *each = yield limits_call("RL.ALL", limits)
    position = int(denied)
    return AllLimits(
        bool(int(allowed)), position - 1 if position else None, [rate_limit(r) for r in each]
    )


def refund(limits: Sequence[RateLimiter]) -> Op[List[int]]:
    reply = yield limits_call("RL.REFUND", limits)
    return [int(remaining) for remaining in reply]


def throttle(
    ctx: Context, key: Key, max_burst: int, count_per_period: int, period_s: int, quantity: int
) -> Op[RateLimit]:
    reply = yield command("CL.THROTTLE", key, max_burst, count_per_period, period_s, quantity)
    return throttle_limit(reply)


# --- Sessions ------------------------------------------------------------------------------


def new_id() -> str:
    """A session id or lease for the twin: 128 bits from the CSPRNG, 22 base64url characters."""
    return secrets.token_urlsafe(16)


def session_create(
    ctx: Context,
    index: Key,
    idle_ms: int,
    absolute_ms: int,
    data: Mapping[str, Any],
    max_sessions: Optional[int] = None,
) -> Op[str]:
    fields = flatten(data)
    cap: Tuple[Arg, ...] = () if max_sessions is None else ("MAX", max_sessions)
    if ctx.twin:
        args = (new_id(), *cap, idle_ms, absolute_ms, *fields)
        call = twin_only("session_create", (index,), args)
    else:
        call = command("SESSION.CREATE", index, *cap, idle_ms, absolute_ms, *fields)
    return text((yield call))


def session_get(ctx: Context, session: Key) -> Op[Optional[Dict[str, str]]]:
    reply = yield command("SESSION.GET", session)
    return None if reply is None else pairs(reply)


def session_set(ctx: Context, session: Key, mapping: Mapping[str, Any]) -> Op[bool]:
    reply = yield command("SESSION.SET", session, *flatten(mapping))
    return reply is not None


def session_rotate(ctx: Context, session: Key) -> Op[Optional[str]]:
    if ctx.twin:
        call = twin_only("session_rotate", (session,), (new_id(),))
    else:
        call = command("SESSION.ROTATE", session)
    return optional_text((yield call))


def session_destroy(ctx: Context, session: Key) -> Op[bool]:
    return bool((yield command("SESSION.DESTROY", session)))


def session_destroy_all(ctx: Context, index: Key) -> Op[int]:
    return int((yield command("SESSION.DESTROYALL", index)))


def session_list(ctx: Context, index: Key) -> Op[List[str]]:
    return [text(k) for k in (yield command("SESSION.LIST", index))]


def session_count(ctx: Context, index: Key) -> Op[int]:
    return int((yield command("SESSION.COUNT", index)))


# --- Leaderboards --------------------------------------------------------------------------


def view(ranking: str, order: str) -> Tuple[Arg, ...]:
    return (order.upper(), "RANKING", ranking.upper())


def entry(raw: Sequence[Any]) -> Entry:
    return Entry(int(raw[0]), text(raw[1]), float(text(raw[2])))


def lb_add(ctx: Context, board: Key, scores: Mapping[str, float]) -> Op[int]:
    args: List[Arg] = []
    for member, score in scores.items():
        args.extend((score, member))
    return int((yield command("LB.ADD", board, *args)))


def lb_incr(ctx: Context, board: Key, member: str, amount: float) -> Op[float]:
    return float(text((yield command("LB.INCR", board, amount, member))))


def ranked(member: str, raw: Sequence[Any]) -> Ranked:
    """One of ``WITHRANK``'s ``[rank, score, total_members]``, for ``member``."""
    return Ranked(int(raw[0]), member, float(text(raw[1])), int(raw[2]))


def lb_add_ranked(
    ctx: Context, board: Key, scores: Mapping[str, float], ranking: str, order: str
) -> Op[List[Ranked]]:
    args: List[Arg] = []
    for member, score in scores.items():
        args.extend((score, member))
    reply = yield command("LB.ADD", board, "WITHRANK", *view(ranking, order), *args)
    return [ranked(m, r) for m, r in zip(scores, reply)]


def lb_incr_ranked(
    ctx: Context, board: Key, member: str, amount: float, ranking: str, order: str
) -> Op[Ranked]:
    reply = yield command("LB.INCR", board, amount, member, "WITHRANK", *view(ranking, order))
    return ranked(member, reply)


def lb_remove(ctx: Context, board: Key, members: Sequence[str]) -> Op[int]:
    return int((yield command("LB.REM", board, *members)))


def lb_rank(ctx: Context, board: Key, member: str, ranking: str, order: str) -> Op[Optional[Entry]]:
    reply = yield command("LB.RANK", board, member, *view(ranking, order))
    if reply is None:
        return None
    return Entry(int(reply[0]), member, float(text(reply[1])))


def lb_around(
    ctx: Context, board: Key, member: str, count: int, ranking: str, order: str
) -> Op[Optional[List[Entry]]]:
    reply = yield command("LB.AROUND", board, member, count, *view(ranking, order))
    return None if reply is None else [entry(e) for e in reply]


def lb_top(
    ctx: Context, board: Key, count: int, offset: int, ranking: str, order: str
) -> Op[List[Entry]]:
    reply = yield command("LB.TOP", board, count, "OFFSET", offset, *view(ranking, order))
    return [entry(e) for e in reply]


def lb_page(ctx: Context, board: Key, page: int, size: int, ranking: str, order: str) -> Op[Page]:
    reply = yield command("LB.PAGE", board, page, size, *view(ranking, order))
    return Page(int(reply[0]), [entry(e) for e in reply[1]])


def lb_percentile(ctx: Context, board: Key, member: str, order: str) -> Op[Optional[float]]:
    reply = yield command("LB.PERCENTILE", board, member, order.upper())
    return None if reply is None else float(text(reply))


# --- Cache ---------------------------------------------------------------------------------

# XFetch's draw for the twin: an integer in [1, 2^53], rand = draw / 2^53 in (0, 1].
DRAW_RANGE = 1 << 53
DEFAULT_LEASE_MS = 10000


def entry_options(delta_ms: int, grace_ms: int) -> Tuple[Arg, ...]:
    return ("DELTA", delta_ms, "GRACE", grace_ms)


def cache_store(
    ctx: Context,
    name: str,
    key: Key,
    lease: Tuple[Arg, ...],
    value: Union[bytes, str],
    ttl_ms: int,
    delta_ms: int,
    grace_ms: int,
    tags: Sequence[Key],
) -> Call:
    """``CACHE.SET`` (no lease) or ``CACHE.FILL``: the twin takes the tags as keys, no ``TAGS``."""
    args = (*lease, value, ttl_ms, *entry_options(delta_ms, grace_ms))
    module_tags: Tuple[Arg, ...] = ("TAGS", *tags) if tags else ()
    return Call((name, key, *args, *module_tags), function_name(name), (key, *tags), args)


def cache_set(
    ctx: Context,
    key: Key,
    data: Union[bytes, str],
    ttl_ms: int,
    delta_ms: int,
    grace_ms: int,
    tags: Sequence[Key],
) -> Op[None]:
    yield cache_store(ctx, "CACHE.SET", key, (), data, ttl_ms, delta_ms, grace_ms, tags)


def cache_get_call(ctx: Context, key: Key, beta: float, lease_ms: Optional[int]) -> Call:
    options: Tuple[Arg, ...] = ("BETA", beta)
    if lease_ms is not None:
        options += ("LEASE", lease_ms)
    if ctx.twin:
        draw = random.randrange(DRAW_RANGE) + 1
        return twin_only("cache_get", (key,), (draw, new_id(), *options))
    return command("CACHE.GET", key, *options)


def cache_peek(ctx: Context, key: Key) -> Op[Optional[Union[bytes, str]]]:
    """The value if one is cached (fresh, or stale within its grace), else None. It asks with
    ``BETA 0`` and a 1 ms lease, so a miss holds no other caller up for longer than that."""
    state, value, _ = yield cache_get_call(ctx, key, 0.0, 1)
    return value if text(state) in ("HIT", "STALE", "REFRESH") else None


@dataclass
class Fill:
    """What ``get_or_set`` writes with a value: its lifetime, XFetch delta (None: measured), grace
    and tags."""

    ttl_ms: int
    delta_ms: Optional[int]
    grace_ms: int
    tags: Sequence[Key]


def get_or_set(
    ctx: Context,
    key: Key,
    compute: Callable[[], Any],
    options: Fill,
    beta: float,
    lease_ms: Optional[int],
    max_wait_ms: Optional[int],
    serializer: Serializer,
) -> Op[Any]:
    """``CACHE.GET``'s state machine. HIT and STALE return the cached value. REFRESH and MISS
    compute, fill with the lease (measuring the compute time as XFetch's delta unless given) and
    return what was computed. WAIT sleeps the hinted time and asks again; past ``max_wait_ms``
    (default: the lease's duration, after which a waiter gets the lease anyway) it computes
    without writing."""
    budget = (lease_ms or DEFAULT_LEASE_MS) if max_wait_ms is None else max_wait_ms
    deadline = time.monotonic() + budget / 1000
    while True:
        state, value, extra = yield cache_get_call(ctx, key, beta, lease_ms)
        state = text(state)
        if state in ("HIT", "STALE"):
            return serializer.loads(value)
        if state == "WAIT" and time.monotonic() < deadline:
            yield Sleep(int(extra) / 1000)
            continue
        started = time.monotonic()
        result = yield Compute(compute)
        if state in ("MISS", "REFRESH"):
            took = round((time.monotonic() - started) * 1000)
            delta = took if options.delta_ms is None else options.delta_ms
            data = serializer.dumps(result)
            lease = (extra,)
            yield cache_store(
                ctx,
                "CACHE.FILL",
                key,
                lease,
                data,
                options.ttl_ms,
                delta,
                options.grace_ms,
                options.tags,
            )
        return result


def cache_tag(ctx: Context, key: Key, tags: Sequence[Key]) -> Op[int]:
    call = Call(("CACHE.TAG", key, *tags), "cache_tag", (key, *tags), ())
    return int((yield call))


def cache_invalidate(ctx: Context, tags: Sequence[Key]) -> Op[int]:
    call = Call(("CACHE.INVALIDATE", *tags), "cache_invalidate", tuple(tags), ())
    return int((yield call))


def cache_key(
    prefix: str, fn: Callable[..., Any], args: Iterable[Any], kwargs: Mapping[str, Any]
) -> str:
    """The ``cached`` decorator's key: the function's qualified name and its arguments."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in sorted(kwargs.items())]
    return f"{prefix}{fn.__module__}.{fn.__qualname__}({', '.join(parts)})"


DEFAULT_SERIALIZER: Serializer = JSONSerializer()


# --- Locks and semaphores ------------------------------------------------------------------

# The twin cannot block: a wait is polled, with backoff from 5 ms up to 200 ms, jittered.
FIRST_BACKOFF_S = 0.005
MAX_BACKOFF_S = 0.2


def new_owner() -> str:
    return secrets.token_hex(16)


def waited(
    ctx: Context,
    call: Callable[[Optional[int]], Call],
    granted: Callable[[Any], bool],
    wait_ms: Optional[int],
) -> Op[Any]:
    """Runs an acquire. On the module a wait blocks on the server (FIFO). On the twin, which
    cannot block, it is retried with jittered exponential backoff until granted or ``wait_ms``
    passes (0: without limit): polling is neither fair nor prompt."""
    if not ctx.twin or wait_ms is None:
        return (yield call(wait_ms))
    deadline = None if wait_ms == 0 else time.monotonic() + wait_ms / 1000
    backoff = FIRST_BACKOFF_S
    while True:
        reply = yield call(None)
        left = None if deadline is None else deadline - time.monotonic()
        if granted(reply) or (left is not None and left <= 0):
            return reply
        pause = backoff * (0.5 + random.random() / 2)
        if (yield Sleep(pause if left is None else min(pause, left))):
            return reply  # told to stop (a background operation): the wait ends, not granted
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def wait_args(wait_ms: Optional[int]) -> Tuple[Arg, ...]:
    return () if wait_ms is None else ("WAIT", wait_ms)


def lock_acquire(
    ctx: Context,
    key: Key,
    owner: str,
    ttl_ms: int,
    wait_ms: Optional[int],
    mode: Optional[str] = None,
) -> Op[Optional[int]]:
    """``LOCK.ACQUIRE``, or in a ``mode`` ``RWLOCK.ACQUIRE``: the fencing token (a READ hold:
    1) when granted, else None."""
    family, word = ("LOCK", ()) if mode is None else ("RWLOCK", (rwlock_mode(mode),))

    def call(wait: Optional[int]) -> Call:
        args = (owner, ttl_ms, *word, *wait_args(wait))
        return command(f"{family}.ACQUIRE", key, *args, wait_ms=wait)

    reply = yield from waited(ctx, call, lambda r: r is not None, wait_ms)
    return None if reply is None else int(reply)


def lock_release(ctx: Context, key: Key, owner: str, family: str = "LOCK") -> Op[bool]:
    """``LOCK.RELEASE`` or (``family`` RWLOCK) ``RWLOCK.RELEASE``."""
    return bool((yield command(f"{family}.RELEASE", key, owner)))


def lock_extend(ctx: Context, key: Key, owner: str, ttl_ms: int, family: str = "LOCK") -> Op[bool]:
    """``LOCK.EXTEND`` or (``family`` RWLOCK) ``RWLOCK.EXTEND``."""
    return bool((yield command(f"{family}.EXTEND", key, owner, ttl_ms)))


def lock_info(ctx: Context, key: Key) -> Op[Optional[LockInfo]]:
    reply = yield command("LOCK.INFO", key)
    if reply is None:
        return None
    f = record(reply)
    return LockInfo(
        text(f["owner"]), int(f["token"]), int(f["ttl"]), int(f["holds"]), int(f["waiters"])
    )


def fenced_hset(ctx: Context, resource: Key, token: int, mapping: Mapping[str, Any]) -> Op[bool]:
    return bool((yield command("LOCK.FENCEDHSET", resource, token, *flatten(mapping))))


RW_MODES = ("read", "write")


def rwlock_mode(mode: str) -> str:
    if mode.lower() not in RW_MODES:
        raise ValueError(f"mode must be one of {RW_MODES}, not {mode!r}")
    return mode.upper()


def rwlock_acquire(
    ctx: Context, key: Key, owner: str, ttl_ms: int, mode: str, wait_ms: Optional[int]
) -> Op[Optional[int]]:
    """The fencing token (a WRITE hold) or 1 (a READ hold) when granted, else None."""
    return (yield from lock_acquire(ctx, key, owner, ttl_ms, wait_ms, mode))


def rwlock_info(ctx: Context, key: Key) -> Op[Optional[RWLockInfo]]:
    reply = yield command("RWLOCK.INFO", key)
    if reply is None:
        return None
    f = record(reply)
    token = f.get("token")
    return RWLockInfo(
        text(f["mode"]),
        optional_text(f.get("owner")),
        None if token is None else int(token),
        int(f["readers"]),
        int(f["ttl"]),
        int(f["waiters"]),
    )


def sem_acquire(
    ctx: Context, key: Key, owner: str, limit: int, ttl_ms: int, wait_ms: Optional[int]
) -> Op[bool]:
    def call(wait: Optional[int]) -> Call:
        return command("SEM.ACQUIRE", key, owner, limit, ttl_ms, *wait_args(wait), wait_ms=wait)

    return bool((yield from waited(ctx, call, bool, wait_ms)))


def sem_release(ctx: Context, key: Key, owner: str) -> Op[bool]:
    return bool((yield command("SEM.RELEASE", key, owner)))


def sem_count(ctx: Context, key: Key) -> Op[int]:
    return int((yield command("SEM.COUNT", key)))


# --- Queues --------------------------------------------------------------------------------

DEFAULT_DEDUPE_TTL_MS = 3_600_000


def queue_push(
    ctx: Context,
    key: Key,
    payload: Union[str, bytes],
    delay_ms: Optional[int],
    dedupe: Optional[str],
    dedupe_ttl_ms: int,
) -> Op[str]:
    options: Tuple[Arg, ...] = () if delay_ms is None else ("DELAY", delay_ms)
    if dedupe is not None:
        options += ("DEDUPE", dedupe, dedupe_ttl_ms)
    return text((yield command("QUEUE.PUSH", key, payload, *options)))


def job(raw: Sequence[Any]) -> Job:
    return Job(text(raw[0]), text(raw[1]), int(raw[2]))


def queue_pop(
    ctx: Context,
    key: Key,
    group: str,
    consumer: str,
    count: int,
    block_ms: Optional[int],
    lease_ms: Optional[int],
    max_deliveries: Optional[int],
) -> Op[List[Job]]:
    """``QUEUE.POP``; with ``block_ms`` it waits on the server (the module) or, on the twin
    whose ``BLOCK`` tries once, polls with ``waited``'s backoff."""
    options: Tuple[Arg, ...] = ("COUNT", count)
    if lease_ms is not None:
        options += ("LEASE", lease_ms)
    if max_deliveries is not None:
        options += ("MAXDELIVERIES", max_deliveries)

    def call(wait: Optional[int]) -> Call:
        block: Tuple[Arg, ...] = () if wait is None else ("BLOCK", wait)
        return command("QUEUE.POP", key, group, consumer, *options, *block, wait_ms=wait)

    reply = yield from waited(ctx, call, lambda r: r is not None, block_ms)
    return [] if reply is None else [job(j) for j in reply]


def queue_ack(ctx: Context, key: Key, group: str, job_ids: Sequence[str]) -> Op[int]:
    return int((yield command("QUEUE.ACK", key, group, *job_ids)))


def queue_nack(
    ctx: Context, key: Key, group: str, job_id: str, delay_ms: Optional[int]
) -> Op[bool]:
    options: Tuple[Arg, ...] = () if delay_ms is None else ("DELAY", delay_ms)
    return bool((yield command("QUEUE.NACK", key, group, job_id, *options)))


def queue_extend(
    ctx: Context, key: Key, group: str, consumer: str, job_id: str, lease_ms: int
) -> Op[bool]:
    return bool((yield command("QUEUE.EXTEND", key, group, consumer, job_id, lease_ms)))


def queue_redrive(ctx: Context, key: Key, group: str, count: Optional[int]) -> Op[int]:
    options: Tuple[Arg, ...] = () if count is None else ("COUNT", count)
    return int((yield command("QUEUE.REDRIVE", key, group, *options)))


def queue_stats(ctx: Context, key: Key, group: str) -> Op[QueueStats]:
    f = record((yield command("QUEUE.STATS", key, group)))
    return QueueStats(
        int(f["ready"]), int(f["delayed"]), int(f["pending"]), int(f["dead"]), int(f["consumers"])
    )


@dataclass(frozen=True)
class WorkerOptions:
    """A queue worker's settings (see ``Queue.worker``)."""

    lease_ms: int
    max_deliveries: Optional[int]
    poll_ms: int
    retry_ms: int
    max_retry_ms: int

    @property
    def extend_every_s(self) -> float:
        """Leases are renewed every third of their length: two renewals may be late."""
        return self.lease_ms / 3000

    def retry_delay_ms(self, deliveries: int) -> int:
        """The ``NACK`` delay after a failed delivery: ``retry_ms`` doubled per earlier
        delivery, at most ``max_retry_ms``, jittered (half to all of it) so that jobs failing
        together do not retry in lockstep."""
        delay = min(self.retry_ms * 2 ** min(deliveries - 1, 32), self.max_retry_ms)
        return round(delay * (0.5 + random.random() / 2))
