"""Queue rows (QUEUE.*): jobs per second of push -> pop -> ack, push-to-pop latency with
blocked consumers, and memory per waiting job, for the module, its Lua twin, the seeds'
hand-written stream loop and BullMQ, on one server, in one run, with the same payload.

bench/run.py calls `measure()` and bench/report.py adds `section()` to BENCHMARKS.md. On its
own: `cd bench && python3 -m cases.queue` prints the section.

- The seeds' loop (seeds/001): `XADD key * payload <payload>` (the seed adds `type` and
  `createdAt` fields too; left out so every path carries the same bytes), a group made with
  `XGROUP CREATE ... $ MKSTREAM`, `XREADGROUP GROUP g c COUNT n STREAMS key >`, `XACK`.
- BullMQ: bench/node/bullmq.js, run with node; its package is bench/node/package.json (with
  its lock file), installed by `make bench` (`npm ci`). Without node or the package the
  BullMQ rows are skipped and the section says why.
- Throughput: each row pushes JOBS jobs (pipelined, 100 per round trip), then pops and acks
  them all, from one client: *per job* pops one job per QUEUE.POP (100 pops pipelined, then
  their 100 acks), *batched* pops 100 per QUEUE.POP and acks them with one QUEUE.ACK. BullMQ
  adds with `addBulk` (100 per call) and drains with one Worker of concurrency 100 (its
  usual use; it fetches one job per call). ROUNDS runs per row, interleaved; the median.
  Server CPU per job (the redis-server process's CPU time over the run / JOBS) does not
  depend on which client is faster, so it is the fairer comparison.
- Latency: CONSUMERS consumers wait (QUEUE.POP BLOCK, XREADGROUP BLOCK, a BullMQ Worker of
  that concurrency); LATENCY_JOBS jobs are pushed 2 ms apart, each carrying its send time.
  The twin cannot block: its consumers poll with the clients' backoff (5 ms doubling to
  200 ms, jittered, reset by a job).
- Memory: MEMORY_JOBS waiting jobs pushed on an emptied database; the growth of used_memory
  (minus client buffers) per job, and MEMORY USAGE per job of the queue's keys.
"""

import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

from config import DIST, MEMORY_PASSES, ROOT, log
from server import ReplyError, Redis, Server, redis_cli

JOBS = int(os.environ.get("BENCH_QUEUE_JOBS", "10000"))
ROUNDS = int(os.environ.get("BENCH_QUEUE_ROUNDS", "3"))
BATCH = 100
CONSUMERS = 4
LATENCY_JOBS = 300
MEMORY_JOBS = 1000
KEY = "jobs:{bench}"
GROUP = "workers"
PAYLOAD = json.dumps({"type": "email.welcome", "to": "user-000042@example.com",
                      "template": "welcome-v3", "locale": "en-US", "attempt": 1},
                     separators=(",", ":"))
NODE_DIR = ROOT / "bench/node"
BULLMQ = "BullMQ"
PATHS = ("module", "twin", "seed")
PATH_TEXT = {"module": "module (QUEUE.*)", "twin": "Lua twin (FCALL queue_*)",
             "seed": "seeds' loop (XADD / XREADGROUP / XACK)", BULLMQ: None}


# --- The three paths on our server ---------------------------------------------------------


def push(path, payload=PAYLOAD):
    if path == "module":
        return ["QUEUE.PUSH", KEY, payload]
    if path == "twin":
        return ["FCALL", "queue_push", "1", KEY, payload]
    return ["XADD", KEY, "*", "payload", payload]


def pop(path, consumer, count, block_ms=None):
    block = [] if block_ms is None else ["BLOCK", str(block_ms)]
    if path == "module":
        return ["QUEUE.POP", KEY, GROUP, consumer, "COUNT", str(count), *block]
    if path == "twin":
        return ["FCALL", "queue_pop", "1", KEY, GROUP, consumer, "COUNT", str(count)]
    return ["XREADGROUP", "GROUP", GROUP, consumer, "COUNT", str(count), *block,
            "STREAMS", KEY, ">"]


def popped(path, reply):
    """[(job id, payload)] of a pop reply."""
    if isinstance(reply, ReplyError):
        raise RuntimeError(f"queue bench, {path}: {reply}")
    if not reply:
        return []
    if path == "seed":
        return [(entry[0], entry[1][1]) for entry in reply[0][1]]
    return [(job[0], job[1]) for job in reply]


def ack(path, ids):
    if path == "seed":
        return ["XACK", KEY, GROUP, *ids]
    if path == "twin":
        return ["FCALL", "queue_ack", "1", KEY, GROUP, *ids]
    return ["QUEUE.ACK", KEY, GROUP, *ids]


def prepare(r, path):
    r.call("FLUSHALL", "SYNC")
    if path == "seed":  # the seed makes its group once, before its workers run
        r.call("XGROUP", "CREATE", KEY, GROUP, "$", "MKSTREAM")


def checked(path, replies):
    for reply in replies:
        if isinstance(reply, ReplyError):
            raise RuntimeError(f"queue bench, {path}: {reply}")
    return replies


def cpu_ns(server):
    """The server's CPU time in ns, all threads (schedstat: finer than /proc/<pid>/stat's
    clock ticks, which would round a short run to a few 10 ms ticks)."""
    total = 0
    for path in glob.glob(f"/proc/{server.proc.pid}/task/*/schedstat"):
        with open(path) as f:
            total += int(f.read().split()[0])
    return total


def start_counters(server):
    return cpu_ns(server), time.monotonic()


def counters(server, started, jobs):
    """jobs/s, and the server's CPU time per job in µs. (Not commandstats: it counts the
    commands a module or a script calls as well as the call itself.)"""
    cpu0, t0 = started
    wall, cpu = time.monotonic() - t0, cpu_ns(server) - cpu0
    return dict(jobs_s=jobs / wall, cpu_us=cpu / 1e3 / jobs)


def cycle(server, r, path, mode):
    """Pushes JOBS jobs, then pops and acks them all (see counters)."""
    prepare(r, path)
    started = start_counters(server)
    for start in range(0, JOBS, BATCH):
        checked(path, r.pipeline([push(path)] * min(BATCH, JOBS - start)))
    done = 0
    while done < JOBS:
        if mode == "batched":
            ids = [i for i, _ in popped(path, r.pipeline([pop(path, "c", BATCH)])[0])]
            acks = [ack(path, ids)] if ids else []
        else:
            replies = r.pipeline([pop(path, "c", 1)] * min(BATCH, JOBS - done))
            ids = [i for reply in replies for i, _ in popped(path, reply)]
            acks = [ack(path, [i]) for i in ids]
        if not ids:
            raise RuntimeError(f"queue bench, {path}: ran dry after {done} of {JOBS} jobs")
        acked = sum(checked(path, r.pipeline(acks)))
        if acked != len(ids):
            raise RuntimeError(f"queue bench, {path}: {acked} of {len(ids)} jobs acked")
        done += len(ids)
    return counters(server, started, JOBS)


def consume(port, path, name, latencies, stop):
    """A consumer: waits for jobs (blocking, or polling on the twin), records their latency."""
    r = Redis(port)
    backoff = 0.005
    try:
        while not stop.is_set():
            reply = r.pipeline([pop(path, name, 1, None if path == "twin" else 200)])[0]
            received = time.perf_counter_ns()
            jobs = popped(path, reply)
            for job_id, payload in jobs:
                latencies.append((received - int(payload.split(b"|", 1)[0])) / 1e6)
                checked(path, r.pipeline([ack(path, [job_id])]))
            if path == "twin":
                backoff = 0.005 if jobs else min(backoff * 2, 0.2)
                if not jobs:
                    time.sleep(backoff * (0.5 + random.random() / 2))
    finally:
        r.close()


def latency(port, r, path):
    prepare(r, path)
    if path != "seed":  # the group, made by a first pop
        r.call(*pop(path, "setup", 1))
    latencies, stop = [], threading.Event()
    consumers = [threading.Thread(target=consume, args=(port, path, f"c{i}", latencies, stop))
                 for i in range(CONSUMERS)]
    for t in consumers:
        t.start()
    time.sleep(0.3)  # all of them waiting
    producer = Redis(port)
    for _ in range(LATENCY_JOBS):
        checked(path, producer.pipeline([push(path, f"{time.perf_counter_ns()}|{PAYLOAD}")]))
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    while len(latencies) < LATENCY_JOBS and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in consumers:
        t.join()
    producer.close()
    return latency_stats(latencies)


def latency_stats(values):
    if len(values) < LATENCY_JOBS:
        raise RuntimeError(f"queue bench: {len(values)} of {LATENCY_JOBS} jobs received")
    values = sorted(values)
    return dict(p50=values[len(values) // 2], p99=values[int(len(values) * 0.99)],
                max=values[-1])


def grown(r):
    m = r.info("memory")
    return int(m["used_memory"]) - int(m.get("mem_clients_normal", 0))


def memory(r, path):
    """used_memory's growth per job (the median of MEMORY_PASSES passes: allocator noise),
    and the stream's MEMORY USAGE per job."""
    growth = []
    for _ in range(MEMORY_PASSES):
        r.call("FLUSHALL", "SYNC")
        before = grown(r)
        checked(path, r.pipeline([push(path)] * MEMORY_JOBS))
        growth.append((grown(r) - before) / MEMORY_JOBS)
    usage = r.call("MEMORY", "USAGE", KEY, "SAMPLES", "0")
    return dict(growth=statistics.median(growth), usage=usage / MEMORY_JOBS)


def keys_usage(r, pattern):
    """MEMORY USAGE of every key matching pattern, summed, per waiting job."""
    cursor, keys = b"0", []
    while True:
        cursor, found = r.call("SCAN", cursor, "MATCH", pattern, "COUNT", "1000")
        keys.extend(found)
        if cursor == b"0":
            break
    usage = r.pipeline([["MEMORY", "USAGE", k, "SAMPLES", "0"] for k in keys])
    return sum(checked(BULLMQ, usage)) / MEMORY_JOBS


# --- BullMQ ---------------------------------------------------------------------------------


def bullmq_missing():
    """Why the BullMQ rows cannot run, or None."""
    if not shutil.which("node"):
        return "node is not installed"
    if not (NODE_DIR / "node_modules/bullmq").is_dir():
        return "bullmq is not installed (`make bench` runs `npm ci` in bench/node; npm missing?)"
    return None


def bullmq(server, r, mode, jobs, concurrency=1):
    """Runs bench/node/bullmq.js in `mode`; its JSON result, with the server's counters and
    memory growth per job over the measured part."""
    r.call("FLUSHALL", "SYNC")
    argv = ["node", str(NODE_DIR / "bullmq.js"), str(server.port), mode, str(jobs), PAYLOAD,
            str(concurrency)]
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(argv, cwd=NODE_DIR, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errors, text=True)

        def failed():
            errors.seek(0)
            return RuntimeError(f"bench/node/bullmq.js {mode}: {errors.read()[-2000:]}")
        try:
            if proc.stdout.readline().strip() != "ready":
                raise failed()
            memory0, started = grown(r), start_counters(server)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            measured, memory1 = counters(server, started, jobs), grown(r)
            if proc.wait(60) != 0 or not line:
                raise failed()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return dict(json.loads(line), **measured, growth=(memory1 - memory0) / jobs)


def bullmq_cycle(server, r):
    """BullMQ's jobs/s as its script timed them, the server's counters around the script."""
    res = bullmq(server, r, "throughput", JOBS, BATCH)
    return dict(jobs_s=res["jobs"] / res["seconds"], cpu_us=res["cpu_us"])


# --- The section ----------------------------------------------------------------------------


def measure():
    """Everything the section reports (runs its own server, with the module and the twin)."""
    started = time.monotonic()
    skipped = bullmq_missing()
    server = Server()
    try:
        r = server.start()
        redis_cli(server.port, "FUNCTION", "LOAD", "REPLACE", stdin_file=DIST / "patterns.lua")
        rows = [(path, mode) for path in PATHS for mode in ("per job", "batched")]
        if not skipped:
            rows.append((BULLMQ, f"Worker, concurrency {BATCH}"))
        runs = {row: [] for row in rows}
        for rnd in range(ROUNDS):
            for path, mode in rows[rnd % len(rows):] + rows[:rnd % len(rows)]:
                res = (bullmq_cycle(server, r) if path == BULLMQ
                       else cycle(server, r, path, mode))
                runs[(path, mode)].append(res)
                log(f"  queue [{rnd + 1}/{ROUNDS}] {path:<7} {mode:<24} "
                    f"{res['jobs_s']:>10,.0f} jobs/s {res['cpu_us']:>7.1f} server CPU µs/job")
        latencies = {path: latency(server.port, r, path) for path in PATHS}
        mem = {path: memory(r, path) for path in PATHS}
        if not skipped:
            res = bullmq(server, r, "latency", LATENCY_JOBS, CONSUMERS)
            latencies[BULLMQ] = latency_stats(res["latencies_ms"])
            growth = bullmq(server, r, "memory", MEMORY_JOBS)["growth"]
            mem[BULLMQ] = dict(growth=growth, usage=keys_usage(r, "bull:bench-memory:*"))
        version = r.info("server")["redis_version"]
        r.close()
    finally:
        server.cleanup()
    summary = {}
    for row, results in runs.items():
        best = sorted(results, key=lambda x: x["jobs_s"])
        summary[row] = dict(best[len(best) // 2], min=best[0]["jobs_s"], max=best[-1]["jobs_s"])
    return dict(rows=rows, runs=runs, summary=summary, latency=latencies, memory=mem,
                skipped=skipped, version=version, runtime_s=time.monotonic() - started)


def section(data, add):
    """The report's Queues section."""
    add("## Queues")
    add("")
    add(f"Jobs through a queue on one redis-server {data['version']} with the module, in the "
        "same run: the module (`QUEUE.*`), its Lua twin (`FCALL queue_*`), the seeds' "
        "hand-written stream loop (`XADD` / `XREADGROUP` / `XACK`, seeds/001) and "
        f"{BULLMQ} (npm, `bench/node/bullmq.js`), every job carrying the same "
        f"{len(PAYLOAD)}-byte payload. Method: `bench/cases/queue.py`'s docstring.")
    if data["skipped"]:
        add("")
        add(f"The {BULLMQ} rows were **skipped: {data['skipped']}**.")
    add("")
    add(f"### Throughput: push {JOBS:,} jobs, then pop and ack them all")
    add("")
    add("One client; pushes pipelined 100 per round trip. *per job*: one job per pop (100 "
        "pops pipelined, then their acks); *batched*: 100 jobs per pop, one ack for them. "
        f"Median of {ROUNDS} interleaved runs (min–max). *server CPU µs/job*: the server "
        "process's CPU time over the run (schedstat, all threads) per job: the server's work, "
        "whichever client is faster, and steadier than jobs/s on a loaded machine.")
    add("")
    add("| Path | Mode | jobs/s | min–max | server CPU µs/job |")
    add("|---|---|---:|---:|---:|")
    for path, mode in data["rows"]:
        s = data["summary"][(path, mode)]
        add(f"| {PATH_TEXT[path] or path} | {mode} | {s['jobs_s']:,.0f} | "
            f"{s['min']:,.0f}–{s['max']:,.0f} | {s['cpu_us']:.1f} |")
    add("")
    add("The seeds' loop never trims its stream (`XACK` leaves the entry), never reclaims a "
        "crashed worker's job and has no dead letters, delays or dedupe: it does less per job "
        "than the module. The module trims what every group has completed, a whole stream node "
        "at a time, after an ack that completes a group's oldest job (README, Queues).")
    add("")
    add(f"### Push-to-pop latency, {CONSUMERS} consumers waiting")
    add("")
    add(f"{LATENCY_JOBS} jobs pushed 2 ms apart to {CONSUMERS} waiting consumers (a {BULLMQ} "
        f"Worker of concurrency {CONSUMERS}); time from before the push to the consumer "
        "holding the job, in ms. The twin cannot block: its consumers poll with the clients' "
        "backoff (5 ms to 200 ms, jittered).")
    add("")
    add("| Path | p50 ms | p99 ms | max ms |")
    add("|---|---:|---:|---:|")
    for path, s in data["latency"].items():
        add(f"| {PATH_TEXT[path] or path} | {s['p50']:.2f} | {s['p99']:.2f} | {s['max']:.2f} |")
    add("")
    add("### Memory per waiting job")
    add("")
    add(f"{MEMORY_JOBS:,} jobs pushed on an emptied database, none popped: growth of "
        f"`used_memory` (minus client buffers) per job (median of {MEMORY_PASSES} passes; "
        f"{BULLMQ}: one), and `MEMORY USAGE` per job of the "
        f"queue's stream ({BULLMQ}: of all its keys, `bull:<queue>:*`: a hash per job, the "
        "wait list, its events stream and metadata). A module job is a plain stream entry "
        "(`payload`), so it costs what `XADD key * payload <payload>` does.")
    add("")
    add("| Path | used_memory growth / job | MEMORY USAGE / job |")
    add("|---|---:|---:|")
    for path, m in data["memory"].items():
        add(f"| {PATH_TEXT[path] or path} | {m['growth']:.1f} B | {m['usage']:.1f} B |")
    add("")


if __name__ == "__main__":
    lines = []
    section(measure(), lines.append)
    print("\n".join(lines))
