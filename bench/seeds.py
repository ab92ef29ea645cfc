"""The seeds' hand-written patterns (../shared/seeds, the pattern library this project grew from)
against the module's commands, same run, same server, same driver.

A pattern the seeds teach is often several commands per operation (`SET NX PX`, later a Lua
compare-and-delete; `INCR` then `EXPIRE`), which redis-benchmark cannot send (one command per
request). So this file drives both sides itself: per connection it pre-encodes the operation's
commands for its own keys, and sends them for a fixed time, either pipelined (DEPTH operations
per write, as redis-benchmark's -P 16) or one command per round trip (each command waits for
its reply, as application code does). The client does no parsing (every reply of these rows has
a known number of lines), so the server's CPU per operation is the figure to compare; ops/s is
what this Python client got (client-bound in round-trip mode). Error replies are counted by the
server (`total_error_replies`) and must be zero; each row's replies are checked once first.
"""

import selectors
import socket
import statistics
import time

from config import CLIENTS, PIPELINES, REPEATS, TIME_SCALE, log
from server import Redis, ReplyError

# The seeds' scripts, verbatim (only whitespace and comments differ).
# Lock release: seeds 000 and 003 (compare-and-delete after `SET key token NX PX ttl`).
RELEASE = """if redis.call("get", KEYS[1]) == ARGV[1] then
return redis.call("del", KEYS[1])
else
return 0
end
"""
# Token bucket: seed 001 (hash {tokens, lastRefill}, the caller's clock in seconds).
TOKEN_BUCKET = """local key = KEYS[1]
local maxTokens = tonumber(ARGV[1])
local refillRate = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local bucket = redis.call('HMGET', key, 'tokens', 'lastRefill')
local tokens = tonumber(bucket[1]) or maxTokens
local lastRefill = tonumber(bucket[2]) or now
local elapsed = now - lastRefill
local refill = math.floor(elapsed * refillRate)
if refill > 0 then
tokens = math.min(maxTokens, tokens + refill)
lastRefill = now
end
if tokens >= 1 then
tokens = tokens - 1
redis.call('HMSET', key, 'tokens', tokens, 'lastRefill', lastRefill)
redis.call('EXPIRE', key, 3600)
return {1, tokens}
else
return {0, tokens}
end
"""
# Sliding window log: seed 004 (a sorted set of requests, the server's clock in seconds).
SLIDING_WINDOW = """local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local window_start = now - window
redis.call('ZREMRANGEBYSCORE', key, '-inf', window_start)
local count = redis.call('ZCARD', key)
if count < limit then
    redis.call('ZADD', key, now, now .. ':' .. math.random(1000000))
    redis.call('EXPIRE', key, window)
    return {1, limit - count - 1}
else
    return {0, 0}
end
"""
SCRIPTS = {"seed_release": RELEASE, "seed_tokenbucket": TOKEN_BUCKET,
           "seed_slidingwindow": SLIDING_WINDOW}

KEYS_PER_CLIENT = 200  # CLIENTS x 200 = 10,000 keys per row, each client on its own keys
DEPTH = 16
SEED_SECONDS = 1.5
LOCK_TTL_MS = "60000"
WINDOW_NUMBER = "29444444"  # the seeds' client-side window number (now / window), fixed here
NOW_S = "1766000000"  # seed 001's `now` argument (the caller's clock, seconds)

# (operation, [(path, what it is, commands of one operation as templates on {k} and {tok})]).
# Each path's keys are its own ({k} is a 12-digit number; lock keys keep one hash slot).
ROWS = [
    ("lock: acquire + release", [
        ("seeds", "`SET k tok NX PX 60000`, then the Lua compare-and-delete (EVALSHA)",
         [["SET", "seed:lock:{k}", "{tok}", "NX", "PX", LOCK_TTL_MS],
          ["EVALSHA", "@seed_release", "1", "seed:lock:{k}", "{tok}"]]),
        ("native", "`LOCK.ACQUIRE k tok 60000`, then `LOCK.RELEASE k tok`",
         [["LOCK.ACQUIRE", "lock:{{{k}}}", "{tok}", LOCK_TTL_MS],
          ["LOCK.RELEASE", "lock:{{{k}}}", "{tok}"]]),
    ]),
    ("fixed window", [
        ("seeds", "`INCR k:<window>` and `EXPIRE k:<window> 60` (seed 003's pipeline)",
         [["INCR", "seed:fw:{k}:" + WINDOW_NUMBER], ["EXPIRE", "seed:fw:{k}:" + WINDOW_NUMBER,
                                                     "60"]]),
        ("native", "`RL.FIXEDWINDOW k 1000000 60000`",
         [["RL.FIXEDWINDOW", "rl:fw:{k}", "1000000", "60000"]]),
    ]),
    ("token bucket", [
        ("seeds", "seed 001's Lua token bucket (EVALSHA; HMGET, HMSET, EXPIRE)",
         [["EVALSHA", "@seed_tokenbucket", "1", "seed:tb:{k}", "1000000", "1", NOW_S]]),
        ("native", "`RL.TOKENBUCKET k 1000000 1 1000`",
         [["RL.TOKENBUCKET", "rl:tb:{k}", "1000000", "1", "1000"]]),
    ]),
    ("sliding window (log)", [
        ("seeds", "seed 004's Lua sliding window (EVALSHA; ZREMRANGEBYSCORE, ZCARD, ZADD, "
                  "EXPIRE), 100 per 1 s",
         [["EVALSHA", "@seed_slidingwindow", "1", "seed:sw:{k}", "100", "1"]]),
        ("native", "`RL.SLIDINGWINDOW k 100 1000 EXACT`",
         [["RL.SLIDINGWINDOW", "rl:sw:{k}", "100", "1000", "EXACT"]]),
    ]),
    # Not a seed: the hand-written way to pass several limits, one call per limiter (which
    # consumes from the first ones even when a later one denies), against RL.ALL.
    ("three limits at once", [
        ("seeds", "the limiters one by one: `RL.TOKENBUCKET`, `RL.FIXEDWINDOW`, "
                  "`RL.SLIDINGWINDOW` (not all or nothing)",
         [["RL.TOKENBUCKET", "rl:all1:{{{k}}}:tb", "1000000", "1", "1000"],
          ["RL.FIXEDWINDOW", "rl:all1:{{{k}}}:fw", "1000000", "60000"],
          ["RL.SLIDINGWINDOW", "rl:all1:{{{k}}}:sw", "1000000", "60000"]]),
        ("native", "`RL.ALL` of the same three limits",
         [["RL.ALL", "TOKENBUCKET", "rl:all:{{{k}}}:tb", "1000000", "1", "1000",
           "FIXEDWINDOW", "rl:all:{{{k}}}:fw", "1000000", "60000",
           "SLIDINGWINDOW", "rl:all:{{{k}}}:sw", "1000000", "60000"]]),
    ]),
]
MODES = {16: f"pipelined ({DEPTH} operations per write)", 1: "one command per round trip"}


def load_scripts(port):
    """SCRIPT LOAD of the seeds' scripts: {name: sha}."""
    r = Redis(port)
    try:
        return {name: r.call("SCRIPT", "LOAD", text).decode() for name, text in SCRIPTS.items()}
    finally:
        r.close()


def operation(templates, shas, k, tok="worker"):
    """The commands of one operation on key number k, as argument lists."""
    return [[shas[a[1:]] if a.startswith("@") else a.format(k=f"{k:012d}", tok=tok)
             for a in cmd] for cmd in templates]


def reply_lines(reply):
    """Lines of a RESP2 reply as the server writes it (these rows' replies hold no CR LF)."""
    if isinstance(reply, list):
        return 1 + sum(reply_lines(x) for x in reply)
    return 2 if isinstance(reply, bytes) else 1


def check(op, path, replies):
    """Each row's first operation (on a fresh key) is admitted or granted."""
    first = replies[0]
    if op.startswith("lock"):
        ok = (replies == ["OK", 1]) if path == "seeds" else (isinstance(first, int)
                                                            and replies[1] == 1)
    elif op == "fixed window" and path == "seeds":
        ok = replies == [1, 1]
    else:
        ok = isinstance(first, list) and first[0] == 1
    if not ok or any(isinstance(x, ReplyError) for x in replies):
        raise RuntimeError(f"seeds rows, {op} ({path}): unexpected replies {replies!r}")


class Conn:
    """One client connection driving its own keys' operations over and over: each write is
    one command (round-trip mode) or DEPTH operations, and waits for all its reply lines."""

    def __init__(self, port, ops, lines, depth):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if depth == 1:
            self.writes = [(Redis.encode(cmd), n, 1)
                           for op in ops for cmd, n in zip(op, lines)]
        else:
            self.writes = [(b"".join(Redis.encode(c) for op in ops[i:i + depth] for c in op),
                            sum(lines) * len(ops[i:i + depth]), len(lines) * len(ops[i:i + depth]))
                           for i in range(0, len(ops), depth)]
        self.i = self.waiting = self.commands = 0

    def send(self):
        data, self.waiting, _ = self.writes[self.i]
        self.sock.sendall(data)

    def received(self, data):
        """Counts reply lines; True when the write's replies are all in."""
        self.waiting -= data.count(b"\r\n")
        if self.waiting > 0:
            return False
        self.commands += self.writes[self.i][2]
        self.i = (self.i + 1) % len(self.writes)
        return True


def drive(server, templates, shas, lines, depth, seconds):
    """Runs one row for `seconds`: (commands done, wall s, server CPU s)."""
    conns = [Conn(server.port, [operation(templates, shas, c * KEYS_PER_CLIENT + i)
                                for i in range(KEYS_PER_CLIENT)], lines, depth)
             for c in range(CLIENTS)]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    deadline = t0 + seconds
    for c in conns:
        c.send()
    open_conns = len(conns)
    while open_conns:
        for key, _ in sel.select(timeout=30):
            c = key.data
            data = c.sock.recv(1 << 16)
            if not data:
                raise RuntimeError("seeds rows: the server closed a connection")
            if c.received(data):
                if time.monotonic() < deadline:
                    c.send()
                else:
                    sel.unregister(c.sock)
                    open_conns -= 1
    wall, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
    for c in conns:
        c.sock.close()
    sel.close()
    return sum(c.commands for c in conns), wall, cpu


def measure(server, r, shas):
    """Every row in both modes, REPEATS rounds interleaved; medians per operation."""
    plan = []
    for op, paths in ROWS:
        for path, _, templates in paths:
            r.call("FLUSHALL", "SYNC")
            replies = r.pipeline(operation(templates, shas, 999999))
            check(op, path, replies)
            plan.append((op, path, templates, [reply_lines(x) for x in replies]))
    runs = {}
    for rep in range(REPEATS):
        for depth in PIPELINES:
            for op, path, templates, lines in plan[rep % len(plan):] + plan[:rep % len(plan)]:
                r.call("FLUSHALL", "SYNC")
                errors0 = int(r.info("stats")["total_error_replies"])
                commands, wall, cpu = drive(server, templates, shas, lines, depth,
                                            SEED_SECONDS * TIME_SCALE)
                if int(r.info("stats")["total_error_replies"]) != errors0:
                    raise RuntimeError(f"seeds rows, {op} ({path}): error replies")
                ops = commands / len(templates)
                runs.setdefault((op, path, depth), []).append(dict(
                    ops=ops, ops_s=ops / wall, cpu_us=cpu * 1e6 / ops, commands=commands))
                log(f"  [{rep + 1}/{REPEATS}] seeds -P {depth:<2} {op:<24} {path:<6} "
                    f"{ops / wall:>10,.0f} ops/s {cpu * 1e6 / ops:6.2f} µs CPU/op")
    return {f"{op}|{path}|{depth}": dict(
        ops_s=statistics.median(x["ops_s"] for x in rs),
        cpu_us=statistics.median(x["cpu_us"] for x in rs),
        commands_per_op=len(next(t for o, p, t, _ in plan if o == op and p == path)))
        for (op, path, depth), rs in runs.items()}


def section(data, add):
    """The report's section: what each side sends, and native ÷ seeds per operation."""
    add("## Against the seeds' hand-written patterns")
    add("")
    add("What applications write today, from the pattern library this project grew from "
        "(`../shared/seeds`), against the module's commands for the same job. A seed's "
        "operation is often several commands, which redis-benchmark cannot send, so "
        "`bench/seeds.py` drives both sides itself: "
        f"{CLIENTS} connections, each on its own {KEYS_PER_CLIENT} keys, commands pre-encoded, "
        f"{SEED_SECONDS * TIME_SCALE:g} s per run, {REPEATS} rounds interleaved, FLUSHALL "
        "before each run, error replies counted by the server (none), medians. Two modes: "
        f"{MODES[16]}, and {MODES[1]} (as application code waits for each reply; this Python "
        "client is then the bottleneck, so compare the server CPU). **Server CPU µs per "
        "operation** (the server process's user+system time ÷ operations) is the figure that "
        "does not depend on the client.")
    add("")
    add("| Operation | Path | Commands per operation |")
    add("|---|---|---:|")
    for op, paths in ROWS:
        for path, text, templates in paths:
            add(f"| {op} | {path}: {text} | {len(templates)} |")
    add("")
    add("| Operation | Mode | seeds ops/s | native ops/s | seeds CPU µs/op | native CPU µs/op "
        "| server CPU, seeds ÷ native |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for op, _ in ROWS:
        for depth in PIPELINES:
            s, n = data[f"{op}|seeds|{depth}"], data[f"{op}|native|{depth}"]
            add(f"| {op} | {MODES[depth]} | {s['ops_s']:,.0f} | {n['ops_s']:,.0f} | "
                f"{s['cpu_us']:.2f} | {n['cpu_us']:.2f} | {s['cpu_us'] / n['cpu_us']:.2f}x |")
    add("")
    add("What the module's command buys where it costs more per call: the lock gets a fencing "
        "token (a counter per lock that never goes backwards), re-entry, FIFO waiting on the "
        "server and expiry replicated with absolute times; the limiters read the server's "
        "clock in milliseconds (seed 001 trusts the caller's clock in seconds), reply with "
        "the limit, the remaining units, when to retry and when the key resets, and keep one "
        "key per limiter in a documented layout; the fixed window's key expires with its "
        "window instead of being recreated under a new name each window.")
    add("")
