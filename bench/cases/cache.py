"""Cache rows (CACHE.*): CACHE.GET on a hit and CACHE.SET with one tag, natively and through the
twin, CACHE.SET without a tag natively (one write, as the baseline's), GET and SET ... PX of the
same values as baselines, and CACHE.INVALIDATE's worst case.
"""

import os

from config import KEYSPACE
from cases.common import check_reply, row_adder


# Caching (CACHE.*), same method. Before every GET row (after its FLUSHALL, outside the timing)
# CACHE_ENTRIES entries cache:{<i>} (i as redis-benchmark writes __rand_int__: 12 digits) are
# set natively with an hour's TTL, and as many plain strings plain:{<i>} with the same values and
# TTL (SET ... PX, for the GET baseline); BETA 0 turns XFetch off, so every GET is a HIT. The twin
# reads the very same entries (the twin's draw and lease arguments are then unused). SET rows write
# 100-byte values with one tag each (two writes: the entry and the tag's set), and one native row
# without a tag (one write, as SET ... PX makes); redis-benchmark draws each __rand_int__
# independently, so keys and tags spread over 10,000 names each.
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
    add = row_adder(cases, base)
    key = "cache:{__rand_int__}"
    add("c_plainget", "plain Redis", "GET (a SET ... PX value)", ["GET", "plain:{__rand_int__}"],
        "get", "bulk", setup=True, setup_fn=setup_cache)
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
    add("c_set_notag:native", "native", "CACHE.SET (no tag)",
        ["CACHE.SET", key, CACHE_VALUE, CACHE_TTL_MS, "DELTA", "100"], "cache.set", "ok")
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
    """On an empty database: CACHE_ENTRIES entries, set natively (no placeholders to fill), and
    as many plain strings holding the same values."""
    cmds = [("CACHE.SET", cache_key(i), CACHE_VALUE, CACHE_TTL_MS, "DELTA", "100")
            for i in range(CACHE_ENTRIES)]
    cmds += [("SET", f"plain:{{{i:012d}}}", CACHE_VALUE, "PX", CACHE_TTL_MS)
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


# Memory per entry against SET ... PX of the same value (issue 19's goal: at most 1.3x), and
# CACHE.INVALIDATE's worst case: one call on a tag listing INVALIDATE_KEYS entries, timed by the
# server (INFO commandstats' usec for the command, so the client's reading of the reply is out).
MEMORY_VALUES = (100, 1024)
MEMORY_GOAL = 1.3
INVALIDATE_KEYS = (10_000, 100_000)


def measure_cache_memory(r):
    """{value size: (SET ... PX bytes, CACHE.SET bytes)}: MEMORY USAGE of one key each."""
    out = {}
    for size in MEMORY_VALUES:
        r.call("FLUSHALL", "SYNC")
        value = "v" * size
        r.call("SET", "plain:{m}", value, "PX", CACHE_TTL_MS)
        r.call("CACHE.SET", "cache:{m}", value, CACHE_TTL_MS)
        out[size] = (r.call("MEMORY", "USAGE", "plain:{m}"),
                     r.call("MEMORY", "USAGE", "cache:{m}"))
    r.call("FLUSHALL", "SYNC")
    return out


def measure_invalidate(r):
    """{keys: ms}: the server's time for one CACHE.INVALIDATE of a tag listing `keys` entries."""
    out = {}
    for n in INVALIDATE_KEYS:
        r.call("FLUSHALL", "SYNC")
        cmds = [("CACHE.SET", f"inv:{{t}}:{i}", CACHE_VALUE, CACHE_TTL_MS, "TAGS", "tag:{t}")
                for i in range(n)]
        for c, reply in zip(cmds, r.pipeline(cmds)):
            if reply != "OK":
                raise RuntimeError(f"invalidate setup: {c} -> {reply!r}")
        r.call("CONFIG", "RESETSTAT")
        deleted = r.call("CACHE.INVALIDATE", "tag:{t}")
        if deleted != n:
            raise RuntimeError(f"CACHE.INVALIDATE deleted {deleted} of {n}")
        stats = r.info("commandstats")["cmdstat_cache.invalidate"]
        out[n] = int(dict(kv.split("=") for kv in stats.split(","))["usec"]) / 1000
    r.call("FLUSHALL", "SYNC")
    return out
