#!/usr/bin/env python3
"""Benchmark of redis-patterns: native module commands against their Lua twin and INCR.

Run it with `make bench` (builds the module and the Lua twin first), or directly:

    python3 bench/run.py

What it does, in one run (at most about 15 minutes on an idle 2-core machine; BENCH_ONLY and
BENCH_QUICK below run a part of it, or all of it briefly):

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
   is a HIT) and CACHE.SET with one tag, natively, via FCALL and via EVALSHA, CACHE.SET without
   a tag natively, plus GET and SET ... PX as baselines.
7. Locks (LOCK.*), in the same run and with the same method (see build_lock_cases and the
   "Locks" section it writes): LOCK.ACQUIRE of a free lock (a grant with a new fencing token),
   LOCK.ACQUIRE re-entering a held lock, and LOCK.RELEASE of one hold, natively, via FCALL and
   via EVALSHA; an ACQUIRE+RELEASE cycle is reported as a grant plus a release.
8. Queues (QUEUE.*), on a server of their own (see cases/queue.py and the "Queues" section):
   jobs/s of push -> pop -> ack through the module, the twin, the seeds' stream loop and BullMQ
   (bench/node, skipped without npm), push-to-pop latency with waiting consumers, memory per
   waiting job.
9. The seeds' hand-written patterns (bench/seeds.py): operations of several commands (a lock's
   SET NX PX then its Lua release, INCR then EXPIRE) against the module's commands, driven by
   its own client since redis-benchmark sends one command per request.
10. The peer (bench/peer.py: redis-cell, bare and in production configuration) and the
   instruction counts (bench/callgrind.py, under valgrind). A failure in 8-10 is reported in
   its section; the rest of the run is kept.
11. Writes BENCHMARKS.md at the repository's root, bench/throughput.png (the chart it embeds),
   bench/peer.png and bench/results.json (every raw run).

Rows that need data set up first (sessions, boards, cache entries, held locks) get it written
once per run of bench/run.py and saved to an RDB file; each later run of those rows reloads it
(`DEBUG RELOAD NOSAVE`, the bench's server runs with `--enable-debug-command local`).

Environment:
  BENCH_ONLY        comma-separated sections to run, of: ratelimit, session, leaderboard,
                    cache, lock, queue, seeds, peer, callgrind (default: all)
  BENCH_QUICK=1     every selected row once (BENCH_REPEATS 1), a fifth of the usual length,
                    small calibration and profile runs: a check that everything runs (a
                    few minutes), not figures to publish
                    A run with either writes target/bench/BENCHMARKS.md (and its chart and
                    results.json there), never the published BENCHMARKS.md.
  PATTERNS_MODULE   module path (default target/release/libredis_patterns.so)
  BENCH_SECONDS     target duration of one measurement (default 2)
  BENCH_SESSION_SECONDS  the same for the session rows (default 1.5)
  BENCH_LB_SECONDS  the same for the leaderboard rows (default 1.5)
  BENCH_CACHE_SECONDS  the same for the cache rows (default 1.5)
  BENCH_LOCK_SECONDS  the same for the lock rows (default 1.5)
  BENCH_QUEUE_JOBS  jobs per queue throughput run (default 10000)
  BENCH_QUEUE_ROUNDS  runs per queue throughput row, interleaved (default 3)
  BENCH_REPEATS     repetitions of each measurement (default 3)
  BENCH_BUDGET      seconds allowed for all throughput measurements (default 300); N shrinks
                    to fit when the calibration says they would take longer
  BENCH_OUT         report path (default BENCHMARKS.md at the repository's root)

Layout: run.py (this runner), config.py (paths, durations, sizes), server.py (the server and
a RESP2 client), cases/<family>.py (each family's rows, their setup and validation),
measure.py (throughput and memory), report.py (BENCHMARKS.md and the chart).

Needs python3 (stdlib) and matplotlib, redis-server, redis-cli and redis-benchmark on PATH.
"""

import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

try:
    import matplotlib  # noqa: F401 (report.py draws the chart with it)
except ImportError:  # Debian's python3-matplotlib serves /usr/bin/python3, maybe not this one.
    system_python = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system_python) and os.path.exists(
        system_python
    ) and subprocess.run([system_python, "-c", "import matplotlib"],
                         capture_output=True).returncode == 0:
        os.execv(system_python, [system_python, os.path.abspath(__file__), *sys.argv[1:]])
    sys.exit("bench/run.py needs matplotlib: run `WITH_BENCH=1 bash scripts/install-deps.sh`")

from config import (  # noqa: E402
    BUDGET, CHART, CLIENTS, DIST, HANDWRITTEN, KEYSPACE, MODULE, ONLY, OUT, PARTIAL,
    PEER_CHART, PIPELINES, QUICK, REPEATS, RESULTS, ROOT, SECONDS, TIME_SCALE, log, selected,
)
from server import Server, redis_cli  # noqa: E402
from cases.common import validate  # noqa: E402
from cases.ratelimit import COMMANDS, build_cases  # noqa: E402
from cases.session import (  # noqa: E402
    build_session_cases, measure_destroyall, validate_sessions)
from cases.leaderboard import (  # noqa: E402
    build_leaderboard_cases, measure_lb_worst_cases, validate_leaderboards,
)
from cases.cache import (  # noqa: E402
    build_cache_cases, measure_cache_memory, measure_invalidate, validate_cache,
)
from cases.lock import build_lock_cases, validate_locks  # noqa: E402
from cases import queue as queue_bench  # noqa: E402
from measure import (  # noqa: E402
    measure_memory, measure_session_memory, measure_throughput, summarize,
)
from report import (  # noqa: E402
    chart, git_describe, loadavg, lock_ratios_of, machine_info, path_ratios, write_report,
)
import callgrind  # noqa: E402  (instructions per request)
import peer  # noqa: E402  (redis-cell and the production configuration)
import seeds  # noqa: E402  (the seeds' hand-written patterns, several commands per operation)


def rate_limit_ratios(summary):
    """Per rate-limiting command and mode: native vs INCR, the twin and the hand-written Lua."""
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
    return ratios


def session_ratios_of(summary):
    out = {}
    for fam in ("s_get", "s_set", "s_count", "s_create"):
        for p in PIPELINES:
            native_rps = summary[(f"{fam}:native", p)]["rps"]
            # The seeds' read of a session: HGETALL, then PEXPIRE (two calls per request).
            seeds_read = 1 / (1 / summary[("s_hgetall", p)]["rps"]
                              + 1 / summary[("s_pexpire", p)]["rps"])
            out[(fam, p)] = dict(path_ratios(summary, fam, p),
                                 hgetall=native_rps / summary[("s_hgetall", p)]["rps"],
                                 seeds_read=native_rps / seeds_read)
    return out


def section_or_failure(name, measure, *args):
    """A late section's figures, or {"failed": why}: the throughput already measured is
    reported either way (a broken peer build or profile must not cost the whole run)."""
    try:
        return measure(*args)
    except Exception as e:  # noqa: BLE001 (any failure: reported in its section)
        log(f"{name} failed: {e!r}")
        return {"failed": f"{type(e).__name__}: {' '.join(str(e).split())}"}


# Each family's section: its rows (from the scripts' SHAs) and their check before timing.
FAMILIES = {
    "ratelimit": (build_cases, validate),
    "session": (build_session_cases, validate_sessions),
    "leaderboard": (build_leaderboard_cases, validate_leaderboards),
    "cache": (build_cache_cases, validate_cache),
    "lock": (build_lock_cases, validate_locks),
}


def main():
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    CHART.parent.mkdir(parents=True, exist_ok=True)
    if PARTIAL:
        log(f"partial run (BENCH_ONLY={','.join(ONLY) or 'all'}, BENCH_QUICK={int(QUICK)}): "
            f"writes {OUT}")

    server = Server()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rows = {}
    memory = session_memory = seeds_data = lb_worst = cache_memory = cache_invalidate = None
    lb_profiled = None
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
        shas.update(seeds.load_scripts(port))
        for family, (build, check) in FAMILIES.items():
            if selected(family):
                rows[family] = build(shas)
                check(r, rows[family])
        r.call("FLUSHALL", "SYNC")

        if selected("ratelimit"):
            log("memory ...")
            memory = measure_memory(r, shas)
        if selected("session"):
            session_memory = measure_session_memory(r)
            session_memory["destroyall"] = measure_destroyall(r)
        if selected("leaderboard"):
            lb_worst = measure_lb_worst_cases(r, log)
        if selected("cache"):
            cache_memory = measure_cache_memory(r)
            cache_invalidate = measure_invalidate(r)

        log("throughput ...")
        runs = measure_throughput(server, r, [c for fam in rows.values() for c in fam])
        summary = summarize(runs)
        if selected("seeds"):
            log("the seeds' patterns (sequences of commands) ...")
            seeds_data = section_or_failure("seeds", seeds.measure, server, r, shas)
        server_version = r.info("server")["redis_version"]
        r.close()
    finally:
        server.cleanup()

    peer_data = profiled = session_profiled = cache_profiled = queue_data = None
    if selected("peer"):
        log("peer and production configuration ...")
        peer_data = section_or_failure("peer", peer.measure, MODULE)
        if "failed" not in peer_data:
            peer.chart(peer_data, PEER_CHART)
    if selected("queue"):
        log("queues ...")
        queue_data = section_or_failure("queue", queue_bench.measure)
    if selected("callgrind"):
        if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
            log("callgrind ...")
            cell = peer_data.get("cell") if peer_data else peer.build_peer()[0]
            profiled = section_or_failure("callgrind", callgrind.measure, callgrind.REPORTED,
                                          cell, log)
            session_profiled = section_or_failure("callgrind", callgrind.measure,
                                                  callgrind.SESSION_REPORTED, None, log)
            cache_profiled = section_or_failure("callgrind", callgrind.measure,
                                                callgrind.CACHE_REPORTED, None, log)
            lb_profiled = section_or_failure("callgrind", callgrind.measure,
                                             callgrind.LB_REPORTED, None, log)
        else:
            log("callgrind skipped: valgrind is not installed")
    bench_version = subprocess.run(["redis-benchmark", "--version"], capture_output=True,
                                   text=True).stdout.strip() or "redis-benchmark"
    try:
        module_rel = str(MODULE.resolve().relative_to(ROOT))
    except ValueError:
        module_rel = str(MODULE)
    every = [c for fam in rows.values() for c in fam]
    ctx = dict(
        date=date, machine=machine_info(), load_start=load_start, load_end=loadavg(),
        server_version=server_version, bench_version=bench_version, git=git_describe(),
        module_rel=module_rel,
        module_sha=hashlib.sha256(MODULE.read_bytes()).hexdigest()[:12],
        cases=rows.get("ratelimit", []), summary=summary,
        ratios=rate_limit_ratios(summary) if "ratelimit" in rows else None, memory=memory,
        session_cases=rows.get("session", []),
        session_ratios=session_ratios_of(summary) if "session" in rows else None,
        session_memory=session_memory, lb_cases=rows.get("leaderboard", []),
        cache_cases=rows.get("cache", []), lock_cases=rows.get("lock", []),
        lock_ratios=lock_ratios_of(summary) if "lock" in rows else None, seeds=seeds_data,
        peer=peer_data, callgrind=profiled, queue=queue_data,
        session_callgrind=session_profiled, cache_callgrind=cache_profiled,
        lb_callgrind=lb_profiled,
        cache_memory=cache_memory, cache_invalidate=cache_invalidate, partial=PARTIAL, only=ONLY,
        quick=QUICK,
        lb_worst=lb_worst,
        scale=min(1.0, BUDGET / (REPEATS * TIME_SCALE * sum(
            c.get("seconds", SECONDS) for c in every for _ in PIPELINES))) if every else 1.0,
        runtime_s=time.monotonic() - started,
    )
    if "ratelimit" in rows and "session" in rows:
        chart(summary, rows["ratelimit"], rows["session"])
    write_report(ctx)
    RESULTS.write_text(json.dumps(dict(
        date=date, machine=ctx["machine"], server_version=server_version,
        clients=CLIENTS, keyspace=KEYSPACE, repeats=REPEATS, only=ONLY, quick=QUICK,
        cases=every,
        runs={f"{k[0]}@P{k[1]}": v for k, v in runs.items()},
        summary={f"{k[0]}@P{k[1]}": v for k, v in summary.items()},
        ratios={f"{k[0]}@P{k[1]}": v for k, v in (ctx["ratios"] or {}).items()},
        session_ratios={f"{k[0]}@P{k[1]}": v for k, v in (ctx["session_ratios"] or {}).items()},
        lock_ratios={f"{k[0]}@P{k[1]}": v for k, v in (ctx["lock_ratios"] or {}).items()},
        memory=memory, session_memory=session_memory, seeds=seeds_data, callgrind=profiled,
        lb_worst=lb_worst, runtime_s=ctx["runtime_s"],
        peer=peer_data if not peer_data or "failed" in peer_data else dict(
            skipped=peer_data["skipped"], memory=peer_data["memory"],
            runs={f"{k[0]}:{k[1]}@P{k[2]}": v for k, v in peer_data["runs"].items()}),
        queue=queue_data if not queue_data or "failed" in queue_data else dict(
            queue_data, rows=[" / ".join(row) for row in queue_data["rows"]],
            runs={" / ".join(k): v for k, v in queue_data["runs"].items()},
            summary={" / ".join(k): v for k, v in queue_data["summary"].items()}),
    ), indent=1, default=str))
    log(f"wrote {OUT} and {RESULTS} in {ctx['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
