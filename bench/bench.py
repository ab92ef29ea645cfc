#!/usr/bin/env python3
"""Benchmark of redis-patterns: native module commands against their Lua twin and INCR.

Run it with `make bench` (builds the module and the Lua twin first), or directly:

    python3 bench/bench.py

What it does, in one run (about 6-8 minutes on 2 cores):

1. Starts its own redis-server on a free loopback port (`--save "" --appendonly no`) with the
   module from $PATTERNS_MODULE (default target/release/libredis_patterns.so), loads
   dist/patterns.lua with `redis-cli FUNCTION LOAD REPLACE` and `SCRIPT LOAD`s every
   dist/scripts/*.lua plus bench/handwritten_tokenbucket.lua (a typical hand-written Lua token
   bucket: hash {tokens, ts}, HMGET/compute/HSET/PEXPIRE). The server is stopped at the end,
   on errors and on SIGINT/SIGTERM too (and gets SIGTERM if this process dies).
2. Memory: for each command (native and Lua twin) and the hand-written script, writes 1000 keys
   with one request each on an empty database and reads MEMORY USAGE (first key, average over
   all keys) and the used_memory growth per key; for EXACT also with a full log (100 entries).
3. Throughput: `redis-benchmark -c 50 -n N -r 10000 -P {16,1} --csv <command>`, keys containing
   __rand_int__ (10,000 keys per row), for INCR (the ceiling), each command natively, via FCALL
   and via EVALSHA, and the hand-written script (arguments: see COMMANDS below; every request is
   admitted and keys stay alive). Each run starts on an emptied database (FLUSHALL SYNC, outside
   the timing). N is sized from a short calibration run so a
   measurement takes about BENCH_SECONDS; every measurement is repeated BENCH_REPEATS times,
   interleaved round-robin, and the median run (by ops/s) is reported. Per run it also records
   the server's commandstats (usec_per_call), the server process's CPU time per op, the
   client's CPU use and the error replies (which must be zero).
4. Sessions (SESSION.*), in the same run and with the same method (see build_session_cases and
   the "Sessions" section it writes): GET, SET, COUNT and CREATE natively, via FCALL and via
   EVALSHA, plus HGETALL of a plain hash as a baseline; GET and SET on one live session per row
   (created with the others before each run, outside the timing), COUNT over 100 indexes
   (-r 100), CREATE on random indexes; MEMORY USAGE of a session and of its index.
5. Leaderboards (LB.*), in the same run and with the same method (see build_leaderboard_cases):
   LB.AROUND (10 entries, DESC, ordinal) and LB.ADD natively, via FCALL and via EVALSHA, plus
   ZREVRANK and ZADD as baselines, on boards of 10,000 members (10 per score) set up before each
   run, outside the timing.
6. Caching (CACHE.*), same method (see build_cache_cases and the "Caching" section): CACHE.GET
   on a hit (10,000 entries set before each run, outside the timing; `BETA 0`, so every reply
   is a HIT) and CACHE.SET with one tag, natively, via FCALL and via EVALSHA, plus HGET and
   SET ... PX as baselines.
7. Locks (LOCK.*), in the same run and with the same method (see build_lock_cases and the
   "Locks" section it writes): LOCK.ACQUIRE of a free lock (a grant with a new fencing token),
   LOCK.ACQUIRE re-entering a held lock, and LOCK.RELEASE of one hold, natively, via FCALL and
   via EVALSHA; an ACQUIRE+RELEASE cycle is reported as a grant plus a release.
8. The peer and the production configuration (bench/peer.py, its own servers): redis-cell
   0.5.0 built from ../shared/peers/ when present (skipped, and said so, otherwise), its
   CL.THROTTLE against INCR, the native commands and the twin, bare and with AOF everysec plus
   one replica, -P 16 and -P 1, rounds interleaved; memory per limiter key; bench/peer.png.
9. Writes BENCHMARKS.md at the repository's root, bench/throughput.png (the chart it embeds) and
   bench/results.json (every raw run).

Environment:
  PATTERNS_MODULE   module path (default target/release/libredis_patterns.so)
  BENCH_SECONDS     target duration of one measurement (default 2)
  BENCH_SESSION_SECONDS  the same for the session rows (default 1.5)
  BENCH_LB_SECONDS  the same for the leaderboard rows (default 1.5)
  BENCH_CACHE_SECONDS  the same for the cache rows (default 1.5)
  BENCH_LOCK_SECONDS  the same for the lock rows (default 1.5)
  BENCH_REPEATS     repetitions of each measurement (default 3)
  BENCH_BUDGET      seconds allowed for all throughput measurements (default 420); N shrinks
                    to fit when the calibration says they would take longer
  BENCH_OUT         report path (default BENCHMARKS.md at the repository's root)
  BENCH_PEER_SECONDS  target duration of one peer/production measurement (default 1.5)
  PEER_TARBALL      redis-cell's source (default ../shared/peers/redis-cell-0.5.0.tar.gz)
  PROFILE_N         requests counted under callgrind per command (default 20000)

Needs python3 (stdlib) and matplotlib, redis-server, redis-cli and redis-benchmark on PATH.
"""

import base64
import csv
import ctypes
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import matplotlib
except ImportError:  # Debian's python3-matplotlib serves /usr/bin/python3, maybe not this one.
    system_python = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system_python) and os.path.exists(
        system_python
    ) and subprocess.run([system_python, "-c", "import matplotlib"],
                         capture_output=True).returncode == 0:
        os.execv(system_python, [system_python, os.path.abspath(__file__), *sys.argv[1:]])
    sys.exit("bench.py needs matplotlib: run `WITH_BENCH=1 bash scripts/install-deps.sh`")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import callgrind  # noqa: E402  (bench/callgrind.py: instructions per request)

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DIST = ROOT / "dist"
MODULE = Path(os.environ.get("PATTERNS_MODULE") or ROOT / "target/release/libredis_patterns.so")
HANDWRITTEN = BENCH_DIR / "handwritten_tokenbucket.lua"
OUT = Path(os.environ.get("BENCH_OUT") or ROOT / "BENCHMARKS.md")
CHART = BENCH_DIR / "throughput.png"
PEER_CHART = BENCH_DIR / "peer.png"
RESULTS = BENCH_DIR / "results.json"

SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BUDGET = float(os.environ.get("BENCH_BUDGET", "420"))

CLIENTS = 50
KEYSPACE = 10000
PIPELINES = (16, 1)
CALIBRATION_N = {16: 50000, 1: 10000}
MEMORY_KEYS = 1000
EXACT_FULL_LOG = 100  # requests per key for the "full log" EXACT memory row (= its limit)
MEMORY_PASSES = 3  # the used_memory growth is the median over passes (allocator noise, Lua GC)

# Targets (pipelined): native >= 0.75x INCR, native >= 4x its Lua twin (FCALL and EVALSHA).
TARGET_VS_INCR = 0.75
TARGET_VS_LUA = 4.0

# id, command as shown, Lua function, throughput arguments, memory arguments.
# Throughput: generous limits, so every request is admitted and writes its state, and keys stay
# alive between requests (the steady state of a limiter in use). The token buckets refill 1 per
# second with a capacity of 10^6: a faster refill (say 10^6 per second) refills a key completely
# between two of its requests (one every ~20 ms here), so it would expire 1 ms after each write
# and the run would measure key creation plus active expiry instead. The fixed window is 10^6
# per 1000 ms (keys expire at each window's end); EXACT uses a realistic 100 per 1000 ms, so the
# log stays small. Memory: hour-scale limits, so the keys outlive the measurement.
COMMANDS = [
    ("tokenbucket", "RL.TOKENBUCKET", "rl_tokenbucket",
     ["1000000", "1", "1000"], ["100", "100", "3600000"]),
    ("fixedwindow", "RL.FIXEDWINDOW", "rl_fixedwindow",
     ["1000000", "1000"], ["100", "86400000"]),
    ("slidingwindow", "RL.SLIDINGWINDOW", "rl_slidingwindow",
     ["1000000", "1000"], ["100", "3600000"]),
    ("slidingwindow_exact", "RL.SLIDINGWINDOW EXACT", "rl_slidingwindow",
     ["100", "1000", "EXACT"], ["100", "3600000", "EXACT"]),
    ("throttle", "CL.THROTTLE", "cl_throttle",
     ["1000000", "1", "1"], ["100", "100", "3600"]),
]
HANDWRITTEN_BENCH_ARGS = ["1000000", "1", "1000"]

# Sessions (SESSION.*), measured in the same run, on the same server, with the same method.
# Before every session run (after its FLUSHALL, outside the timing) SESSIONS sessions are created
# natively over SESSION_INDEXES indexes sessions:{u<i>} and as many through the twin (FCALL,
# ids from os.urandom) over sessions:{t<i>}; <i> is 12 digits, as redis-benchmark writes
# __rand_int__. redis-benchmark cannot pick among existing random session keys, so the GET and
# SET rows hit one live session each (all clients on that key: the first session of index 0,
# which holds SESSIONS / SESSION_INDEXES sessions); the COUNT rows pick the index with
# __rand_int__ and -r SESSION_INDEXES.
SESSION_SECONDS = float(os.environ.get("BENCH_SESSION_SECONDS", "1.5"))
SESSIONS = 1000
SESSION_INDEXES = 100
SESSION_IDLE_MS = "3600000"
SESSION_ABSOLUTE_MS = "7200000"
SESSION_FIELDS = ["user", "{i}", "role", "admin", "theme", "dark"]  # {i}: the session's number
CREATE_KEYSPACE = 10000
# The twin's SESSION.CREATE takes the id from the caller: 22 base64url characters. redis-benchmark
# can make them unique with a fixed 10-character prefix and __rand_int__ (12 digits) drawn from
# 0..2^31-2; the index name carries its own __rand_int__, so a repeated key needs both draws to
# collide (about N^2 / 2^63: none in practice; a collision would be an error reply, and runs
# with any fail). Each of these sessions then gets a fresh index.
CREATE_FRESH_KEYSPACE = 2**31 - 1
TWIN_ID_PREFIX = "benchBENCH"
NATIVE_SESSION = "<native session>"  # replaced by the live session's key before each run
TWIN_SESSION = "<twin session>"
SESSION_MEMORY_INDEX_SIZES = (1, 10, 1000)

# Leaderboards (LB.*), measured in the same run, on the same server, with the same method. Before
# every leaderboard run (after its FLUSHALL, outside the timing) one board per path is written
# with LB_MEMBERS members player:<i> (<i> 12 digits, as redis-benchmark writes __rand_int__),
# LB_TIES members per score: natively (LB.ADD), through the twin (FCALL lb_add) and with plain
# ZADD for the baselines. Reads pick a member with __rand_int__ (-r LB_MEMBERS: always present);
# LB.ADD gives a random member a random score (a new stamp nearly every time).
LB_SECONDS = float(os.environ.get("BENCH_LB_SECONDS", "1.5"))
LB_MEMBERS = 10000
LB_TIES = 10
LB_BOARDS = {"native": "bench:lb:{n}", "FCALL": "bench:lb:{f}", "EVALSHA": "bench:lb:{e}",
             "plain Redis": "bench:lb:{z}"}
HANDWRITTEN_MEMORY_ARGS = ["100", "100", "3600000"]
PATHS = ("native", "FCALL", "EVALSHA")

# Locks (LOCK.*), measured in the same run, on the same server, with the same method.
# redis-benchmark sends one command per request, so an ACQUIRE+RELEASE cycle is measured as its
# two halves in their steady states, and reported as their sum (time per cycle = time per grant
# + time per release):
# - grant: LOCK.ACQUIRE of a free lock, `lock:{g__rand_int__}` with -r 2^31-1, so (nearly) every
#   request takes a fresh lock: it writes the fencing counter, the lease hash and its expiry;
# - release: LOCK.RELEASE of one hold of LOCKS_HELD locks set up before each run (outside the
#   timing) with LOCK_HOLDS holds each, so every request drops a hold and writes;
# - re-entry: LOCK.ACQUIRE by the holder of those locks (one more hold, a fresh TTL).
# A release that frees the lock (DEL, then serving waiters) is not measured separately.
LOCK_SECONDS = float(os.environ.get("BENCH_LOCK_SECONDS", "1.5"))
LOCKS_HELD = 10000
LOCK_HOLDS = 10**9
LOCK_OWNER = "worker"
LOCK_TTL_MS = "60000"
LOCK_FAMILIES = [("l_grant", "LOCK.ACQUIRE (free lock)"), ("l_release", "LOCK.RELEASE"),
                 ("l_reenter", "LOCK.ACQUIRE (re-entry)")]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# A minimal RESP2 client (stdlib only)


class ReplyError(Exception):
    pass


class Redis:
    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply line {line!r}")

    def pipeline(self, commands, chunk=500):
        """Replies in order; errors are returned as ReplyError values, not raised."""
        replies = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            replies.extend(self.read() for _ in part)
        return replies

    def call(self, *args):
        reply = self.pipeline([args])[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def info(self, section):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def commandstats(r):
    stats = {}
    for k, v in r.info("commandstats").items():
        if k.startswith("cmdstat_"):
            stats[k[len("cmdstat_"):]] = dict(
                (a, float(b)) for a, b in (kv.split("=") for kv in v.split(",")))
    return stats


# ---------------------------------------------------------------------------------------------
# The server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """Runs in the child before exec: SIGTERM it when this process dies (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="patterns-bench-")
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(5):
            self.port = free_port()
            self.argv = [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--loadmodule", str(MODULE),
                "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"),
                "--daemonize", "no",
            ]
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    r = Redis(self.port, timeout=2)
                    if r.call("PING") == "PONG":
                        return r
                except (OSError, ReplyError):
                    time.sleep(0.05)
            self.stop()
            if "already in use" not in self.log_tail():  # only a port race is worth a retry
                break
        raise RuntimeError("redis-server did not start; its log:\n" + self.log_tail())

    def log_tail(self):
        try:
            return Path(self.dir, "redis.log").read_text()[-3000:]
        except OSError:
            return "(no log)"

    def cpu_seconds(self):
        """utime + stime of the server process (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_cli(port, *args, stdin_file=None):
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    if stdin_file is not None:
        cmd.append("-x")
    cmd.extend(args)
    with open(stdin_file, "rb") if stdin_file else open(os.devnull, "rb") as stdin:
        p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=60)
    out = p.stdout.strip()
    if p.returncode != 0 or out.startswith("(error)") or out.startswith("ERR"):
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {out} {p.stderr.strip()}")
    return out


# ---------------------------------------------------------------------------------------------
# Cases: one row of the throughput tables each


def build_cases(shas):
    cases = [dict(id="incr", path="INCR", command="INCR", family="ceiling",
                  argv=["INCR", "bench:incr:__rand_int__"], stat="incr", admit=None,
                  kind="int")]
    for cid, name, fn, args, _ in COMMANDS:
        native = name.split()[0]
        exact = "EXACT" in args
        cases.append(dict(id=f"{cid}:native", path="native", command=name, family=cid,
                          argv=[native, f"bench:n:{cid}:__rand_int__", *args],
                          stat=native.lower(), admit="zadd" if exact else None, kind="rl"))
        cases.append(dict(id=f"{cid}:fcall", path="FCALL", command=name, family=cid,
                          argv=["FCALL", fn, "1", f"bench:f:{cid}:__rand_int__", *args],
                          stat="fcall", admit="zadd" if exact else "set", kind="rl"))
        cases.append(dict(id=f"{cid}:evalsha", path="EVALSHA", command=name, family=cid,
                          argv=["EVALSHA", shas[fn], "1", f"bench:e:{cid}:__rand_int__", *args],
                          stat="evalsha", admit="zadd" if exact else "set", kind="rl"))
    cases.append(dict(id="handwritten", path="hand-written Lua (EVALSHA)",
                      command="token bucket (hash)", family="handwritten",
                      argv=["EVALSHA", shas["handwritten"], "1", "bench:h:__rand_int__",
                            *HANDWRITTEN_BENCH_ARGS],
                      stat="evalsha", admit=None, kind="rl"))
    return cases


def twin_id():
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def session_index(prefix, i):
    return f"sessions:{{{prefix}{i:012d}}}"


def build_session_cases(shas):
    """Rows of the Sessions section; `setup` rows get fresh sessions before each run."""
    base = dict(section="sessions", admit=None, seconds=SESSION_SECONDS, keyspace=KEYSPACE)
    cases = []

    def add(cid, path, command, argv, stat, kind, **kw):
        cases.append(dict(base, id=cid, path=path, command=command, family=cid.split(":")[0],
                          argv=argv, stat=stat, kind=kind, **kw))
    add("s_hgetall", "plain Redis", "HGETALL (3-field hash)",
        ["HGETALL", "bench:hash"], "hgetall", "pairs", setup=True)
    for fam, name, fn, args, kind, extra in (
            ("s_get", "SESSION.GET", "session_get", [], "pairs", {}),
            ("s_set", "SESSION.SET", "session_set", ["role", "admin"], "int", {}),
            ("s_count", "SESSION.COUNT", "session_count", [], "int",
             dict(keyspace=SESSION_INDEXES))):
        random_index = fam == "s_count"
        nkey = session_index("u", 0).replace("0" * 12, "__rand_int__") if random_index \
            else NATIVE_SESSION
        tkey = session_index("t", 0).replace("0" * 12, "__rand_int__") if random_index \
            else TWIN_SESSION
        add(f"{fam}:native", "native", name, [name, nkey, *args], name.lower(), kind,
            setup=True, **extra)
        add(f"{fam}:fcall", "FCALL", name, ["FCALL", fn, "1", tkey, *args], "fcall", kind,
            setup=True, **extra)
        add(f"{fam}:evalsha", "EVALSHA", name, ["EVALSHA", shas[fn], "1", tkey, *args],
            "evalsha", kind, setup=True, **extra)
    timeouts = [SESSION_IDLE_MS, SESSION_ABSOLUTE_MS, "user", "1"]
    add("s_create10k:native", "native", "SESSION.CREATE (10k indexes)",
        ["SESSION.CREATE", "sessions:{b__rand_int__}", *timeouts], "session.create", "bulk",
        keyspace=CREATE_KEYSPACE)
    fresh = "sessions:{c__rand_int__}"
    twin_args = [fresh, TWIN_ID_PREFIX + "__rand_int__", *timeouts]
    add("s_create:native", "native", "SESSION.CREATE", ["SESSION.CREATE", fresh, *timeouts],
        "session.create", "bulk", keyspace=CREATE_FRESH_KEYSPACE)
    add("s_create:fcall", "FCALL", "SESSION.CREATE",
        ["FCALL", "session_create", "1", *twin_args], "fcall", "bulk",
        keyspace=CREATE_FRESH_KEYSPACE)
    add("s_create:evalsha", "EVALSHA", "SESSION.CREATE",
        ["EVALSHA", shas["session_create"], "1", *twin_args], "evalsha", "bulk",
        keyspace=CREATE_FRESH_KEYSPACE)
    return cases

# Caching (CACHE.*), same method. Before every GET row (after its FLUSHALL, outside the timing)
# CACHE_ENTRIES entries cache:{<i>} (i as redis-benchmark writes __rand_int__: 12 digits) are
# set natively with an hour's TTL; BETA 0 turns XFetch off, so every GET is a HIT. The twin reads
# the very same entries (the twin's draw and lease arguments are then unused). SET rows write
# 100-byte values with one tag each; redis-benchmark draws each __rand_int__ independently, so
# keys and tags spread over 10,000 names each.
CACHE_SECONDS = float(os.environ.get("BENCH_CACHE_SECONDS", "1.5"))
CACHE_ENTRIES = KEYSPACE
CACHE_TTL_MS = "3600000"
CACHE_VALUE = "v" * 100
CACHE_TWIN_DRAW = "1"
CACHE_TWIN_LEASE = "A" * 22


def cache_key(i):
    return f"cache:{{{i:012d}}}"


def build_cache_cases(shas):
    """Rows of the Caching section; `setup` rows get the entries before each run."""
    base = dict(section="cache", admit=None, seconds=CACHE_SECONDS, keyspace=CACHE_ENTRIES)
    cases = []

    def add(cid, path, command, argv, stat, kind, **kw):
        cases.append(dict(base, id=cid, path=path, command=command, family=cid.split(":")[0],
                          argv=argv, stat=stat, kind=kind, **kw))
    key = "cache:{__rand_int__}"
    add("c_hget", "plain Redis", "HGET (the entry's value)", ["HGET", key, "value"], "hget",
        "bulk", setup=True, setup_fn=setup_cache)
    get_args = ["BETA", "0"]
    add("c_get:native", "native", "CACHE.GET (hit)", ["CACHE.GET", key, *get_args],
        "cache.get", "cache_hit", setup=True, setup_fn=setup_cache)
    twin_get = [key, CACHE_TWIN_DRAW, CACHE_TWIN_LEASE, *get_args]
    add("c_get:fcall", "FCALL", "CACHE.GET (hit)", ["FCALL", "cache_get", "1", *twin_get],
        "fcall", "cache_hit", setup=True, setup_fn=setup_cache)
    add("c_get:evalsha", "EVALSHA", "CACHE.GET (hit)",
        ["EVALSHA", shas["cache_get"], "1", *twin_get], "evalsha", "cache_hit", setup=True,
        setup_fn=setup_cache)
    tag = "tag:{__rand_int__}"
    add("c_plainset", "plain Redis", "SET ... PX", ["SET", key, CACHE_VALUE, "PX", CACHE_TTL_MS],
        "set", "ok")
    add("c_set:native", "native", "CACHE.SET (1 tag)",
        ["CACHE.SET", key, CACHE_VALUE, CACHE_TTL_MS, "DELTA", "100", "TAGS", tag],
        "cache.set", "ok")
    twin_set = [key, tag, CACHE_VALUE, CACHE_TTL_MS, "DELTA", "100"]
    add("c_set:fcall", "FCALL", "CACHE.SET (1 tag)", ["FCALL", "cache_set", "2", *twin_set],
        "fcall", "ok")
    add("c_set:evalsha", "EVALSHA", "CACHE.SET (1 tag)",
        ["EVALSHA", shas["cache_set"], "2", *twin_set], "evalsha", "ok")
    return cases


def setup_cache(r):
    """On an empty database: CACHE_ENTRIES entries, set natively (no placeholders to fill)."""
    cmds = [("CACHE.SET", cache_key(i), CACHE_VALUE, CACHE_TTL_MS, "DELTA", "100")
            for i in range(CACHE_ENTRIES)]
    for c, reply in zip(cmds, r.pipeline(cmds)):
        if reply != "OK":
            raise RuntimeError(f"cache setup: {c} -> {reply!r}")
    return {}


def validate_cache(r, cases):
    """Each cache row once, on freshly set entries, __rand_int__ = 0."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        if case.get("setup"):
            setup_cache(r)
        argv = [a.replace("__rand_int__", "0" * 12) for a in case["argv"]]
        check_reply(case, r.pipeline([argv])[0])


def write_cache(ctx, add):
    """The Caching section: what the rows run, their throughput, native ÷ twin ratios."""
    s = ctx["summary"]
    cases = ctx["cache_cases"]
    add("## Caching")
    add("")
    add(f"Same method as the rate-limiting rows. Before every GET row, {CACHE_ENTRIES:,} entries "
        f"`cache:{{<i>}}` ({len(CACHE_VALUE)}-byte values, TTL {CACHE_TTL_MS} ms) are set "
        "natively, outside the timing; `BETA 0` turns XFetch off so every reply is a HIT, and "
        "the twin reads the same entries. SET rows write one tag per entry.")
    add("")
    add("| Path | Command line | -r |")
    add("|---|---|---:|")
    for c in cases:
        add(f"| {c['path']} | `{shown(c)}` | {c['keyspace']:,} |")
    add("")
    for pipeline in PIPELINES:
        mode = "pipelined (-P 16)" if pipeline > 1 else "unpipelined (-P 1)"
        add(f"### Caching, {mode}")
        add("")
        add_throughput_table(add, cases, s, pipeline)
        add("")
    add("Native ops/s ÷ the twin's and ÷ the plain-Redis baseline's (HGET for GET, SET ... PX "
        "for SET):")
    add("")
    add("| Command | -P | ÷ FCALL | ÷ EVALSHA | ÷ baseline |")
    add("|---|---:|---:|---:|---:|")
    for fam, baseline in (("c_get", "c_hget"), ("c_set", "c_plainset")):
        for p in PIPELINES:
            nat = s[(f"{fam}:native", p)]["rps"]
            add(f"| {fam[2:].upper()} | {p} | {nat / s[(f'{fam}:fcall', p)]['rps']:.2f}x | "
                f"{nat / s[(f'{fam}:evalsha', p)]['rps']:.2f}x | "
                f"{nat / s[(baseline, p)]['rps']:.2f}x |")
    add("")


def setup_sessions(r):
    """On an empty database: SESSIONS native sessions over SESSION_INDEXES indexes, as many
    twin ones (FCALL), and the plain hash of the HGETALL row. Returns the placeholders' keys."""
    def fields(i):
        return [f.format(i=i) for f in SESSION_FIELDS]
    native = [("SESSION.CREATE", session_index("u", i % SESSION_INDEXES), SESSION_IDLE_MS,
               SESSION_ABSOLUTE_MS, *fields(i)) for i in range(SESSIONS)]
    twin = [("FCALL", "session_create", "1", session_index("t", i % SESSION_INDEXES), twin_id(),
             SESSION_IDLE_MS, SESSION_ABSOLUTE_MS, *fields(i)) for i in range(SESSIONS)]
    replies = r.pipeline(native + twin + [("HSET", "bench:hash", *fields(0))])
    for c, reply in zip(native + twin, replies):
        if not isinstance(reply, bytes):
            raise RuntimeError(f"session setup: {c} -> {reply!r}")
    return {NATIVE_SESSION: replies[0].decode(), TWIN_SESSION: replies[SESSIONS].decode()}


def lb_player(i):
    return f"player:{i:012d}"


def build_leaderboard_cases(shas):
    """Rows of the Leaderboards section; every row gets fresh boards before each run."""
    base = dict(section="leaderboards", admit=None, seconds=LB_SECONDS, keyspace=LB_MEMBERS,
                setup=True, setup_fn=setup_leaderboards)
    cases = []

    def add(cid, path, command, argv, stat, kind):
        cases.append(dict(base, id=cid, path=path, command=command, family=cid.split(":")[0],
                          argv=argv, stat=stat, kind=kind))
    player = "player:__rand_int__"
    add("lb_zrevrank", "plain Redis", "ZREVRANK",
        ["ZREVRANK", LB_BOARDS["plain Redis"], player], "zrevrank", "int")
    add("lb_zadd", "plain Redis", "ZADD",
        ["ZADD", LB_BOARDS["plain Redis"], "__rand_int__", player], "zadd", "int")
    for fam, name, fn, args, kind in (
            ("lb_around", "LB.AROUND", "lb_around", [player, "10"], "entries"),
            ("lb_add", "LB.ADD", "lb_add", ["__rand_int__", player], "int")):
        for path, argv0, stat in (("native", [name], name.lower()),
                                  ("FCALL", ["FCALL", fn, "1"], "fcall"),
                                  ("EVALSHA", ["EVALSHA", shas[fn], "1"], "evalsha")):
            add(f"{fam}:{path.lower()}", path, name, [*argv0, LB_BOARDS[path], *args], stat, kind)
    return cases


def setup_leaderboards(r):
    """On an empty database: one board of LB_MEMBERS members per path (LB_TIES per score)."""
    def score(i):
        return i // LB_TIES
    cmds = []
    for i in range(LB_MEMBERS):
        cmds.append(("LB.ADD", LB_BOARDS["native"], score(i), lb_player(i)))
        for path in ("FCALL", "EVALSHA"):
            cmds.append(("FCALL", "lb_add", "1", LB_BOARDS[path], score(i), lb_player(i)))
        cmds.append(("ZADD", LB_BOARDS["plain Redis"], score(i), lb_player(i)))
    for c, reply in zip(cmds, r.pipeline(cmds)):
        if reply != 1:
            raise RuntimeError(f"leaderboard setup: {c} -> {reply!r}")
    return {}


def validate_leaderboards(r, cases):
    """Each leaderboard row once on fresh boards, __rand_int__ = 0: LB.AROUND must return 10
    entries, player 0 among them; LB.ADD (and ZADD) of player 0's own score adds nothing."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        setup_leaderboards(r)
        argv = [a.replace("__rand_int__", "0" * 12) for a in case["argv"]]
        reply = r.pipeline([argv])[0]
        check_reply(case, reply)
        if case["family"] == "lb_around" and lb_player(0).encode() not in [e[1] for e in reply]:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}")
        if case["family"] in ("lb_add", "lb_zadd") and reply != 0:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}")


def check_reply(case, reply):
    if case["kind"] == "int":
        ok = isinstance(reply, int)
    elif case["kind"] == "bulk":
        ok = isinstance(reply, bytes)
    elif case["kind"] == "ok":
        ok = reply == "OK"
    elif case["kind"] == "cache_hit":
        ok = isinstance(reply, list) and len(reply) == 3 and reply[0] == b"HIT"
    elif case["kind"] == "entries":
        ok = isinstance(reply, list) and len(reply) == 10 and all(
            isinstance(e, list) and len(e) == 3 and isinstance(e[0], int) for e in reply)
    elif case["kind"] == "pairs":
        ok = isinstance(reply, list) and len(reply) == len(SESSION_FIELDS) and all(
            isinstance(x, bytes) for x in reply)
    else:
        ok = isinstance(reply, list) and len(reply) == 5 and all(isinstance(x, int) for x in reply)
    if not ok:
        raise RuntimeError(f"{case['id']}: unexpected reply {reply!r} to {case['argv']}")


def validate(r, cases):
    for case in cases:
        if case.get("section") in ("sessions", "leaderboards", "cache", "locks"):
            continue
        argv = [a.replace("__rand_int__", "check") for a in case["argv"]]
        check_reply(case, r.pipeline([argv])[0])


def validate_sessions(r, cases):
    """Each session row once, on freshly set-up sessions, __rand_int__ = 0: COUNT must see the
    index's sessions, GET the session's 3 fields, CREATE a key in the index's slot."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        hot = setup_sessions(r)
        argv = [hot.get(a, a).replace("__rand_int__", "0" * 12) for a in case["argv"]]
        reply = r.pipeline([argv])[0]
        check_reply(case, reply)
        fam = case["family"]
        if fam == "s_count" and reply != SESSIONS // SESSION_INDEXES:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}, expected "
                               f"{SESSIONS // SESSION_INDEXES}")
        if fam.startswith("s_create"):
            index = next(a for a in argv if a.startswith("sessions:{"))
            if not reply.startswith(index.encode() + b":"):
                raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}")
        if fam in ("s_get", "s_set") and r.call("SESSION.COUNT", session_index(
                "u" if case["path"] == "native" else "t", 0)) != SESSIONS // SESSION_INDEXES:
            raise RuntimeError(f"{case['id']}: the index lost sessions")


def build_lock_cases(shas):
    """Rows of the Locks section; `setup` rows get the held locks before each run."""
    base = dict(section="locks", admit=None, seconds=LOCK_SECONDS, kind="int")
    cases = []
    rows = (
        ("l_grant", "LOCK.ACQUIRE", "lock_acquire", "lock:{g__rand_int__}", [LOCK_TTL_MS],
         dict(keyspace=CREATE_FRESH_KEYSPACE)),
        ("l_release", "LOCK.RELEASE", "lock_release", "lock:{__rand_int__}", [],
         dict(keyspace=LOCKS_HELD, setup=True, setup_fn=setup_locks)),
        ("l_reenter", "LOCK.ACQUIRE", "lock_acquire", "lock:{__rand_int__}", [LOCK_TTL_MS],
         dict(keyspace=LOCKS_HELD, setup=True, setup_fn=setup_locks)),
    )
    for fam, name, fn, key, args, extra in rows:
        command = dict(LOCK_FAMILIES)[fam]
        for cid, path, argv, stat in (
                ("native", "native", [name, key, LOCK_OWNER, *args], name.lower()),
                ("fcall", "FCALL", ["FCALL", fn, "1", key, LOCK_OWNER, *args], "fcall"),
                ("evalsha", "EVALSHA", ["EVALSHA", shas[fn], "1", key, LOCK_OWNER, *args],
                 "evalsha")):
            cases.append(dict(base, id=f"{fam}:{cid}", path=path, command=command, family=fam,
                              argv=argv, stat=stat, **extra))
    return cases


def lock_key(i):
    return f"lock:{{{i:012d}}}"


def setup_locks(r):
    """On an empty database: LOCKS_HELD locks held by LOCK_OWNER with LOCK_HOLDS holds each
    (token 1), in the module's layout, for the re-entry and release rows. No placeholders."""
    commands = []
    for i in range(LOCKS_HELD):
        commands.append(("HSET", lock_key(i), "owner", LOCK_OWNER, "token", "1",
                         "holds", str(LOCK_HOLDS)))
        commands.append(("PEXPIRE", lock_key(i), "3600000"))
    for c, reply in zip(commands, r.pipeline(commands)):
        if isinstance(reply, ReplyError):
            raise RuntimeError(f"lock setup: {c} -> {reply!r}")
    return {}


def validate_locks(r, cases):
    """Each lock row once, __rand_int__ = 0: a grant returns token 1, a re-entry the held lock's
    token 1, a release 1 (a hold dropped)."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        if case.get("setup"):
            setup_locks(r)
        argv = [a.replace("__rand_int__", "0" * 12) for a in case["argv"]]
        reply = r.pipeline([argv])[0]
        if reply != 1:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}, expected 1")


def shown(case):
    """The command line as redis-benchmark gets it, with the SHA shortened."""
    argv = list(case["argv"])
    if argv[0] == "EVALSHA":
        argv[1] = argv[1][:10] + "…"
    return " ".join(argv)


# ---------------------------------------------------------------------------------------------
# Throughput


def bench_cmd(port, n, pipeline, argv, keyspace=KEYSPACE):
    return ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(CLIENTS),
            "-n", str(n), "-r", str(keyspace), "-P", str(pipeline), "--csv", *argv]


def run_benchmark(server, r, case, n, pipeline):
    # Every run starts on an empty database: no other row's keys expire (and cost CPU) during
    # it, and the expired_keys counter below belongs to this row alone.
    r.call("FLUSHALL", "SYNC")
    argv = case["argv"]
    if case.get("setup"):  # live sessions or boards, created outside the timing
        hot = case.get("setup_fn", setup_sessions)(r)
        argv = [hot.get(a, a) for a in argv]
    r.call("CONFIG", "RESETSTAT")
    stats0 = r.info("stats")
    rusage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server.cpu_seconds()
    t0 = time.monotonic()
    p = subprocess.run(bench_cmd(server.port, n, pipeline, argv,
                                 case.get("keyspace", KEYSPACE)),
                       capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    cpu1 = server.cpu_seconds()
    rusage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed for {case['id']}: {p.stderr.strip()}")
    rows = [row for row in csv.reader(p.stdout.splitlines()) if row]
    header, values = rows[0], rows[-1]
    if "rps" not in header:
        raise RuntimeError(f"unexpected redis-benchmark output: {p.stdout!r}")
    data = dict(zip(header, values))
    stats = commandstats(r)
    stats1 = r.info("stats")

    def delta(name):
        return int(stats1.get(name, 0)) - int(stats0.get(name, 0))
    result = dict(
        n=n, pipeline=pipeline, rps=float(data["rps"]), wall_s=wall,
        latency_ms={k.replace("_latency_ms", ""): float(v) for k, v in data.items()
                    if k.endswith("_latency_ms")},
        server_cpu_us_per_op=(cpu1 - cpu0) * 1e6 / n,
        server_cpu_share=(cpu1 - cpu0) / wall,
        client_cpu_share=((rusage1.ru_utime + rusage1.ru_stime)
                          - (rusage0.ru_utime + rusage0.ru_stime)) / wall,
        usec_per_call=stats.get(case["stat"], {}).get("usec_per_call"),
        calls=stats.get(case["stat"], {}).get("calls"),
        error_replies=delta("total_error_replies"),
        expired_per_op=(delta("expired_keys") + delta("evicted_keys")) / n,
    )
    if case["admit"]:
        result["admitted"] = stats.get(case["admit"], {}).get("calls", 0.0) / n
    return result


def sized(n):
    """n rounded to two significant digits."""
    digits = len(str(int(n))) - 2
    return max(int(round(n / 10 ** digits) * 10 ** digits), 10000) if digits > 0 else 10000


def measure_throughput(server, r, cases):
    log(f"calibrating {len(cases)} rows x {len(PIPELINES)} modes ...")
    plan = {}
    for pipeline in PIPELINES:
        for case in cases:
            res = run_benchmark(server, r, case, CALIBRATION_N[pipeline], pipeline)
            plan[(case["id"], pipeline)] = res["rps"]
    seconds = {c["id"]: c.get("seconds", SECONDS) for c in cases}
    expected = REPEATS * sum(seconds[k[0]] for k in plan)
    scale = min(1.0, BUDGET / expected)
    sizes = {k: sized(rps * seconds[k[0]] * scale) for k, rps in plan.items()}
    est = REPEATS * sum(sizes[k] / plan[k] for k in plan)
    log(f"plan: {len(plan)} measurements x {REPEATS} repeats, about {est:.0f} s "
        f"(scale {scale:.2f})")

    runs = {k: [] for k in plan}
    for rep in range(REPEATS):
        for pipeline in PIPELINES:
            shift = rep % len(cases)  # rotate the order so no row always runs at the same point
            for case in cases[shift:] + cases[:shift]:
                key = (case["id"], pipeline)
                res = run_benchmark(server, r, case, sizes[key], pipeline)
                if res["error_replies"]:
                    raise RuntimeError(f"{case['id']}: {res['error_replies']} error replies")
                runs[key].append(res)
                log(f"  [{rep + 1}/{REPEATS}] -P {pipeline:<2} {case['path']:<8} "
                    f"{case['command']:<28} {res['rps']:>12,.0f} ops/s  {res['wall_s']:.1f} s")
    return runs


def summarize(runs):
    out = {}
    for key, rs in runs.items():
        ordered = sorted(rs, key=lambda x: x["rps"])
        med = ordered[(len(ordered) - 1) // 2] if len(ordered) % 2 else None
        rps = statistics.median(x["rps"] for x in rs)
        if med is None:  # even count: the run closest to the median
            med = min(rs, key=lambda x: abs(x["rps"] - rps))
        out[key] = dict(
            rps=rps, min=ordered[0]["rps"], max=ordered[-1]["rps"],
            p50=med["latency_ms"].get("p50"), p99=med["latency_ms"].get("p99"),
            usec_per_call=statistics.median(x["usec_per_call"] or 0 for x in rs),
            cpu_us=statistics.median(x["server_cpu_us_per_op"] for x in rs),
            client_cpu=statistics.median(x["client_cpu_share"] for x in rs),
            server_cpu=statistics.median(x["server_cpu_share"] for x in rs),
            admitted=(statistics.median(x["admitted"] for x in rs)
                      if "admitted" in rs[0] else None),
            expired_per_op=statistics.median(x["expired_per_op"] for x in rs),
            n=rs[0]["n"],
        )
    return out


# ---------------------------------------------------------------------------------------------
# Memory


def memory_stats_clients(r):
    reply = r.call("MEMORY", "STATS")
    stats = dict(zip(reply[0::2], reply[1::2]))
    return stats.get(b"clients.normal", 0)


def measure_memory_row(r, label, make_command, requests_per_key=1, check=None):
    """Writes MEMORY_KEYS keys (requests_per_key requests each) on an empty database, in
    MEMORY_PASSES passes; MEMORY USAGE is read in the last one."""
    keys = [f"mem:{i:06d}" for i in range(MEMORY_KEYS)]
    commands = [make_command(k) for k in keys for _ in range(requests_per_key)]
    deltas = []
    for _ in range(MEMORY_PASSES):
        r.call("FLUSHALL", "SYNC")
        used0 = int(r.info("memory")["used_memory"]) - memory_stats_clients(r)
        replies = r.pipeline(commands)
        used1 = int(r.info("memory")["used_memory"]) - memory_stats_clients(r)
        deltas.append((used1 - used0) / len(keys))
        for c, reply in zip(commands, replies):
            if isinstance(reply, ReplyError) or not isinstance(reply, list) or len(reply) != 5:
                raise RuntimeError(f"memory: {label}: {c} -> {reply!r}")
    # CL.THROTTLE replies "limited" (0 = allowed); the RL commands "allowed" (1).
    admitted = sum(1 for c, reply in zip(commands, replies)
                   if reply[0] == (0 if "cl_throttle" in c or "CL.THROTTLE" in c else 1))
    usage = r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", "0") for k in keys])
    present = [u for u in usage if isinstance(u, int)]
    if len(present) != len(keys) or r.call("DBSIZE") != len(keys):
        raise RuntimeError(f"memory: {label}: only {len(present)} of {len(keys)} keys exist")
    info = dict(
        label=label, first=usage[0], avg=sum(present) / len(present),
        delta_per_key=statistics.median(deltas), delta_passes=deltas,
        type=r.call("TYPE", keys[0]),
        encoding=r.call("OBJECT", "ENCODING", keys[0]).decode(),
        admitted=admitted / len(commands),
        requests_per_key=requests_per_key,
    )
    if check:
        check(r, keys, info)
    r.call("FLUSHALL", "SYNC")
    return info


def command_maker(path, native, fn, args):
    """A function from a key to the command that drives it natively or through FCALL."""
    if path == "native":
        return lambda k: (native, k, *args)
    return lambda k: ("FCALL", fn, "1", k, *args)


def measure_memory(r, shas):
    rows = []
    for cid, name, fn, _, args in COMMANDS:
        native = name.split()[0]
        for path in ("native", "FCALL"):
            make = command_maker(path, native, fn, args)
            row = measure_memory_row(r, f"{name} {' '.join(a for a in args if a != 'EXACT')}",
                                     make)
            row.update(family=cid, path=path, command=name, args=args)
            rows.append(row)
            log(f"  memory {path:<7} {name:<24} {row['first']} B "
                f"(avg {row['avg']:.1f}, keyspace {row['delta_per_key']:.1f})")
        if "EXACT" in args:
            for path in ("native", "FCALL"):
                make = command_maker(path, native, fn, args)

                def check(r, keys, info):
                    info["log_entries"] = r.call("ZCARD", keys[0])
                row = measure_memory_row(r, f"{name} (full log)", make,
                                         requests_per_key=EXACT_FULL_LOG, check=check)
                row.update(family=cid + "_full", path=path, command=name + " (full log)",
                           args=args)
                rows.append(row)
                log(f"  memory {path:<7} {name + ' full':<24} {row['first']} B "
                    f"({row['log_entries']} entries)")

    def make_hw(k):
        return ("EVALSHA", shas["handwritten"], "1", k, *HANDWRITTEN_MEMORY_ARGS)
    row = measure_memory_row(r, "hand-written token bucket", make_hw)
    row.update(family="handwritten", path="hand-written Lua", command="token bucket (hash)",
               args=HANDWRITTEN_MEMORY_ARGS)
    rows.append(row)
    log(f"  memory hand-written token bucket {row['first']} B")
    return rows


def measure_session_memory(r):
    """MEMORY USAGE of a session hash (3 user fields) made natively and through the twin, a
    plain hash with the same 3 fields, the keyspace cost per session (session + its share of the
    index), and the index's cost per member at several sizes."""
    out = dict(sessions=[], indexes=[])

    def fields(i):
        return [f.format(i=i) for f in SESSION_FIELDS]
    for path in ("native", "FCALL"):
        deltas = []
        for _ in range(MEMORY_PASSES):
            r.call("FLUSHALL", "SYNC")
            used0 = int(r.info("memory")["used_memory"]) - memory_stats_clients(r)
            if path == "native":
                cmds = [("SESSION.CREATE", session_index("m", i % SESSION_INDEXES),
                         SESSION_IDLE_MS, SESSION_ABSOLUTE_MS, *fields(i))
                        for i in range(SESSIONS)]
            else:
                cmds = [("FCALL", "session_create", "1", session_index("m", i % SESSION_INDEXES),
                         twin_id(), SESSION_IDLE_MS, SESSION_ABSOLUTE_MS, *fields(i))
                        for i in range(SESSIONS)]
            keys = r.pipeline(cmds)
            used1 = int(r.info("memory")["used_memory"]) - memory_stats_clients(r)
            if not all(isinstance(k, bytes) for k in keys):
                raise RuntimeError(f"session memory: {path}: {keys[:3]!r}")
            deltas.append((used1 - used0) / SESSIONS)
        usage = r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", "0") for k in keys])
        idx = r.pipeline([("MEMORY", "USAGE", session_index("m", i), "SAMPLES", "0")
                          for i in range(SESSION_INDEXES)])
        out["sessions"].append(dict(
            path=path, first=usage[0], avg=sum(usage) / len(usage),
            hlen=r.call("HLEN", keys[0]), encoding=r.call("OBJECT", "ENCODING", keys[0]).decode(),
            key_len=len(keys[0]), delta_per_session=statistics.median(deltas),
            delta_passes=deltas, index_avg=sum(idx) / len(idx),
            index_members=SESSIONS // SESSION_INDEXES))
        log(f"  memory session {path:<7} {usage[0]} B, keyspace {statistics.median(deltas):.1f} "
            f"B/session")
    r.call("FLUSHALL", "SYNC")
    out["zset_max_listpack"] = int(r.call("CONFIG", "GET", "zset-max-listpack-entries")[1])
    r.call("HSET", "bench:hash", *fields(0))
    out["plain_hash"] = dict(usage=r.call("MEMORY", "USAGE", "bench:hash", "SAMPLES", "0"),
                             encoding=r.call("OBJECT", "ENCODING", "bench:hash").decode())
    for size in SESSION_MEMORY_INDEX_SIZES:
        index = session_index("z", size)
        r.pipeline([("SESSION.CREATE", index, SESSION_IDLE_MS, SESSION_ABSOLUTE_MS, *fields(i))
                    for i in range(size)])
        members = r.call("ZCARD", index)
        if members != size:
            raise RuntimeError(f"session memory: index of {size}: {members} members")
        out["indexes"].append(dict(
            members=size, usage=r.call("MEMORY", "USAGE", index, "SAMPLES", "0"),
            encoding=r.call("OBJECT", "ENCODING", index).decode()))
    one = out["indexes"][0]["usage"]
    for row in out["indexes"]:
        row["per_member"] = row["usage"] / row["members"]
        row["marginal"] = (row["usage"] - one) / (row["members"] - 1) if row["members"] > 1 \
            else None
        log(f"  memory index of {row['members']}: {row['usage']} B ({row['encoding']})")
    r.call("FLUSHALL", "SYNC")
    return out


# ---------------------------------------------------------------------------------------------
# Report


def machine_info():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return dict(nproc=os.cpu_count(), cpu=model, mem_gib=mem_kb / 1024 / 1024,
                kernel=platform.release(), arch=platform.machine())


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


def git_describe():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "src", "core", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True).stdout.strip()
        return (head or "no commit") + (" (with uncommitted changes in src/core)" if dirty else "")
    except OSError:
        return "unknown"


def fmt_rps(x):
    return f"{x:,.0f}"


def pct_range(values):
    lo, hi = min(values) * 100, max(values) * 100
    return f"{lo:.1f}%" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f}%"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


SESSION_FAMILIES = [("s_get", "SESSION.GET"), ("s_set", "SESSION.SET"),
                    ("s_count", "SESSION.COUNT"), ("s_create", "SESSION.CREATE")]


def chart(summary, cases, session_cases):
    fams = [(cid, name) for cid, name, *_ in COMMANDS]
    colors = {"native": "#2a7ab0", "FCALL": "#e08a2c", "EVALSHA": "#c44e52"}
    fig, grid = plt.subplots(2, 2, figsize=(18, 9.5), gridspec_kw=dict(width_ratios=[11, 8]))
    chart_sessions(summary, grid[:, 1], colors)
    axes = grid[:, 0]
    for ax, pipeline in zip(axes, PIPELINES):
        width = 0.26
        for i, path in enumerate(PATHS):
            xs, ys, lo, hi = [], [], [], []
            for j, (cid, _) in enumerate(fams):
                s = summary[(f"{cid}:{path.lower()}", pipeline)]
                xs.append(j + (i - 1) * width)
                ys.append(s["rps"] / 1000)
                lo.append((s["rps"] - s["min"]) / 1000)
                hi.append((s["max"] - s["rps"]) / 1000)
            bars = ax.bar(xs, ys, width, label=path, color=colors[path],
                          yerr=[lo, hi], capsize=3, error_kw=dict(lw=0.8, ecolor="#333"))
            for b, y, h in zip(bars, ys, hi):
                ax.annotate(f"{y:,.0f}", (b.get_x() + b.get_width() / 2, y + h), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
        incr = summary[("incr", pipeline)]["rps"] / 1000
        hw = summary[("handwritten", pipeline)]["rps"] / 1000
        ax.axhline(incr, color="#333", ls="--", lw=1, label=f"INCR (ceiling) {incr:,.0f}k")
        if pipeline == 16:
            ax.axhline(incr * TARGET_VS_INCR, color="#666", ls=":", lw=1,
                       label=f"target {TARGET_VS_INCR}x INCR")
        ax.axhline(hw, color="#6a3d9a", ls="-.", lw=1,
                   label=f"hand-written Lua token bucket {hw:,.0f}k")
        ax.set_xticks(range(len(fams)))
        ax.set_xticklabels([n for _, n in fams])
        ax.set_ylabel("thousand ops/s")
        mode = "pipelined, -P 16" if pipeline > 1 else "unpipelined, -P 1"
        ax.set_title(f"Throughput ({mode}; -c {CLIENTS}, {KEYSPACE:,} keys; "
                     f"median of {REPEATS}, bars: min-max)", fontsize=10)
        ax.set_ylim(0, max(incr, max(summary[(c["id"], pipeline)]["max"]
                                     for c in cases if c["id"] != "incr") / 1000) * 1.3)
        ax.legend(fontsize=8, loc="upper center", ncol=3, framealpha=0.95)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("redis-patterns: native module vs its Lua twin (FCALL / EVALSHA); "
                 "left: rate limiting, right: sessions")
    fig.tight_layout()
    fig.savefig(CHART, dpi=110)
    plt.close(fig)


def chart_sessions(summary, axes, colors):
    for ax, pipeline in zip(axes, PIPELINES):
        width = 0.26
        top = 0
        for i, path in enumerate(PATHS):
            xs, ys, lo, hi = [], [], [], []
            for j, (fam, _) in enumerate(SESSION_FAMILIES):
                s = summary[(f"{fam}:{path.lower()}", pipeline)]
                xs.append(j + (i - 1) * width)
                ys.append(s["rps"] / 1000)
                lo.append((s["rps"] - s["min"]) / 1000)
                hi.append((s["max"] - s["rps"]) / 1000)
                top = max(top, s["max"] / 1000)
            bars = ax.bar(xs, ys, width, label=path, color=colors[path],
                          yerr=[lo, hi], capsize=3, error_kw=dict(lw=0.8, ecolor="#333"))
            for b, y, h in zip(bars, ys, hi):
                ax.annotate(f"{y:,.0f}", (b.get_x() + b.get_width() / 2, y + h), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
        hg = summary[("s_hgetall", pipeline)]["rps"] / 1000
        c10 = summary[("s_create10k:native", pipeline)]["rps"] / 1000
        ax.axhline(hg, color="#333", ls="--", lw=1, label=f"HGETALL of a 3-field hash {hg:,.0f}k")
        ax.axhline(c10, color="#2a7ab0", ls=":", lw=1,
                   label=f"native CREATE, 10k indexes {c10:,.0f}k")
        ax.set_xticks(range(len(SESSION_FAMILIES)))
        ax.set_xticklabels([n for _, n in SESSION_FAMILIES])
        ax.set_ylabel("thousand ops/s")
        mode = "-P 16" if pipeline > 1 else "-P 1"
        ax.set_title(f"Sessions ({mode}; -c {CLIENTS}; GET/SET: one live session, COUNT: "
                     f"{SESSION_INDEXES} indexes, CREATE: a fresh index each)", fontsize=9)
        ax.set_ylim(0, max(hg, top) * 1.3)
        ax.legend(fontsize=8, loc="upper right", ncol=2, framealpha=0.95)
        ax.grid(axis="y", alpha=0.3)


def where_the_time_goes(ctx, add):
    """The callgrind breakdown (bench/callgrind.py), or why it is missing."""
    add("### Where the time goes")
    add("")
    figures = ctx["callgrind"]
    if not figures:
        add("(Skipped: valgrind is not installed; `WITH_BENCH=1 bash scripts/install-deps.sh` "
            "installs it.)")
        return
    n = next(iter(figures.values()))["n"]
    add("Instructions per request under callgrind (bench/callgrind.py, run by this script: "
        "redis-server 7.0 under `valgrind --tool=callgrind`, the keys warmed up first, then "
        f"{n:,} requests of `redis-benchmark -c 50 -P 16 -r 10000` counted; each part is the "
        "inclusive count of the server functions named, divided by the requests; parts "
        "overlap, as nested calls do). Columns: INCR, the native commands, and redis-cell's "
        "CL.THROTTLE when it was built.")
    add("")
    for line in callgrind.table(figures):
        add(line)
    add("")
    add("""Reading it:

- Effect replication is the price of exactness (a replica or an AOF replay must never redo the
  decision with its own clock): `RM_Replicate` of `SET key value PXAT t` looks the command up
  by name on every call (Redis 7.0 splits the name for subcommands and hashes it), then makes
  the argument vector. The module passes the key as the caller's own string and `PXAT` as a
  string made once and retained (a reference count instead of an allocation, a copy and a
  free); only the value and the time are new strings.
- Other ways to replicate, measured the same way and rejected: `RM_Call("SET", "!...")`, which
  writes, int-encodes the value and replicates in one call, costs about 6,000 more
  instructions per request than the key API plus `RM_Replicate` (SET's own parsing, its
  argument rewrite for propagation, the call machinery; and the next read of an int-encoded
  value through `RM_StringDMA` first converts it to a raw string); `RM_ReplicateVerbatim`,
  what redis-cell does, is not exact: the replica runs CL.THROTTLE again with its own clock.
- The reply (an array of 5 integers) goes through one module API call per element.
- INCR's request is a third of the module's: the gap is the key API (open, read in place,
  write in place, expiry), the replication and the five-integer reply, each a few hundred to a
  few thousand instructions, not the limiter's own arithmetic.""")


def write_sessions(ctx, add):
    s = ctx["summary"]
    cases = ctx["session_cases"]
    sr = ctx["session_ratios"]
    mem = ctx["session_memory"]
    per_index = SESSIONS // SESSION_INDEXES
    add("## Sessions")
    add("")
    add(f"The `SESSION.*` family, measured in the same run on the same server with the same "
        f"method: `redis-benchmark -c {CLIENTS} -P <16|1>`, N sized for about "
        f"{SESSION_SECONDS:g} s per measurement, {REPEATS} runs interleaved round-robin with the "
        "rate-limiting rows, median shown, error replies checked (none). Before every session "
        "run, after its `FLUSHALL` and outside the timing, bench.py creates "
        f"{SESSIONS:,} sessions natively (`SESSION.CREATE sessions:{{u<i>}} {SESSION_IDLE_MS} "
        f"{SESSION_ABSOLUTE_MS} user <n> role admin theme dark`, {SESSION_INDEXES} indexes, "
        f"{per_index} sessions each) and {SESSIONS:,} through the twin (`FCALL session_create 1 "
        "sessions:{t<i>} <id> ...`, ids of 22 base64url characters from `os.urandom(16)`) for "
        "the FCALL/EVALSHA rows; `<i>` is written with 12 digits, as redis-benchmark writes "
        "`__rand_int__`.")
    add("")
    add("How the rows pick their keys (redis-benchmark can only substitute `__rand_int__`, "
        "never pick among existing random session keys):")
    add("")
    add(f"- **GET, SET**: one live session per row (the first session of index 0, whose index "
        f"holds {per_index} sessions); all {CLIENTS} clients hit that one key, so its hash and "
        "its index stay hot in the CPU caches. That is the best case for the key lookups; the "
        "per-command work (reading the hash, sliding the TTL, pruning and updating the index, "
        "fixing the index's TTL) is done in full every time. SET writes an existing field "
        "(`role admin`, reply 0), so the hash keeps its size.")
    add(f"- **COUNT**: `__rand_int__` picks the index, `-r {SESSION_INDEXES}`: every request "
        f"counts one of the {SESSION_INDEXES} indexes ({per_index} live sessions each).")
    add(f"- **CREATE**: the native row `SESSION.CREATE sessions:{{b__rand_int__}} ...` with "
        f"`-r {CREATE_KEYSPACE}` spreads the new sessions over {CREATE_KEYSPACE:,} indexes, "
        "which grow during the run. The twin takes the id from the caller (22 base64url "
        "characters, unique), which redis-benchmark cannot draw at random; it can make one "
        f"from a fixed 10-character prefix and `__rand_int__` (12 digits): "
        f"`FCALL session_create 1 sessions:{{c__rand_int__}} {TWIN_ID_PREFIX}__rand_int__ ...` "
        f"with `-r {CREATE_FRESH_KEYSPACE}`. Each `__rand_int__` is drawn separately, so a key "
        "repeats only when both the index's and the id's draws repeat (none in practice; a "
        "repeat would be an `ERR session id already in use` error reply and fail the run), and "
        "every session gets a fresh index. These ids are not secret (they carry 31 random bits, "
        "not 128) and are only good for measuring; the twin's cost does not depend on them. "
        "The CREATE row of the ratios compares the three paths on that same shape, with the "
        "native command on `sessions:{c__rand_int__}` and the same `-r`.")
    add("- **Baseline**: `HGETALL` of a plain hash with the same 3 fields (what a client "
        "would send without the module, minus sliding the TTL and the index).")
    add("")
    add("The session binding slides a session's TTL, prunes its index and fixes the index's "
        "TTL through the module's key API, replicating each change as the command that makes "
        "it; HGETALL, HSET, RENAME, DEL and ZREM still run as Redis commands through "
        "`RedisModule_Call`, which is slower than the rate-limiting family's direct key API. "
        "The Lua twin runs the same steps through `redis.call`. The rate-limit targets above "
        "do not apply to this family.")
    add("")
    add("Chart: the right half of `bench/throughput.png` (above).")
    add("")
    add("| Path | Command line | -r | N (-P 16) | N (-P 1) |")
    add("|---|---|---:|---:|---:|")
    for c in cases:
        keyspace = f"{c['keyspace']:,}" if any("__rand_int__" in a for a in c["argv"]) else "—"
        add(f"| {c['path']} | `{shown(c)}` | {keyspace} | {s[(c['id'], 16)]['n']:,} | "
            f"{s[(c['id'], 1)]['n']:,} |")
    add("")
    for pipeline in PIPELINES:
        mode = "pipelined (-P 16)" if pipeline > 1 else "unpipelined (-P 1)"
        add(f"### Sessions, {mode}")
        add("")
        add_throughput_table(add, cases, s, pipeline)
        add("")
    for p in PIPELINES:
        srv = [s[(c["id"], p)]["server_cpu"] for c in cases]
        cli = [s[(c["id"], p)]["client_cpu"] for c in cases]
        spread = [(s[(c["id"], p)]["max"] - s[(c["id"], p)]["min"]) / s[(c["id"], p)]["rps"]
                  for c in cases]
        add(f"- -P {p}: the server process used {min(srv) * 100:.0f}–{max(srv) * 100:.0f}% of a "
            f"core during these runs, redis-benchmark {min(cli) * 100:.0f}–"
            f"{max(cli) * 100:.0f}%; min–max spreads {min(spread) * 100:.0f}–"
            f"{max(spread) * 100:.0f}% of the median.")
    churn = max(s[(c["id"], p)]["expired_per_op"] for c in cases for p in PIPELINES)
    add(f"- Keys expired during a session run: at most {churn:.4f} per request (sessions live "
        "for an hour).")
    add("")
    add("### Sessions, ratios")
    add("")
    add("Native ops/s divided by the Lua twin's (medians); the server-CPU columns divide the "
        "twin's server CPU µs/op by the native command's (higher: native is cheaper), which "
        "does not depend on whether client or server saturates first. Last column: native "
        "ops/s ÷ the `HGETALL` baseline's.")
    add("")
    add("| Command | Mode | native / FCALL | native / EVALSHA | server CPU, FCALL / native | "
        "server CPU, EVALSHA / native | native / HGETALL |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for fam, name in SESSION_FAMILIES:
        for pipeline in PIPELINES:
            x = sr[(fam, pipeline)]
            add(f"| {name} | -P {pipeline} | {fmt_ratio(x['fcall'])} | "
                f"{fmt_ratio(x['evalsha'])} | {fmt_ratio(x['cpu_fcall'])} | "
                f"{fmt_ratio(x['cpu_evalsha'])} | {fmt_ratio(x['hgetall'])} |")
    add("")
    add("### Sessions, memory")
    add("")
    add(f"A session hash holds its 3 user fields (`user <n> role admin theme dark`) plus the 3 "
        "reserved ones (`__idle_ms`, `__absolute_at`, `__index`). `MEMORY USAGE key SAMPLES 0`; "
        f"*keyspace cost / session* is the growth of `used_memory` (minus client buffers) over "
        f"{SESSIONS:,} sessions in {SESSION_INDEXES} indexes divided by {SESSIONS:,} (median of "
        f"{MEMORY_PASSES} passes): the hash, its key, its main and expires dictionary entries, "
        f"and its share of the index ({per_index} members per index here).")
    add("")
    add("| Session made by | Key length | Fields (HLEN) | Encoding | MEMORY USAGE (first) | "
        "MEMORY USAGE (avg) | index MEMORY USAGE (avg) | keyspace cost / session |")
    add("|---|---:|---:|---|---:|---:|---:|---:|")
    for row in mem["sessions"]:
        add(f"| {row['path']} | {row['key_len']} B | {row['hlen']} | {row['encoding']} | "
            f"{row['first']} B | {row['avg']:.1f} B | {row['index_avg']:.1f} B "
            f"({row['index_members']} members) | {row['delta_per_session']:.1f} B |")
    ph = mem["plain_hash"]
    add(f"| plain hash, same 3 fields (`bench:hash`) | 10 B | 3 | {ph['encoding']} | "
        f"{ph['usage']} B | | | |")
    add("")
    add("The index (a sorted set of session keys scored by expiry) per member, from "
        "`MEMORY USAGE` of one index with 1, 10 and 1,000 sessions (keys like "
        f"`sessions:{{z000000000010}}:<22-character id>`, {len(session_index('z', 0)) + 23} B); "
        "*marginal* is (usage − usage with 1 member) ÷ (members − 1). Past "
        f"`zset-max-listpack-entries` ({mem['zset_max_listpack']}) members the index turns from "
        "a listpack into a skiplist plus dictionary, and each member costs about twice as much:")
    add("")
    add("| Members | Encoding | MEMORY USAGE | per member | marginal per member |")
    add("|---:|---|---:|---:|---:|")
    for row in mem["indexes"]:
        marg = "" if row["marginal"] is None else f"{row['marginal']:.1f} B"
        add(f"| {row['members']:,} | {row['encoding']} | {row['usage']:,} B | "
            f"{row['per_member']:.1f} B | {marg} |")
    add("")


def write_leaderboards(ctx, add):
    s = ctx["summary"]
    add("## Leaderboards")
    add("")
    add(f"The `LB.*` family, measured in the same run on the same server with the same method "
        f"({CLIENTS} clients, {LB_SECONDS:g} s per measurement, {REPEATS} runs interleaved "
        "round-robin, median shown, error replies checked: none). Before every leaderboard run "
        f"(after its FLUSHALL, outside the timing) each path gets its own board of "
        f"{LB_MEMBERS:,} members `player:<i>` with {LB_TIES} members per score, written by "
        "`LB.ADD` (natively, or `FCALL lb_add` for the twin's rows) or by `ZADD` for the "
        "baselines. `LB.AROUND <board> player:__rand_int__ 10` reads 10 ranked entries around "
        f"a random member (DESC, ORDINAL: the tie-break's order key, reversed, with the score "
        f"groups cut by the window's edges re-read); `LB.ADD <board> __rand_int__ "
        f"player:__rand_int__` moves a random member to a random score (new stamp, old and "
        f"new score groups updated). `-r {LB_MEMBERS}`.")
    add("")
    for p in PIPELINES:
        add(f"### Leaderboards, -P {p}")
        add("")
        add_throughput_table(add, ctx["lb_cases"], s, p)
        add("")


def lock_ratios_of(summary):
    """Per lock row and mode: native vs the twin, and the ACQUIRE+RELEASE cycle (a grant plus a
    release: cycles/s = 1 / (1/grants/s + 1/releases/s)) per path."""
    out = {}
    for fam, _ in LOCK_FAMILIES:
        for p in PIPELINES:
            nat = summary[(f"{fam}:native", p)]
            fc, ev = summary[(f"{fam}:fcall", p)], summary[(f"{fam}:evalsha", p)]
            out[(fam, p)] = dict(
                fcall=nat["rps"] / fc["rps"], evalsha=nat["rps"] / ev["rps"],
                cpu_fcall=fc["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
                cpu_evalsha=ev["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
            )
    for p in PIPELINES:
        out[("cycle", p)] = {
            path: 1 / (1 / summary[(f"l_grant:{path}", p)]["rps"]
                       + 1 / summary[(f"l_release:{path}", p)]["rps"])
            for path in ("native", "fcall", "evalsha")}
    return out


def write_locks(ctx, add):
    s = ctx["summary"]
    cases = ctx["lock_cases"]
    lr = ctx["lock_ratios"]
    add("## Locks")
    add("")
    add(f"The `LOCK.*` family, measured in the same run on the same server with the same "
        f"method: `redis-benchmark -c {CLIENTS} -P <16|1>`, N sized for about "
        f"{LOCK_SECONDS:g} s per measurement, {REPEATS} runs interleaved round-robin with the "
        "other rows, median shown, error replies checked (none). redis-benchmark sends one "
        "command per request, so an acquire+release cycle is measured as its two halves:")
    add("")
    add(f"- **Grant** (`LOCK.ACQUIRE` of a free lock): `lock:{{g__rand_int__}}` with "
        f"`-r {CREATE_FRESH_KEYSPACE}`, so nearly every request takes a fresh lock and writes its "
        "fencing counter, its lease hash and the lease's expiry.")
    add(f"- **Release** (`LOCK.RELEASE`): before each run, after its `FLUSHALL` and outside the "
        f"timing, bench.py sets up {LOCKS_HELD:,} locks `lock:{{<i>}}` held by `{LOCK_OWNER}` "
        f"with {LOCK_HOLDS:,} holds each (`<i>` with 12 digits, as redis-benchmark writes "
        f"`__rand_int__`); every request drops one hold (`-r {LOCKS_HELD}`). A release that "
        "frees the lock (`DEL`, then serving any waiters) is not measured on its own.")
    add("- **Re-entry** (`LOCK.ACQUIRE` by the holder of those locks): one more hold and a fresh "
        "TTL per request.")
    add("- **Cycle**: a grant plus a release, cycles/s = 1 / (1 / grants/s + 1 / releases/s), "
        "derived from the medians (not measured as one command). Waiting (`WAIT`) is not "
        "benchmarked: a blocked client's time is the holder's.")
    add("")
    add("| Path | Command line | -r | N (-P 16) | N (-P 1) |")
    add("|---|---|---:|---:|---:|")
    for c in cases:
        add(f"| {c['path']} | `{shown(c)}` | {c['keyspace']:,} | {s[(c['id'], 16)]['n']:,} | "
            f"{s[(c['id'], 1)]['n']:,} |")
    add("")
    for pipeline in PIPELINES:
        mode = "pipelined (-P 16)" if pipeline > 1 else "unpipelined (-P 1)"
        add(f"### Locks, {mode}")
        add("")
        add_throughput_table(add, cases, s, pipeline)
        add("")
    add("### Locks, the acquire+release cycle and ratios")
    add("")
    add("| Mode | cycles/s native | cycles/s FCALL | cycles/s EVALSHA |")
    add("|---|---:|---:|---:|")
    for p in PIPELINES:
        x = lr[("cycle", p)]
        add(f"| -P {p} | {fmt_rps(x['native'])} | {fmt_rps(x['fcall'])} | "
            f"{fmt_rps(x['evalsha'])} |")
    add("")
    add("Native ops/s divided by the Lua twin's (medians), and the twin's server CPU µs/op "
        "divided by the native command's:")
    add("")
    add("| Command | Mode | native / FCALL | native / EVALSHA | server CPU, FCALL / native | "
        "server CPU, EVALSHA / native |")
    add("|---|---|---:|---:|---:|---:|")
    for fam, name in LOCK_FAMILIES:
        for pipeline in PIPELINES:
            x = lr[(fam, pipeline)]
            add(f"| {name} | -P {pipeline} | {fmt_ratio(x['fcall'])} | "
                f"{fmt_ratio(x['evalsha'])} | {fmt_ratio(x['cpu_fcall'])} | "
                f"{fmt_ratio(x['cpu_evalsha'])} |")
    add("")


def add_throughput_table(add, cases, s, pipeline):
    """The table of ops/s, latency and server time per row, for one pipelining mode."""
    add("| Path | Command | ops/s (median) | min–max | p50 ms | p99 ms | "
        "server µs/call | server CPU µs/op |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        x = s[(c["id"], pipeline)]
        add(f"| {c['path']} | {c['command']} | {fmt_rps(x['rps'])} | "
            f"{fmt_rps(x['min'])}–{fmt_rps(x['max'])} | {x['p50']:.3f} | {x['p99']:.3f} | "
            f"{x['usec_per_call']:.2f} | {x['cpu_us']:.2f} |")


def write_report(ctx):
    s = ctx["summary"]
    cases = ctx["cases"]
    m = ctx["machine"]
    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(f"Generated by `make bench` (`bench/bench.py`) on {ctx['date']}; every number here comes "
        f"from that run (total {ctx['runtime_s'] / 60:.1f} min). Rerun `make bench` to refresh.")
    add("")
    add("## Setup")
    add("")
    add(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB RAM, "
        f"Linux {m['kernel']} {m['arch']}. Load average (1/5/15 min) at start "
        f"{' / '.join(ctx['load_start'])}, at end {' / '.join(ctx['load_end'])}. "
        "The machine is shared: server, client and neighbours compete for the same cores.")
    add(f"- Server: redis-server {ctx['server_version']} started by bench.py: "
        f"`redis-server --port <free port> --bind 127.0.0.1 --save \"\" --appendonly no "
        f"--loadmodule {ctx['module_rel']}` (module sha256 {ctx['module_sha']}, "
        f"source {ctx['git']}).")
    add("- Lua twin: `dist/patterns.lua` loaded with `redis-cli FUNCTION LOAD REPLACE` (FCALL); "
        "`dist/scripts/<function>.lua` loaded with `SCRIPT LOAD` (EVALSHA). Hand-written "
        "reference: `bench/handwritten_tokenbucket.lua` (hash `tokens`/`ts`, "
        "HMGET → compute → HSET → PEXPIRE), via EVALSHA.")
    add(f"- Client: {ctx['bench_version']}, on the same machine, one process: "
        f"`redis-benchmark -h 127.0.0.1 -p <port> -c {CLIENTS} -n <N> -r {KEYSPACE} "
        f"-P <16|1> --csv <command>`. Keys contain `__rand_int__`, so each row spreads over "
        f"{KEYSPACE:,} keys (and rows use different key prefixes). N is sized from a "
        f"calibration run so one measurement takes about {SECONDS:g} s (scale "
        f"{ctx['scale']:.2f}); each measurement ran {REPEATS} times, interleaved round-robin "
        "over all rows, and the tables show the median run (by ops/s), its p50/p99 latency, "
        "and the min–max spread of ops/s. Every run was checked for error replies (none). "
        "This describes the rate-limiting rows; the session rows (section Sessions) run in the "
        "same rounds, with their own keys and measurement length.")
    add("")
    add("Arguments: limits generous enough that every request is admitted and writes state "
        "(EXACT: a realistic 100 per 1000 ms). The token buckets (and CL.THROTTLE) get a "
        "capacity of 10^6 and a refill of 1 per second: with a fast refill, such as 10^6 per "
        "second, a key is full again long before its next request (each key gets one every "
        "~20 ms here) and expires 1 ms after each write, so the run would measure key creation "
        "and active expiry rather than the update of a live limiter.")
    add("")
    add("Commands as sent (the EVALSHA SHA shortened here):")
    add("")
    add("| Path | Command line | N (-P 16) | N (-P 1) |")
    add("|---|---|---:|---:|")
    for c in cases:
        add(f"| {c['path']} | `{shown(c)}` | {s[(c['id'], 16)]['n']:,} | "
            f"{s[(c['id'], 1)]['n']:,} |")
    add("")

    # Targets
    add("## Targets")
    add("")
    add(f"Pipelined (-P 16), where round trips are amortised and the server's work per "
        f"command dominates: native ≥ "
        f"{TARGET_VS_INCR}x INCR, and native ≥ {TARGET_VS_LUA:g}x its Lua twin (checked "
        "against both FCALL and EVALSHA).")
    add("")
    add(f"| Command | native / INCR | ≥ {TARGET_VS_INCR}x | native / FCALL | "
        f"≥ {TARGET_VS_LUA:g}x | native / EVALSHA | ≥ {TARGET_VS_LUA:g}x |")
    add("|---|---:|:---:|---:|:---:|---:|:---:|")
    met_all = True
    for cid, name, *_ in COMMANDS:
        r = ctx["ratios"][(cid, 16)]
        ok1 = r["incr"] >= TARGET_VS_INCR
        ok2 = r["fcall"] >= TARGET_VS_LUA
        ok3 = r["evalsha"] >= TARGET_VS_LUA
        met_all &= ok1 and ok2 and ok3
        add(f"| {name} | {fmt_ratio(r['incr'])} | {'met' if ok1 else '**missed**'} | "
            f"{fmt_ratio(r['fcall'])} | {'met' if ok2 else '**missed**'} | "
            f"{fmt_ratio(r['evalsha'])} | {'met' if ok3 else '**missed**'} |")
    add("")
    add("All targets met." if met_all else "Not all targets are met (see **missed**).")
    add("")
    where_the_time_goes(ctx, add)
    add("")

    # Throughput tables
    for pipeline in PIPELINES:
        mode = "pipelined (-P 16)" if pipeline > 1 else "unpipelined (-P 1)"
        add(f"## Throughput, {mode}")
        add("")
        if pipeline == 16:
            add("![Throughput per command and path](bench/throughput.png)")
            add("")
        add_throughput_table(add, cases, s, pipeline)
        add("")
    add("*server µs/call*: the command's `usec_per_call` in `INFO commandstats` (time inside the "
        "command; for FCALL/EVALSHA the whole script). *server CPU µs/op*: the redis-server "
        "process's user+system CPU time over the run divided by N (includes parsing, networking "
        "and the event loop).")
    add("")

    # Ratios
    add("## Ratios")
    add("")
    add("Native throughput divided by the other path's throughput (ops/s, medians). The last "
        "column compares server CPU per op instead (INCR's CPU µs/op ÷ the command's), which "
        "does not depend on whether the client or the server saturates first.")
    add("")
    add("| Command | Mode | native / INCR | native / FCALL | native / EVALSHA | "
        "native / hand-written | server-CPU efficiency vs INCR |")
    add("|---|---|---:|---:|---:|---:|---:|")
    for cid, name, *_ in COMMANDS:
        for pipeline in PIPELINES:
            r = ctx["ratios"][(cid, pipeline)]
            hw = fmt_ratio(r["handwritten"]) if cid == "tokenbucket" else ""
            add(f"| {name} | -P {pipeline} | {fmt_ratio(r['incr'])} | {fmt_ratio(r['fcall'])} | "
                f"{fmt_ratio(r['evalsha'])} | {hw} | {fmt_ratio(r['cpu_vs_incr'])} |")
    add("")

    # Memory
    add("## Memory per idle limiter key")
    add("")
    add(f"On an emptied database, {MEMORY_KEYS:,} keys written with one request each "
        "(the full-log rows: as many requests as the limit, all admitted). `MEMORY USAGE key "
        "SAMPLES 0` of the first key and its average over all keys; *keyspace cost* is the "
        f"growth of `used_memory` (minus client buffers) divided by {MEMORY_KEYS:,} (median of "
        f"{MEMORY_PASSES} passes), which adds the main and expires dictionary entries and the "
        "hash table's buckets. Hour-scale limits are used here so the keys outlive the "
        "measurement.")
    add("")
    add("| State | Path | Arguments | Type / encoding | MEMORY USAGE (first) | "
        "MEMORY USAGE (avg) | keyspace cost / key |")
    add("|---|---|---|---|---:|---:|---:|")
    for row in ctx["memory"]:
        extra = f", {row['log_entries']} entries" if "log_entries" in row else ""
        add(f"| {row['command']} | {row['path']} | `{' '.join(row['args'])}` | "
            f"{row['type']} / {row['encoding']}{extra} | {row['first']} B | {row['avg']:.1f} B | "
            f"{row['delta_per_key']:.1f} B |")
    add("")

    write_sessions(ctx, add)
    write_leaderboards(ctx, add)
    write_cache(ctx, add)
    write_locks(ctx, add)

    # Notes
    import peer
    peer.section(ctx["peer"], add, PEER_CHART.relative_to(ROOT))
    add("## Notes")
    add("")
    adm = [(c, p, s[(c["id"], p)]["admitted"]) for c in cases for p in PIPELINES
           if s[(c["id"], p)]["admitted"] is not None]
    exact = [x for x in adm if x[0]["family"] == "slidingwindow_exact"]
    lua = [x for x in adm if x[0]["family"] != "slidingwindow_exact"]
    add("- Admission. The throughput limits are generous, so the non-EXACT rows admit every "
        "request and write state each time: the server counts the Lua twins' SET calls, and "
        f"they admitted {pct_range([x[2] for x in lua])} of requests (the native commands write through the key API, which commandstats does "
        "not count; their arguments are the same). EXACT (100 per 1000 ms; a request is "
        "admitted when it adds a ZADD): "
        + ", ".join(f"{c['path']} -P {p} {a * 100:.1f}%" for c, p, a in exact)
        + ". Each row spreads its rate over "
        f"{KEYSPACE:,} keys, so a key sees about ops/s ÷ {KEYSPACE:,} requests per second "
        "and the log's length (the cost of its sorted-set operations) grows with the row's "
        "own throughput.")
    churn = [(c, p, s[(c["id"], p)]["expired_per_op"]) for c in cases for p in PIPELINES]
    add("- Key churn (keys expired during a run per request, from `INFO stats`): "
        + ", ".join(f"{c['path']} {c['command']} -P {p}: {e:.4f}" for c, p, e in churn
                    if e >= 0.0005)
        + "; every other row below 0.0005. RL.FIXEDWINDOW's keys end with their window, so "
        "each is recreated once a second; the others stay alive while they are used."
        if any(e >= 0.0005 for *_, e in churn) else
        "- Key churn: fewer than 0.0005 keys expired per request in every row (`INFO stats`), "
        "so the runs measure updates of live keys.")
    add(f"- Each run starts on an empty database (`FLUSHALL SYNC`, outside the timing), so its "
        f"first {KEYSPACE:,} or so requests create their keys; the smallest N is "
        f"{min(x['n'] for x in s.values()) / KEYSPACE:.0f}x that.")
    for p in PIPELINES:
        srv = [s[(c["id"], p)]["server_cpu"] for c in cases]
        cli = [s[(c["id"], p)]["client_cpu"] for c in cases]
        add(f"- CPU, -P {p}: the server process used {min(srv) * 100:.0f}–{max(srv) * 100:.0f}% "
            f"of a core during the runs (CPU time ÷ wall time, medians per row), redis-benchmark "
            f"{min(cli) * 100:.0f}–{max(cli) * 100:.0f}%.")
    bound = [f"{c['path']} {c['command']} -P {p} ({s[(c['id'], p)]['client_cpu'] * 100:.0f}%)"
             for p in PIPELINES for c in cases if s[(c["id"], p)]["client_cpu"] > 0.9]
    if bound:
        add("  Client-bound (redis-benchmark above 90% of a core), so the client rather than the "
            "server set the pace: " + ", ".join(bound) + ".")
    add("  Where neither is near 100%, the rest went to round trips or to other processes on the "
        "shared machine, so ops/s are what this machine gave at the time; the server CPU µs/op "
        "column (and the server-CPU ratio) is the steadier basis for comparing commands.")
    noisy = [(c, p, (s[(c["id"], p)]["max"] - s[(c["id"], p)]["min"]) / s[(c["id"], p)]["rps"])
             for c in cases for p in PIPELINES]
    worst = max(noisy, key=lambda x: x[2])
    add(f"- Noise: the widest min–max spread is {worst[2] * 100:.0f}% of the median "
        f"({worst[0]['path']} {worst[0]['command']} -P {worst[1]}); the median of the "
        f"spreads is {statistics.median(x[2] for x in noisy) * 100:.0f}%.")
    add("- Unpipelined, each request costs a network round trip through the kernel and the "
        "client and server share two cores, so all rows converge; the pipelined table is the "
        "one that shows the commands' own cost.")
    add("- Raw runs (every repetition, all latency columns): `bench/results.json`.")
    add("")
    OUT.write_text("\n".join(lines))


# ---------------------------------------------------------------------------------------------


def main():
    import peer  # bench/peer.py imports this file, so it is loaded once this one is
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = loadavg()
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found on PATH (run `make deps`)")
    if not MODULE.exists():
        sys.exit(f"module {MODULE} not found: run `make build`")
    scripts = sorted((DIST / "scripts").glob("*.lua"))
    if not (DIST / "patterns.lua").exists() or not scripts:
        sys.exit("dist/patterns.lua or dist/scripts/*.lua missing: run `make lua`")

    server = Server()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        r = server.start()
        port = server.port
        log(f"redis-server pid {server.proc.pid} on 127.0.0.1:{port}")
        name = redis_cli(port, "FUNCTION", "LOAD", "REPLACE", stdin_file=DIST / "patterns.lua")
        log(f"FUNCTION LOAD REPLACE -> {name}")
        shas = {}
        for path in scripts + [HANDWRITTEN]:
            sha = redis_cli(port, "SCRIPT", "LOAD", stdin_file=path)
            if sha != hashlib.sha1(path.read_bytes()).hexdigest():
                raise RuntimeError(f"SCRIPT LOAD {path}: unexpected SHA {sha}")
            shas["handwritten" if path == HANDWRITTEN else path.stem] = sha
        cases = build_cases(shas)
        session_cases = build_session_cases(shas)
        cache_cases = build_cache_cases(shas)
        lock_cases = build_lock_cases(shas)
        validate(r, cases)
        validate_sessions(r, session_cases)
        lb_cases = build_leaderboard_cases(shas)
        validate_leaderboards(r, lb_cases)
        validate_cache(r, cache_cases)
        validate_locks(r, lock_cases)
        r.call("FLUSHALL", "SYNC")

        log("memory ...")
        memory = measure_memory(r, shas)
        session_memory = measure_session_memory(r)

        log("throughput ...")
        runs = measure_throughput(server, r, cases + session_cases + lb_cases + cache_cases
                                  + lock_cases)
        summary = summarize(runs)
        server_version = r.info("server")["redis_version"]
        r.close()
    finally:
        server.cleanup()

    ratios = {}
    for cid, *_ in COMMANDS:
        for p in PIPELINES:
            nat = summary[(f"{cid}:native", p)]
            ratios[(cid, p)] = dict(
                incr=nat["rps"] / summary[("incr", p)]["rps"],
                fcall=nat["rps"] / summary[(f"{cid}:fcall", p)]["rps"],
                evalsha=nat["rps"] / summary[(f"{cid}:evalsha", p)]["rps"],
                handwritten=nat["rps"] / summary[("handwritten", p)]["rps"],
                cpu_vs_incr=(summary[("incr", p)]["cpu_us"] / nat["cpu_us"]
                             if nat["cpu_us"] else None),
            )
    session_ratios = {}
    for fam in ("s_get", "s_set", "s_count", "s_create"):
        for p in PIPELINES:
            nat = summary[(f"{fam}:native", p)]
            fc, ev = summary[(f"{fam}:fcall", p)], summary[(f"{fam}:evalsha", p)]
            session_ratios[(fam, p)] = dict(
                fcall=nat["rps"] / fc["rps"], evalsha=nat["rps"] / ev["rps"],
                cpu_fcall=fc["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
                cpu_evalsha=ev["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
                hgetall=nat["rps"] / summary[("s_hgetall", p)]["rps"],
            )
    lock_ratios = lock_ratios_of(summary)
    log("peer and production configuration ...")
    peer_data = peer.measure(MODULE)
    peer.chart(peer_data, PEER_CHART)
    if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
        log("callgrind ...")
        profiled = callgrind.measure(["incr", "tokenbucket", "throttle", "cell"],
                                     peer_data["cell"], log)
    else:
        profiled = None
    bench_version = subprocess.run(["redis-benchmark", "--version"], capture_output=True,
                                   text=True).stdout.strip() or "redis-benchmark"
    try:
        module_rel = str(MODULE.resolve().relative_to(ROOT))
    except ValueError:
        module_rel = str(MODULE)
    ctx = dict(
        date=date, machine=machine_info(), load_start=load_start, load_end=loadavg(),
        server_version=server_version, bench_version=bench_version, git=git_describe(),
        module_rel=module_rel,
        module_sha=hashlib.sha256(MODULE.read_bytes()).hexdigest()[:12],
        cases=cases, summary=summary, ratios=ratios, memory=memory,
        session_cases=session_cases, session_ratios=session_ratios,
        session_memory=session_memory, lb_cases=lb_cases, cache_cases=cache_cases,
        lock_cases=lock_cases, lock_ratios=lock_ratios, peer=peer_data, callgrind=profiled,
        scale=min(1.0, BUDGET / (REPEATS * sum(c.get("seconds", SECONDS)
                                               for c in cases + session_cases + lb_cases
                                               + cache_cases + lock_cases
                                               for _ in PIPELINES))),
        runtime_s=time.monotonic() - started,
    )
    chart(summary, cases, session_cases)
    write_report(ctx)
    RESULTS.write_text(json.dumps(dict(
        date=date, machine=ctx["machine"], server_version=server_version,
        clients=CLIENTS, keyspace=KEYSPACE, repeats=REPEATS,
        cases=[{k: v for k, v in c.items()}
               for c in cases + session_cases + lb_cases + cache_cases + lock_cases],
        runs={f"{k[0]}@P{k[1]}": v for k, v in runs.items()},
        summary={f"{k[0]}@P{k[1]}": v for k, v in summary.items()},
        ratios={f"{k[0]}@P{k[1]}": v for k, v in ratios.items()},
        session_ratios={f"{k[0]}@P{k[1]}": v for k, v in session_ratios.items()},
        lock_ratios={f"{k[0]}@P{k[1]}": v for k, v in lock_ratios.items()},
        memory=memory, session_memory=session_memory, runtime_s=ctx["runtime_s"],
        peer=dict(skipped=peer_data["skipped"], memory=peer_data["memory"],
                  runs={f"{k[0]}:{k[1]}@P{k[2]}": v for k, v in peer_data["runs"].items()}),
    ), indent=1, default=str))
    log(f"wrote {OUT}, {CHART} and {RESULTS} in {ctx['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
