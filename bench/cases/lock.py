"""Lock rows (LOCK.*, RWLOCK.*): a grant of a free lock, a re-entry and a release of one hold,
and a read hold of a free read/write lock, natively and through the twin, on locks set up before
each run.
"""

import os

from server import ReplyError
from cases.session import CREATE_FRESH_KEYSPACE


# Locks (LOCK.*), measured in the same run, on the same server, with the same method.
# redis-benchmark sends one command per request, so an ACQUIRE+RELEASE cycle is measured as its
# two halves in their steady states, and reported as their sum (time per cycle = time per grant
# + time per release):
# - grant: LOCK.ACQUIRE of a free lock, `lock:{g__rand_int__}` with -r 2^31-1, so (nearly) every
#   request takes a fresh lock: it writes the fencing counter, the lease hash and its expiry;
# - release: LOCK.RELEASE of one hold of LOCKS_HELD locks set up before each run (outside the
#   timing) with LOCK_HOLDS holds each, so every request drops a hold and writes;
# - re-entry: LOCK.ACQUIRE by the holder of those locks (one more hold, a fresh TTL);
# - read hold: RWLOCK.ACQUIRE ... READ of a free read/write lock, `rw:{g__rand_int__}` (it
#   checks the write hold and the counter, prunes the read holds and adds one, with its expiry).
# A release that frees the lock (DEL, then serving waiters) is not measured separately.
LOCK_SECONDS = float(os.environ.get("BENCH_LOCK_SECONDS", "1.5"))
LOCKS_HELD = 10000
LOCK_HOLDS = 10**9
LOCK_OWNER = "worker"
LOCK_TTL_MS = "60000"
LOCK_FAMILIES = [("l_grant", "LOCK.ACQUIRE (free lock)"), ("l_release", "LOCK.RELEASE"),
                 ("l_reenter", "LOCK.ACQUIRE (re-entry)"),
                 ("rw_read", "RWLOCK.ACQUIRE READ (free lock)")]


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
        ("rw_read", "RWLOCK.ACQUIRE", "rwlock_acquire", "rw:{g__rand_int__}",
         [LOCK_TTL_MS, "READ"], dict(keyspace=CREATE_FRESH_KEYSPACE)),
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
    token 1, a release 1 (a hold dropped), a read hold 1."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        if case.get("setup"):
            setup_locks(r)
        argv = [a.replace("__rand_int__", "0" * 12) for a in case["argv"]]
        reply = r.pipeline([argv])[0]
        if reply != 1:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}, expected 1")
