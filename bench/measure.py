"""Measuring: throughput with redis-benchmark (calibrated, repeated, interleaved round-robin;
the median run is kept) and memory per key (MEMORY USAGE and used_memory growth).
"""

import csv
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from config import (
    BUDGET, CALIBRATION_N, CLIENTS, EXACT_FULL_LOG, KEYSPACE, MEMORY_KEYS, MEMORY_PASSES,
    PIPELINES, REPEATS, SECONDS, TIME_SCALE, log,
)
from server import ReplyError, commandstats
from cases.ratelimit import COMMANDS, HANDWRITTEN_MEMORY_ARGS
from cases.session import (
    SESSIONS, SESSION_ABSOLUTE_MS, SESSION_FIELDS, SESSION_IDLE_MS, SESSION_INDEXES,
    SESSION_MEMORY_INDEX_SIZES, session_index, setup_sessions, twin_id,
)


MIN_N = 2000 if TIME_SCALE < 1 else 10000  # a run creates up to KEYSPACE keys first


def bench_cmd(port, n, pipeline, argv, keyspace=KEYSPACE):
    return ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(CLIENTS),
            "-n", str(n), "-r", str(keyspace), "-P", str(pipeline), "--csv", *argv]


def set_up(server, r, setup_fn):
    """The database a row starts from: `setup_fn`'s keys on an empty database. The first time
    they are written by `setup_fn` and saved (`SAVE`, the RDB file kept aside); later runs put
    that file back and reload it (`DEBUG RELOAD NOSAVE`: the dataset is emptied and loaded, in
    milliseconds), so each run starts from the same fresh state without writing it again.
    Returns the placeholders `setup_fn` fills in the rows' commands."""
    rdb = Path(server.dir, "dump.rdb")  # the server's dbfilename (a protected config)
    if setup_fn not in server.snapshots:
        r.call("FLUSHALL", "SYNC")
        hot = setup_fn(r)
        r.call("SAVE")
        kept = Path(server.dir, f"setup-{len(server.snapshots)}.rdb")
        shutil.copyfile(rdb, kept)
        server.snapshots[setup_fn] = (kept, hot)
        return hot
    kept, hot = server.snapshots[setup_fn]
    shutil.copyfile(kept, rdb)
    r.call("DEBUG", "RELOAD", "NOSAVE")
    return hot


def run_benchmark(server, r, case, n, pipeline):
    # Every run starts on an empty database: no other row's keys expire (and cost CPU) during
    # it, and the expired_keys counter below belongs to this row alone.
    t_setup = time.monotonic()
    argv = case["argv"]
    if case.get("setup"):  # live sessions or boards, created outside the timing
        hot = set_up(server, r, case.get("setup_fn", setup_sessions))
        argv = [hot.get(a, a) for a in argv]
    else:
        r.call("FLUSHALL", "SYNC")
    r.call("CONFIG", "RESETSTAT")
    setup_s = time.monotonic() - t_setup
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
        n=n, pipeline=pipeline, rps=float(data["rps"]), wall_s=wall, setup_s=setup_s,
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
    """n rounded to two significant digits, at least MIN_N."""
    digits = len(str(int(n))) - 2
    rounded = int(round(n / 10 ** digits) * 10 ** digits) if digits > 0 else int(n)
    return max(rounded, MIN_N)


def measure_throughput(server, r, cases):
    if not cases:
        return {}
    log(f"calibrating {len(cases)} rows x {len(PIPELINES)} modes ...")
    plan, setup = {}, {}
    started = time.monotonic()
    for pipeline in PIPELINES:
        for case in cases:
            res = run_benchmark(server, r, case, CALIBRATION_N[pipeline], pipeline)
            plan[(case["id"], pipeline)] = res["rps"]
            setup[(case["id"], pipeline)] = res["setup_s"]
    log(f"calibrated in {time.monotonic() - started:.0f} s")
    seconds = {c["id"]: c.get("seconds", SECONDS) * TIME_SCALE for c in cases}
    expected = REPEATS * sum(seconds[k[0]] for k in plan)
    scale = min(1.0, BUDGET / expected)
    sizes = {k: sized(rps * seconds[k[0]] * scale) for k, rps in plan.items()}
    est = REPEATS * sum(sizes[k] / plan[k] + setup[k] for k in plan)
    log(f"plan: {len(plan)} measurements x {REPEATS} repeats, about {est:.0f} s, of which "
        f"{REPEATS * sum(setup.values()):.0f} s setting rows up (scale {scale:.2f})")

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
