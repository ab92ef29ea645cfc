"""Session rows (SESSION.*): GET, SET, COUNT and CREATE natively and through the twin, HGETALL
as a baseline, and the sessions set up before each run.
"""

import base64
import os

from config import KEYSPACE
from cases.common import check_reply, row_adder


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
# SESSION.CREATE ... MAX CAP over CAP_KEYSPACE indexes: after the first CAP sessions of an index,
# every create also destroys its least recently used session.
CAP = 3
CAP_KEYSPACE = 1000
# SESSION.DESTROYALL's worst case: one index of DESTROYALL_SESSIONS sessions, timed by SLOWLOG.
DESTROYALL_SESSIONS = 100000
DESTROYALL_ROUNDS = 3


def twin_id():
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def session_index(prefix, i):
    return f"sessions:{{{prefix}{i:012d}}}"


def build_session_cases(shas):
    """Rows of the Sessions section; `setup` rows get fresh sessions before each run."""
    base = dict(section="sessions", admit=None, seconds=SESSION_SECONDS, keyspace=KEYSPACE)
    cases = []
    add = row_adder(cases, base)
    add("s_hgetall", "plain Redis", "HGETALL (3-field hash)",
        ["HGETALL", "bench:hash"], "hgetall", "pairs", setup=True)
    add("s_pexpire", "plain Redis", "PEXPIRE (3-field hash)",
        ["PEXPIRE", "bench:hash", SESSION_IDLE_MS], "pexpire", "int", setup=True)
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
    add("s_createmax:native", "native", f"SESSION.CREATE MAX {CAP}",
        ["SESSION.CREATE", "sessions:{m__rand_int__}", "MAX", str(CAP), *timeouts],
        "session.create", "bulk", keyspace=CAP_KEYSPACE)
    add("s_create:fcall", "FCALL", "SESSION.CREATE",
        ["FCALL", "session_create", "1", *twin_args], "fcall", "bulk",
        keyspace=CREATE_FRESH_KEYSPACE)
    add("s_create:evalsha", "EVALSHA", "SESSION.CREATE",
        ["EVALSHA", shas["session_create"], "1", *twin_args], "evalsha", "bulk",
        keyspace=CREATE_FRESH_KEYSPACE)
    return cases


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


SESSION_FAMILIES = [("s_get", "SESSION.GET"), ("s_set", "SESSION.SET"),
                    ("s_count", "SESSION.COUNT"), ("s_create", "SESSION.CREATE")]


def measure_destroyall(r):
    """SESSION.DESTROYALL of one index of DESTROYALL_SESSIONS sessions (3 fields each): the
    server's own time for the command (SLOWLOG, µs), per round, and the sessions destroyed."""
    rounds = []
    for _ in range(DESTROYALL_ROUNDS):
        r.call("FLUSHALL", "SYNC")
        index = session_index("d", 0)
        for start in range(0, DESTROYALL_SESSIONS, 10000):
            r.pipeline([("SESSION.CREATE", index, SESSION_IDLE_MS, SESSION_ABSOLUTE_MS,
                         *[f.format(i=i) for f in SESSION_FIELDS])
                        for i in range(start, min(start + 10000, DESTROYALL_SESSIONS))])
        slower_than = r.call("CONFIG", "GET", "slowlog-log-slower-than")[1]
        r.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        r.call("SLOWLOG", "RESET")
        destroyed = r.call("SESSION.DESTROYALL", index)
        entry = r.call("SLOWLOG", "GET", "1")[0]
        r.call("CONFIG", "SET", "slowlog-log-slower-than", slower_than)
        if destroyed != DESTROYALL_SESSIONS or entry[3][0].upper() != b"SESSION.DESTROYALL":
            raise RuntimeError(f"DESTROYALL: {destroyed!r}, {entry!r}")
        rounds.append(entry[2])
    r.call("FLUSHALL", "SYNC")
    return dict(sessions=DESTROYALL_SESSIONS, us=rounds)
