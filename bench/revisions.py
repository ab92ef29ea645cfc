#!/usr/bin/env python3
"""Instructions per request of every command on two git revisions: before / after / change.

    python3 bench/revisions.py BEFORE AFTER [CASE-ID ...] [--json FILE] [--jobs N] [--production]

For each revision: a `git worktree add --detach` under /tmp (kept, so a rerun reuses it), built
with `nice cargo build --release` into its own CARGO_TARGET_DIR beside it. Then every case
below whose command both revisions register (found by `git grep` of the quoted name) is
profiled on each module with bench/callgrind.py's `profile` (callgrind, the whole server
process, `redis-benchmark -c 50 -P 16`, the same set-up, warm-up and request count on both),
and a Markdown table is printed: instructions per request before, after, the change, and the
same for the command's body (RedisModuleCommandDispatcher, inclusive). A command more than
SLOWER_PCT percent slower over the whole request is flagged.

Instruction counts do not depend on the machine's load (wall clock on a shared machine does),
which is why this compares them. PROFILE_N (default 5,000) requests are counted after as many
unmeasured ones, unless a case says otherwise. `--production`: each server appends to an AOF
(everysec) and streams to an attached replica, as bench/peer.py's production configuration.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import callgrind

ROOT = callgrind.ROOT
N = int(os.environ.get("PROFILE_N", "5000"))
SLOWER_PCT = 2.0
BODY = "the command's body"
VALUE = "v" * 100
TTL = "3600000"


def each_key(fmt, statement, count=10000):
    """An EVAL running `statement` for i = 0..count-1 with `k` = string.format(fmt, i) (fmt
    as KEYS[1]; `%012d` is how redis-benchmark writes __rand_int__)."""
    script = f"for i = 0, {count - 1} do local k = string.format(KEYS[1], i); {statement} end"
    return ["EVAL", script, "1", fmt]


HELD_LOCKS = each_key("p:lock:{%012d}", "redis.call('HSET', k, 'owner', 'worker', 'token', '1', "
                      "'holds', '1000000000'); redis.call('PEXPIRE', k, 3600000)")
SEMAPHORES = each_key("p:sem:{%012d}", "redis.call('SEM.ACQUIRE', k, 'worker', '10', '3600000')")
PLAIN_BOARD = each_key("m:%012d", "redis.call('ZADD', 'p:lbz', math.floor(i / 10), k)")
TIE_BOARD = each_key("m:%012d", "redis.call('LB.ADD', 'p:lbt', math.floor(i / 10), k)")
# 100 per score: every member is in a large group (more than SMALL_GROUP), found by its stamp.
LARGE_GROUPS = each_key("m:%012d", "redis.call('LB.ADD', 'p:lbg', math.floor(i / 100), k)")
CACHED = each_key("p:{%012d}", f"redis.call('CACHE.SET', k, '{VALUE}', {TTL})")
SESSION = ["SESSION.CREATE", "p:sessions:{u}", TTL, "7200000", "user", "1", "role", "admin",
           "theme", "dark"]

# id -> (command line, set-up commands, options for callgrind.profile). Every key a write
# touches lives through the run (limits, TTLs and refill periods far beyond it under valgrind).
CASES = {
    "rl.tokenbucket": ("RL.TOKENBUCKET p:tb:__rand_int__ 1000000 1 100000", [], {}),
    # A rate that does not divide the period: the TAT keeps a fraction in the value.
    "rl.tokenbucket fractional": ("RL.TOKENBUCKET p:tbf:__rand_int__ 1000000 7 100000", [], {}),
    "rl.tokenbucket denied": ("RL.TOKENBUCKET p:tbd:__rand_int__ 1 1 100000000", [], {}),
    "rl.fixedwindow": ("RL.FIXEDWINDOW p:fw:__rand_int__ 1000000 100000", [], {}),
    # A limit of 1: a key's first request is admitted, every later one denied.
    "rl.fixedwindow denied": ("RL.FIXEDWINDOW p:fwd:__rand_int__ 1 100000000", [], {}),
    "rl.fixedwindow new": ("RL.FIXEDWINDOW p:fwn:__rand_int__ 1000000 100000", [],
                           {"keyspace": 2**31 - 1}),
    "rl.slidingwindow": ("RL.SLIDINGWINDOW p:sw:__rand_int__ 1000000 100000", [], {}),
    "rl.slidingwindow exact": ("RL.SLIDINGWINDOW p:swe:__rand_int__ 1000000 100000 EXACT", [],
                               {}),
    # The three string limiters at once (each __rand_int__ drawn on its own).
    "rl.all": ("RL.ALL TOKENBUCKET p:at:__rand_int__ 1000000 1 100000 FIXEDWINDOW "
               "p:af:__rand_int__ 1000000 100000 SLIDINGWINDOW p:as:__rand_int__ 1000000 100000",
               [], {}),
    "cl.throttle": ("CL.THROTTLE p:cl:__rand_int__ 1000000 1 100", [], {}),
    "cl.throttle denied": ("CL.THROTTLE p:cld:__rand_int__ 0 1 100000", [], {}),
    # The same on a new key each time (keys drawn from 2^31): every admission creates its key.
    "cl.throttle new": ("CL.THROTTLE p:cln:__rand_int__ 1000000 1 100", [],
                        {"keyspace": 2**31 - 1}),
    # Locks: a grant of a free lock (keys drawn from 2^31), then re-entry, extension, info and
    # release of 10,000 locks held with 10^9 holds (the layout both revisions use).
    "lock.acquire grant": ("LOCK.ACQUIRE p:lock:{g__rand_int__} worker 60000", [],
                           {"keyspace": 2**31 - 1}),
    "lock.acquire reenter": ("LOCK.ACQUIRE p:lock:{__rand_int__} worker 60000", [HELD_LOCKS], {}),
    "lock.extend": ("LOCK.EXTEND p:lock:{__rand_int__} worker 60000", [HELD_LOCKS], {}),
    "lock.release": ("LOCK.RELEASE p:lock:{__rand_int__} worker", [HELD_LOCKS], {}),
    "lock.info": ("LOCK.INFO p:lock:{__rand_int__}", [HELD_LOCKS], {}),
    # Semaphores: acquire (a grant, then refreshes), count, and release without warm-up (most
    # requests drop a permit, the rest find none).
    "sem.acquire": ("SEM.ACQUIRE p:sem:{__rand_int__} worker 10 60000", [], {}),
    "sem.count": ("SEM.COUNT p:sem:{__rand_int__}", [SEMAPHORES], {}),
    "sem.release": ("SEM.RELEASE p:sem:{__rand_int__} worker", [SEMAPHORES], {"warm": 0}),
    # Leaderboards: 10,000 members, 10 per score, on a plain board (ZADD) and a tie-break one
    # (LB.ADD); writes go to the tie-break board.
    "lb.add": ("LB.ADD p:lbt __rand_int__ m:__rand_int__", [TIE_BOARD], {}),
    "lb.incr": ("LB.INCR p:lbt 1 m:__rand_int__", [TIE_BOARD], {}),
    "lb.rank plain": ("LB.RANK p:lbz m:__rand_int__", [PLAIN_BOARD], {}),
    "lb.rank competition plain": ("LB.RANK p:lbz m:__rand_int__ RANKING COMPETITION",
                                  [PLAIN_BOARD], {}),
    "lb.rank tie-break": ("LB.RANK p:lbt m:__rand_int__", [TIE_BOARD], {}),
    "lb.rank large groups": ("LB.RANK p:lbg m:__rand_int__", [LARGE_GROUPS], {}),
    "lb.top plain": ("LB.TOP p:lbz 10", [PLAIN_BOARD], {}),
    "lb.top tie-break": ("LB.TOP p:lbt 10", [TIE_BOARD], {}),
    "lb.around plain": ("LB.AROUND p:lbz m:__rand_int__ 10", [PLAIN_BOARD], {}),
    "lb.around tie-break": ("LB.AROUND p:lbt m:__rand_int__ 10", [TIE_BOARD], {}),
    "lb.page plain": ("LB.PAGE p:lbz 2 10", [PLAIN_BOARD], {}),
    "lb.page tie-break": ("LB.PAGE p:lbt 2 10", [TIE_BOARD], {}),
    "lb.percentile plain": ("LB.PERCENTILE p:lbz m:__rand_int__", [PLAIN_BOARD], {}),
    # Cache: a HIT of a 100-byte value, a write without and with a tag.
    "cache.get": ("CACHE.GET p:{__rand_int__}", [CACHED], {}),
    "cache.set": (f"CACHE.SET p:cs:{{__rand_int__}} {VALUE} {TTL}", [], {}),
    "cache.set tags": (f"CACHE.SET p:ct:{{__rand_int__}} {VALUE} {TTL} TAGS p:tag", [], {}),
    # Sessions: one session of 3 fields (its key is SESSION.CREATE's reply), and creates over
    # 10,000 indexes.
    "session.get": ("SESSION.GET <setup:0>", [SESSION], {}),
    "session.set": ("SESSION.SET <setup:0> theme light", [SESSION], {}),
    "session.count": ("SESSION.COUNT p:sessions:{u}", [SESSION], {}),
    "session.create": (f"SESSION.CREATE p:sessions:{{c__rand_int__}} {TTL} 7200000 user 1", [],
                       {}),
    "queue.push": ("QUEUE.PUSH p:queue:{__rand_int__} job", [], {}),
    # Queues: pops of one pushed job each (the group made by the warm-up); acks of popped jobs,
    # in the order popped (each completes the oldest job) and shuffled within windows of 10; and
    # a job's whole cycle (push, pop, ack: one "request").
    "queue.pop": ("QUEUE.POP p:queue:{cycle} g c COUNT 1", [],
                  {"driver": callgrind.QueuePops()}),
    "queue.ack in order": ("QUEUE.ACK p:queue:{cycle} g <id>", [],
                           {"driver": callgrind.QueueAcks()}),
    "queue.ack out of order": ("QUEUE.ACK p:queue:{cycle} g <id>", [],
                               {"driver": callgrind.QueueAcks(window=10)}),
    "queue.extend": ("QUEUE.EXTEND p:queue:{cycle} g c <id>", [],
                     {"driver": callgrind.QueueExtends()}),
    "queue.ack push+pop+ack": ("QUEUE.ACK p:queue:{cycle}", [],
                               {"driver": callgrind.QueueCycle()}),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


def build(rev):
    """The module built at `rev` (a worktree and target directory under /tmp, reused)."""
    sha = git("rev-parse", f"{rev}^{{commit}}")
    tree = Path(f"/tmp/rp-rev-{sha[:12]}")
    target = Path(f"{tree}-target")
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), sha)
    log(f"building {rev} ({sha[:12]}) in {tree}")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    subprocess.run(["nice", "cargo", "build", "--release", "-q", "-p", "redis-patterns"],
                   cwd=tree, env=env, check=True)
    return sha, target / "release/libredis_patterns.so"


def has_command(sha, line):
    """Whether the revision registers the command `line` starts with."""
    name = line.split()[0]
    found = subprocess.run(["git", "grep", "-q", "-F", f'"{name}"', sha, "--", "src", "core"],
                           cwd=ROOT)
    return found.returncode == 0


def run_case(module, cid, production=False):
    line, setup, options = CASES[cid]
    options = {"warm": N, "n": N, "production": production, **options}
    total, inclusive = callgrind.profile(module, line, setup, **options)
    log(f"{cid} on {module}: {round(total / options['n']):,} instructions per request")
    body = inclusive.get("RedisModuleCommandDispatcher", 0)
    return {"total": round(total / options["n"]), "body": round(body / options["n"])}


def change(before, after):
    return 100.0 * (after - before) / before if before else 0.0


def table(results, labels):
    lines = [f"| Command | {labels[0]} | {labels[1]} | change | body {labels[0]} | "
             f"body {labels[1]} | body change | |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for cid, (a, b) in results.items():
        whole = change(a["total"], b["total"])
        flag = f"**slower** (> {SLOWER_PCT:g}%)" if whole > SLOWER_PCT else ""
        lines.append(f"| `{CASES[cid][0].split()[0]}` {cid.partition(' ')[2]} | "
                     f"{a['total']:,} | {b['total']:,} | {whole:+.1f}% | {a['body']:,} | "
                     f"{b['body']:,} | {change(a['body'], b['body']):+.1f}% | {flag} |")
    return lines


def main():
    argv = sys.argv[1:]
    production = "--production" in argv
    argv = [a for a in argv if a != "--production"]
    options = {}
    for flag in ("--json", "--jobs"):
        if flag in argv:
            i = argv.index(flag)
            options[flag] = argv[i + 1]
            del argv[i:i + 2]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    before, after, *ids = argv
    unknown = set(ids) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    builds = [build(before), build(after)]
    both = [cid for cid in ids or CASES
            if all(has_command(sha, CASES[cid][0]) for sha, _ in builds)]
    skipped = [cid for cid in ids or CASES if cid not in both]
    if skipped:
        log(f"not in both revisions, skipped: {', '.join(skipped)}")
    ids = both
    jobs = [(cid, module) for cid in ids for _, module in builds]
    with ThreadPoolExecutor(int(options.get("--jobs", "2"))) as pool:
        figures = list(pool.map(lambda job: run_case(job[1], job[0], production), jobs))
    results = {cid: (figures[2 * i], figures[2 * i + 1]) for i, cid in enumerate(ids)}
    for cid, (a, b) in results.items():
        log(f"{cid}: {a['total']:,} -> {b['total']:,} ({change(a['total'], b['total']):+.1f}%)")
    print(f"Instructions per request (callgrind{', AOF and a replica' if production else ''}, "
          f"{N:,} requests after as many unmeasured; "
          f"before = {before} ({builds[0][0][:7]}), after = {after} ({builds[1][0][:7]}))\n")
    print("\n".join(table(results, ("before", "after"))))
    if "--json" in options:
        Path(options["--json"]).write_text(json.dumps(
            {"before": builds[0][0], "after": builds[1][0], "n": N,
             "commands": {cid: {"line": CASES[cid][0], "before": a, "after": b}
                          for cid, (a, b) in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
