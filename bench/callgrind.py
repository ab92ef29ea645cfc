#!/usr/bin/env python3
"""Instructions per request, by part, under callgrind (valgrind): where a command's time goes.

    python3 bench/callgrind.py [--production] [COMMAND-ID ...]   (default: every command below)

For each command: starts redis-server (the same configuration as bench.py: no AOF, no RDB)
under `valgrind --tool=callgrind --instr-atstart=no` with the module loaded, warms the keys up
(N_WARM requests, uninstrumented), turns collection on, sends N requests with
`redis-benchmark -c 50 -P 16 -r 10000`, turns it off and dumps. The report divides the
instructions of the whole process, and the inclusive instructions of the functions listed in
PARTS, by N. Needs valgrind (callgrind_control, callgrind_annotate), redis-server and
redis-benchmark. Prints a Markdown table; `--json FILE` also writes the figures.
"""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server import Redis

ROOT = Path(__file__).resolve().parent.parent
MODULE = Path(os.environ.get("PATTERNS_MODULE") or ROOT / "target/release/libredis_patterns.so")
CELL = os.environ.get("CELL_MODULE")  # redis-cell's module, for the CL.THROTTLE peer row
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")  # as bench/config.py reads it
N = int(os.environ.get("PROFILE_N", "2000" if QUICK else "10000"))
N_WARM = 2000 if QUICK else 20000

SESSION_INDEX = "p:sessions:{u}"
SESSION = SESSION_INDEX + ":" + "A" * 22
SESSION_HASH = ["HSET", SESSION, "__idle_ms", "3600000", "__absolute_at", "4102444800000",
                "__index", SESSION_INDEX, "user", "1", "role", "admin", "theme", "dark"]
# Commands run (through redis-cli) before the warm-up of the rows named.
# The index scores the session by its expiry as a read would (now + idle), not by its absolute
# deadline: a score far ahead would never need moving and hide the index's cost.
SESSION_SCORE = str(int(time.time() * 1000) + 3600000)
SETUP = {cid: [SESSION_HASH, ["ZADD", SESSION_INDEX, SESSION_SCORE, SESSION]]
         for cid in ("hgetall", "pexpire", "session_get", "session_count")}


def every_key(command):
    """One command writing keys 0..10000 as redis-benchmark writes __rand_int__ (12 digits):
    `command` is a Lua call on `key` and the value ARGV[1] (100 bytes)."""
    script = f"for i = 0, 9999 do local key = string.format(KEYS[1], i); {command} end"
    return ["EVAL", script, "1", "p:{%012d}", "v" * 100]


# The cache against plain strings: every key written first, so the warm-up and the profile
# read live values (100 bytes; the entries without DELTA: no early refresh, every reply a HIT).
SETUP["get"] = [every_key("redis.call('SET', key, ARGV[1], 'PX', 3600000)")]
SETUP["cache_get"] = [every_key("redis.call('CACHE.SET', key, ARGV[1], 3600000)")]

# Leaderboards (issue 20): boards of 10,000 members `player:<12 digits>` (as redis-benchmark
# writes __rand_int__), 10 per score, written by ZADD (`plain`) or by LB.ADD (`tb`, the
# tie-break keys); the writes move random members of their own board to random scores.
LB_PLAIN, LB_TB = "p:lb:plain", "p:lb:tb"


def every_player(command):
    """One EVAL running `command` (Lua on `key`, `score`, `member`) for the 10,000 players."""
    script = ("for i = 0, 9999 do local member = string.format('player:%012d', i); "
              f"local score = math.floor(i / 10); {command} end")
    return ["EVAL", script, "1", "unused"]


LB_SETUP_PLAIN = every_player(f"redis.call('ZADD', '{LB_PLAIN}', score, member)")
LB_SETUP_TB = every_player(f"redis.call('LB.ADD', '{LB_TB}', score, member)")
LB_COMMANDS = {
    "zrevrank": (MODULE, f"ZREVRANK {LB_PLAIN} player:__rand_int__"),
    "lb_rank": (MODULE, f"LB.RANK {LB_PLAIN} player:__rand_int__"),
    "zrevrange": (MODULE, f"ZREVRANGE {LB_PLAIN} 0 9 WITHSCORES"),
    "lb_top": (MODULE, f"LB.TOP {LB_PLAIN} 10"),
    "zrevrange_page": (MODULE, f"ZREVRANGE {LB_PLAIN} 10 19 WITHSCORES"),
    "lb_page": (MODULE, f"LB.PAGE {LB_PLAIN} 2 10"),
    "lb_around": (MODULE, f"LB.AROUND {LB_PLAIN} player:__rand_int__ 10"),
    "zadd": (MODULE, f"ZADD {LB_PLAIN} __rand_int__ player:__rand_int__"),
    "lb_add": (MODULE, f"LB.ADD {LB_TB} __rand_int__ player:__rand_int__"),
    "zincrby": (MODULE, f"ZINCRBY {LB_PLAIN} 1 player:__rand_int__"),
    "lb_incr": (MODULE, f"LB.INCR {LB_TB} 1 player:__rand_int__"),
    "lb_rank_tb": (MODULE, f"LB.RANK {LB_TB} player:__rand_int__"),
    "lb_top_tb": (MODULE, f"LB.TOP {LB_TB} 10"),
}
SETUP.update({cid: [LB_SETUP_TB if LB_TB in line else LB_SETUP_PLAIN]
              for cid, (_, line) in LB_COMMANDS.items()})

# id -> (module to load or None, command line for redis-benchmark). Under valgrind the server
# runs ~50x slower, so the limiters refill slowly (100 s per token): every key stays alive
# between its requests, as in bench.py, and the profile measures the update of a live limiter.
COMMANDS = {
    "incr": (None, "INCR p:incr:__rand_int__"),
    "set": (None, "SET p:set:__rand_int__ 1764000000000 PXAT 4102444800000"),
    "tokenbucket": (MODULE, "RL.TOKENBUCKET p:tb:__rand_int__ 1000000 1 100000"),
    "fixedwindow": (MODULE, "RL.FIXEDWINDOW p:fw:__rand_int__ 1000000 100000"),
    "slidingwindow": (MODULE, "RL.SLIDINGWINDOW p:sw:__rand_int__ 1000000 100000"),
    "throttle": (MODULE, "CL.THROTTLE p:cl:__rand_int__ 1000000 1 100"),
    # Three limits at once (RL.ALL), against the three commands one by one (the rows above).
    "rl_all": (MODULE, "RL.ALL TOKENBUCKET p:a:{__rand_int__}:tb 1000000 1 100000 "
                       "FIXEDWINDOW p:a:{__rand_int__}:fw 1000000 100000 "
                       "SLIDINGWINDOW p:a:{__rand_int__}:sw 1000000 100000"),
    "cell": ("CELL", "CL.THROTTLE p:cell:__rand_int__ 1000000 1 100"),
    # Sessions: the seeds' two-call read (HGETALL, then PEXPIRE) and SESSION.GET, on one
    # 3-field session (SETUP writes it in the module's documented layout, so its key is known).
    "hgetall": (None, f"HGETALL {SESSION}"),
    "pexpire": (None, f"PEXPIRE {SESSION} 3600000"),
    "session_get": (MODULE, f"SESSION.GET {SESSION}"),
    "session_count": (MODULE, f"SESSION.COUNT {SESSION_INDEX}"),
    # The cache against plain strings: GET and CACHE.GET (HIT) of a 100-byte value, SET ... PX
    # and CACHE.SET (no tag) of one.
    "get": (None, "GET p:{__rand_int__}"),
    "cache_get": (MODULE, "CACHE.GET p:{__rand_int__}"),
    "set_px": (None, f"SET p:setpx:{{__rand_int__}} {'v' * 100} PX 3600000"),
    "cache_set": (MODULE, f"CACHE.SET p:cs:{{__rand_int__}} {'v' * 100} 3600000"),
    **LB_COMMANDS,
}

# The columns `make bench` reports (bench/run.py); the others are for a run by hand.
REPORTED = ["incr", "set", "tokenbucket", "throttle", "cell"]
SESSION_REPORTED = ["hgetall", "pexpire", "session_get"]  # the Sessions section's
CACHE_REPORTED = ["get", "cache_get", "set_px", "cache_set"]  # the Caching section's
LB_REPORTED = list(LB_COMMANDS)  # the Leaderboards section's

# (label, function-name regex): inclusive instructions of each, per request.
PARTS = [
    ("read and parse the request", r"^processInputBuffer$"),
    ("command call (call())", r"^call$"),
    ("the command's body",
     r"^(RedisModuleCommandDispatcher|incrCommand|setCommand|getCommand|hgetallCommand"
     r"|pexpireCommand|zrankCommand|zrevrankCommand|zrevrangeCommand|zaddCommand"
     r"|zincrbyCommand)$"),
    ("  RM_Replicate", r"^RM_Replicate$"),
    ("    command lookup by name", r"^lookupCommandByCString$"),
    ("    argument objects", r"^moduleCreateArgvFromUserFormat$"),
    ("  RM_Call", r"^RM_Call$"),
    ("  RM_OpenKey", r"^RM_OpenKey$"),
    ("  RM_StringDMA", r"^RM_StringDMA$"),
    ("  RM_ScanKey", r"^RM_ScanKey$"),
    # A session's index update: its share grows with the reads that land in a new millisecond
    # (the index moves then), which under valgrind depends on the machine's load.
    ("  the expiring index's update", r"^update_open_index$"),
    ("  RM_Zset*", r"^RM_Zset"),
    ("  RM_Hash*", r"^RM_Hash"),
    ("  RM_KeyType / RM_ValueLength", r"^RM_(KeyType|ValueLength)$"),
    ("  RM_StringTruncate", r"^RM_StringTruncate$"),
    ("  RM_StringSet", r"^RM_StringSet$"),
    ("  RM_SetExpire / RM_SetAbsExpire", r"^RM_Set(Abs)?Expire$"),
    ("  RM_CreateString*", r"^RM_CreateString(FromLongLong)?$"),
    ("  RM_FreeString", r"^RM_FreeString$"),
    ("  RM_CloseKey", r"^RM_CloseKey$"),
    ("  RM_SignalModifiedKey", r"^RM_SignalModifiedKey$"),
    ("  RM_NotifyKeyspaceEvent", r"^RM_NotifyKeyspaceEvent$"),
    ("  RM_ReplyWith*", r"^RM_ReplyWith"),
    ("  RM_Milliseconds", r"^RM_Milliseconds$"),
    ("  ACL check of a derived key", r"^(RM_GetCurrentUserName|RM_GetModuleUserFromUserName|"
     r"RM_ACLCheckKeyPermissions|RM_FreeModuleUser)$"),
    ("  malloc / free", r"^(malloc|free|je_malloc|je_free|zmalloc|zfree)$"),
    ("propagation after the command", r"^(afterCommand|propagatePendingCommands)$"),
    ("  into the AOF buffer", r"^feedAppendOnlyFile$"),
    ("  into the replicas' buffers", r"^replicationFeedSlaves$"),
    ("writing the AOF (before sleeping)", r"^flushAppendOnlyFile$"),
    ("writing replies to the socket", r"^(handleClientsWithPendingWrites|writeToClient)$"),
]


# How redis-cli (not on a terminal) prints an error reply.
SETUP_ERRORS = ("ERR", "WRONGTYPE", "NOSCRIPT", "(error)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
    return out.stdout.strip()


def bench(port, line, n, keyspace=10000):
    cmd = ["redis-benchmark", "-p", str(port), "-c", "50", "-P", "16", "-r", str(keyspace),
           "-n", str(n), "--csv", *line.split()]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "error" in out.lower():
        raise SystemExit(f"error replies: {out}")


class QueueAcks:
    """Requests redis-benchmark cannot make (each names a job id an earlier reply gave):
    QUEUE.ACK of one job each, on a queue whose jobs were pushed and popped before the count
    (100 per QUEUE.POP), sent 16 per round trip. `window`: acked in the order popped (1: each
    ack completes the queue's oldest job), or shuffled within windows of that many jobs (as
    workers finishing out of order)."""

    def __init__(self, window=1):
        self.window = window

    def prepare(self, port, n):
        r = Redis(port)
        try:
            r.pipeline([["QUEUE.PUSH", QUEUE, QUEUE_PAYLOAD]] * n, chunk=100)
            ids = []
            while len(ids) < n:
                jobs = r.call("QUEUE.POP", QUEUE, "g", "c", "COUNT", "100", "LEASE", QUEUE_LEASE)
                ids += [job[0] for job in jobs]
        finally:
            r.close()
        rng = random.Random(7)
        for start in range(0, n, self.window):
            window = ids[start:start + self.window]
            rng.shuffle(window)
            ids[start:start + self.window] = window
        return ids

    def run(self, port, ids):
        replies = request(port, [["QUEUE.ACK", QUEUE, "g", i] for i in ids], chunk=16)
        if replies != [1] * len(ids):
            raise SystemExit(f"QUEUE.ACK did not ack every job: {set(map(repr, replies))}")


class QueueExtends(QueueAcks):
    """QUEUE.EXTEND of one held job each (a worker's heartbeat), jobs pushed and popped before
    the count as QueueAcks has them, 16 per round trip."""

    def run(self, port, ids):
        extend = [["QUEUE.EXTEND", QUEUE, "g", "c", i, QUEUE_LEASE] for i in ids]
        if request(port, extend, chunk=16) != [1] * len(ids):
            raise SystemExit("QUEUE.EXTEND did not extend every job")


class QueuePops:
    """QUEUE.POP of one job each (`COUNT 1`), 16 per round trip, from a queue whose jobs were
    pushed before the count (100 per round trip) and whose group exists (the warm-up made it):
    a worker's steady pop, without the ack."""

    def prepare(self, port, n):
        request(port, [["QUEUE.PUSH", QUEUE, QUEUE_PAYLOAD]] * n, chunk=100)
        return n

    def run(self, port, n):
        pop = ["QUEUE.POP", QUEUE, "g", "c", "COUNT", "1", "LEASE", QUEUE_LEASE]
        replies = request(port, [pop] * n, chunk=16)
        if any(not jobs for jobs in replies):
            raise SystemExit("QUEUE.POP found the queue empty")


class QueueCycle:
    """The whole life of a job as bench/cases/queue.py's *per job* mode makes it: n jobs
    pushed (100 per round trip), then popped one per QUEUE.POP (100 pipelined) and acked one
    per QUEUE.ACK (those 100 pipelined). A "request" is a job: push, pop and ack."""

    def prepare(self, port, n):
        return n

    def run(self, port, n):
        r = Redis(port)
        try:
            r.pipeline([["QUEUE.PUSH", QUEUE, QUEUE_PAYLOAD]] * n, chunk=100)
            done = 0
            while done < n:
                pop = ["QUEUE.POP", QUEUE, "g", "c", "COUNT", "1", "LEASE", QUEUE_LEASE]
                replies = r.pipeline([pop] * min(100, n - done))
                ids = [job[0] for jobs in replies for job in jobs or []]
                acked = r.pipeline([["QUEUE.ACK", QUEUE, "g", i] for i in ids])
                if not ids or acked != [1] * len(ids):
                    raise SystemExit(f"the queue cycle stalled after {done} jobs")
                done += len(ids)
        finally:
            r.close()


QUEUE = "p:queue:{cycle}"
QUEUE_PAYLOAD = "v" * 100
QUEUE_LEASE = "3600000"  # no lease ends under valgrind


def request(port, commands, chunk):
    r = Redis(port)
    try:
        return r.pipeline(commands, chunk=chunk)
    finally:
        r.close()


def profile(module, line, setup=(), warm=N_WARM, n=N, keyspace=10000, production=False,
            driver=None):
    """(total instructions, {function: inclusive instructions}) of `n` requests of `line`.

    `setup`: commands run through redis-cli before the warm-up; `<setup:i>` in `line` stands
    for the reply of the i-th (for example a session key SESSION.CREATE made). `production`:
    the server appends to an AOF (`everysec`) and streams to one attached replica (not under
    valgrind, same module), so the count includes what propagating each write costs.
    `driver` (QueueAcks, QueueCycle): makes the requests instead of redis-benchmark; its
    `prepare(port, n)` runs before the count, its `run(port, prepared)` is counted."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="profile-"))
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
              *(PRODUCTION if production else ["--appendonly", "no"]), "--dir", str(workdir)]
    if module:
        server += ["--loadmodule", str(module)]
    # %p: a child the server forks (the replica's full sync) writes a file of its own.
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                             f"--callgrind-out-file={workdir}/callgrind.out.%p", *server],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    replica = None
    try:
        wait_for_ping(port)
        if production:
            replica = start_replica(module, port, workdir)
        replies = [cli(port, *command) for command in setup]
        failed = [(c, r) for c, r in zip(setup, replies) if r.startswith(SETUP_ERRORS)]
        if failed:
            raise SystemExit(f"setup failed: {failed[0]}")
        for i, reply in enumerate(replies):
            line = line.replace(f"<setup:{i}>", reply)
        if driver:
            if warm:
                driver.run(port, driver.prepare(port, warm))
            prepared = driver.prepare(port, n)
        elif warm:
            bench(port, line, warm, keyspace)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
        if driver:
            driver.run(port, prepared)
        else:
            bench(port, line, n, keyspace)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
    finally:
        if replica:
            cli(replica[1], "SHUTDOWN", "NOSAVE")
            replica[0].wait(timeout=60)
        cli(port, "SHUTDOWN", "NOSAVE")
        proc.wait(timeout=120)
    try:
        return annotate(workdir / f"callgrind.out.{proc.pid}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the profile is megabytes


# bench/peer.py's production configuration, on the profiled primary.
PRODUCTION = ["--appendonly", "yes", "--appendfsync", "everysec"]


def wait_for_ping(port):
    for _ in range(600):
        if cli(port, "PING") == "PONG":
            return
        time.sleep(0.1)
    raise SystemExit(f"no server on port {port}")


def start_replica(module, primary_port, workdir):
    """(process, port) of a replica of the primary, once its link is up."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--dbfilename", "replica.rdb",
            "--replicaof", "127.0.0.1", str(primary_port)]
    if module:
        argv += ["--loadmodule", str(module)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_ping(port)
    for _ in range(1200):
        if "master_link_status:up" in cli(port, "INFO", "replication"):
            return proc, port
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the replica did not sync")


def annotate(path):
    """(total instructions, {function: inclusive instructions})."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                           str(path)], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^([\d,]+).*PROGRAM TOTALS", text, re.M).group(1).replace(",", ""))
    inclusive = {}
    for m in re.finditer(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*?:?([A-Za-z_][\w]*)\s", text, re.M):
        inclusive.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    for m in re.finditer(r"^\s*([\d,]+)\s+\([^)]*\)\s+\*\s+\S+:(\w+)", text, re.M):
        inclusive.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    return total, inclusive


def measure(ids, cell=None, log=lambda msg: print(msg, file=sys.stderr), production=False):
    """{id: {command, n, total, parts}} for the commands `ids` (the peer's with `cell`), on a
    bare server or (`production`) one with an AOF and a replica."""
    figures = {}
    for cid in ids:
        module, line = COMMANDS[cid]
        if module == "CELL":
            if not cell:
                continue
            module = cell
        total, inclusive = profile(module, line, SETUP.get(cid, ()), production=production)
        parts = {}
        for label, pattern in PARTS:
            rx = re.compile(pattern)
            hits = [v for k, v in inclusive.items() if rx.search(k)]
            if hits:
                parts[label] = round(sum(hits) / N)
        figures[cid] = {"command": line, "n": N, "total": round(total / N), "parts": parts}
        log(f"callgrind: {cid}: {round(total / N)} instructions per request")
    return figures


def table(figures):
    """The figures as a Markdown table, a column per command."""
    ids = list(figures)
    lines = ["| Part of one request | " + " | ".join(f"`{figures[i]['command'].split()[0]}`"
                                                   + (" (redis-cell)" if i == "cell" else "")
                                                   for i in ids) + " |",
             "|---|" + "---:|" * len(ids),
             "| **whole request** | " + " | ".join(f"**{figures[i]['total']:,}**" for i in ids)
             + " |"]
    for label, _ in PARTS:
        row = [figures[i]["parts"].get(label) for i in ids]
        if any(v is not None for v in row):
            lines.append(f"| {label} | " + " | ".join("" if v is None else f"{v:,}" for v in row)
                         + " |")
    return lines


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    json_out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    if json_out in args:
        args.remove(json_out)
    figures = measure(args or list(COMMANDS), CELL, production="--production" in sys.argv)
    print("\n".join(table(figures)))
    if json_out:
        Path(json_out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
