"""The peer, redis-cell 0.5.0, side by side with the module: bare and in production configuration.

bench/run.py calls `measure()`, and bench/report.py adds `section()` to BENCHMARKS.md. redis-cell's source comes from
`../shared/peers/redis-cell-0.5.0.tar.gz` (beside the repository); without it the peer's rows
are skipped and the report says so, the production rows of the module still run.

Two configurations, each on its own servers (redis-cell registers CL.THROTTLE too, so it runs
on a server of its own with the same settings):

- bare: `--save "" --appendonly no`, as the rest of bench.py;
- production: `--appendonly yes --appendfsync everysec` plus one replica attached
  (`--replicaof`, same module, no AOF of its own), so every write is also written to the AOF
  and streamed to the replica.

Rows: INCR, the native CL.THROTTLE and RL.TOKENBUCKET, the twin's CL.THROTTLE (FCALL), on the
module's server; redis-cell's CL.THROTTLE on its own. `redis-benchmark -c 50 -r 10000`, -P 16
and -P 1, REPEATS rounds interleaved over every row of both configurations; median and best.
Memory: 1,000 keys of one CL.THROTTLE each, native, twin and peer, MEMORY USAGE and encoding.
"""

import hashlib
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from types import SimpleNamespace

import config
import measure
import report
import server

# The bench's pieces under one name (config, server, measure, report).
B = SimpleNamespace(**{**vars(config), **vars(server), **vars(measure), **vars(report)})

PEER = "redis-cell 0.5.0"
# Beside the repository (`../shared`), or beside the directory holding it (a git worktree
# under `../wt/<name>`); PEER_TARBALL names another.
TARBALL = Path(os.environ.get("PEER_TARBALL") or next(
    (d / "shared/peers/redis-cell-0.5.0.tar.gz" for d in (B.ROOT.parent, B.ROOT.parent.parent)
     if (d / "shared/peers/redis-cell-0.5.0.tar.gz").exists()),
    B.ROOT.parent / "shared/peers/redis-cell-0.5.0.tar.gz"))
PEER_DIR = B.ROOT / "target/peer"
SECONDS = float(os.environ.get("BENCH_PEER_SECONDS", "1.5")) * B.TIME_SCALE
TARGET_VS_PEER = 1.5
THROTTLE_ARGS = ["1000000", "1", "1"]  # as bench.py's CL.THROTTLE rows: every request admitted
MEMORY_ARGS = ["100", "100", "3600"]
CONFIGS = {
    "bare": ["--save", "", "--appendonly", "no"],
    "production": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
}
CONFIG_TEXT = {
    "bare": "bare (no AOF, no replica)",
    "production": "production (AOF everysec + 1 replica)",
}


def build_peer():
    """(path of redis-cell's module, None) or (None, why it is skipped)."""
    if not TARBALL.exists():
        return None, f"skipped: {TARBALL} not found (a clone without ../shared)"
    if not shutil.which("cargo"):
        return None, "skipped: cargo not found"
    digest = hashlib.sha256(TARBALL.read_bytes()).hexdigest()[:12]
    # Unpacked outside the repository, whose Cargo workspace would otherwise claim it.
    src = Path(tempfile.gettempdir()) / f"patterns-bench-peer-{digest}"
    so = PEER_DIR / "target/release/libredis_cell.so"
    stamp = PEER_DIR / "built-from"
    if so.exists() and stamp.exists() and stamp.read_text() == digest:
        return so, None
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    with tarfile.open(TARBALL) as tar:
        # The "data" filter (no absolute paths, no links out) where this Python has it.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(src, **kwargs)
    (top,) = [p for p in src.iterdir() if p.is_dir()]
    B.log(f"building {PEER} from {TARBALL} ...")
    p = subprocess.run(["cargo", "build", "--release"], cwd=top, capture_output=True, text=True,
                       env={**os.environ, "CARGO_TARGET_DIR": str(PEER_DIR / "target")})
    if p.returncode != 0 or not so.exists():
        return None, f"skipped: its build failed ({p.stderr.strip()[-300:]})"
    stamp.write_text(digest)
    return so, None


class Node(B.Server):
    """A bench server with its own module and settings (and maybe a primary to follow)."""

    def __init__(self, module, settings, replicaof=None):
        super().__init__()
        self.module, self.settings, self.replicaof = module, settings, replicaof

    def start(self):
        for _ in range(5):
            self.port = B.free_port()
            self.argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                         *self.settings, "--loadmodule", str(self.module), "--dir", self.dir,
                         "--logfile", os.path.join(self.dir, "redis.log"), "--daemonize", "no"]
            if self.replicaof:
                self.argv += ["--replicaof", "127.0.0.1", str(self.replicaof)]
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL,
                                         preexec_fn=B.die_with_parent)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    r = B.Redis(self.port, timeout=2)
                    if r.call("PING") == "PONG":
                        return r
                except (OSError, B.ReplyError):
                    time.sleep(0.05)
            self.stop()
            if "already in use" not in self.log_tail():
                break
        raise RuntimeError("redis-server did not start; its log:\n" + self.log_tail())


class Deployment:
    """A primary (and, in production, its replica), stopped together."""

    def __init__(self, module, config):
        self.nodes = []
        self.primary = Node(module, CONFIGS[config])
        self.nodes.append(self.primary)
        self.r = self.primary.start()
        if config == "production":
            replica = Node(module, ["--save", "", "--appendonly", "no"], self.primary.port)
            self.nodes.append(replica)
            replica.start().close()
            wait_for_replica(self.r)

    def cleanup(self):
        self.r.close()
        for node in reversed(self.nodes):
            node.cleanup()


def wait_for_replica(r):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = r.info("replication")
        if info.get("connected_slaves") == "1" and "state=online" in info.get("slave0", ""):
            return
        time.sleep(0.1)
    raise RuntimeError("the replica did not come online")


def cases(cell_available):
    rows = [
        dict(id="incr", path="INCR", command="INCR", server="module",
             argv=["INCR", "peer:incr:__rand_int__"], stat="incr"),
        dict(id="throttle", path="native", command="CL.THROTTLE", server="module",
             argv=["CL.THROTTLE", "peer:n:__rand_int__", *THROTTLE_ARGS], stat="cl.throttle"),
        dict(id="tokenbucket", path="native", command="RL.TOKENBUCKET", server="module",
             argv=["RL.TOKENBUCKET", "peer:t:__rand_int__", "1000000", "1", "1000"],
             stat="rl.tokenbucket"),
        dict(id="twin", path="FCALL", command="CL.THROTTLE", server="module",
             argv=["FCALL", "cl_throttle", "1", "peer:f:__rand_int__", *THROTTLE_ARGS],
             stat="fcall"),
    ]
    if cell_available:
        rows.append(dict(id="peer", path=PEER, command="CL.THROTTLE", server="peer",
                         argv=["CL.THROTTLE", "peer:c:__rand_int__", *THROTTLE_ARGS],
                         stat="cl.throttle"))
    for row in rows:
        row["admit"] = None
    return rows


def load_twin(port):
    B.redis_cli(port, "FUNCTION", "LOAD", "REPLACE", stdin_file=B.DIST / "patterns.lua")


def check_replies(r, rows, server):
    """Every row's command answers as expected before it is timed (no error replies)."""
    for row in rows:
        if row["server"] != server:
            continue
        argv = [a.replace("__rand_int__", "check") for a in row["argv"]]
        reply = r.call(*argv)
        if row["id"] == "incr":
            ok = reply == 1
        else:
            limited = 0 if row["command"] == "CL.THROTTLE" else 1  # [limited, ...] / [allowed, ...]
            ok = isinstance(reply, list) and len(reply) == 5 and reply[0] == limited
        if not ok:
            raise RuntimeError(f"peer rows: {argv} -> {reply!r}")
    r.call("FLUSHALL", "SYNC")


def measure_memory(deploy, cell_deploy):
    """MEMORY USAGE per key (first, average), encoding, keyspace growth per key."""
    out = []
    paths = [("native", deploy.r, lambda k: ["CL.THROTTLE", k, *MEMORY_ARGS]),
             ("FCALL", deploy.r, lambda k: ["FCALL", "cl_throttle", "1", k, *MEMORY_ARGS])]
    if cell_deploy:
        paths.append((PEER, cell_deploy.r, lambda k: ["CL.THROTTLE", k, *MEMORY_ARGS]))
    for path, r, make in paths:
        r.call("FLUSHALL", "SYNC")
        before = int(r.info("memory")["used_memory"])
        keys = [f"peer:mem:{i:06d}" for i in range(B.MEMORY_KEYS)]
        replies = r.pipeline([make(k) for k in keys])
        if any(isinstance(x, B.ReplyError) for x in replies):
            raise RuntimeError(f"memory rows, {path}: error replies")
        after = int(r.info("memory")["used_memory"])
        usage = [x for x in r.pipeline([["MEMORY", "USAGE", k, "SAMPLES", "0"] for k in keys])]
        out.append(dict(path=path, args=" ".join(MEMORY_ARGS), first=usage[0],
                        avg=statistics.mean(usage),
                        encoding=r.call("OBJECT", "ENCODING", keys[0]).decode(),
                        value=r.call("GET", keys[0]).decode(),
                        growth=(after - before) / len(keys)))
        r.call("FLUSHALL", "SYNC")
    return out


def measure(module):
    """Everything the peer section reports (runs its own servers)."""
    started = time.monotonic()
    cell, skipped = build_peer()
    rows = cases(cell is not None)
    deployments = {}
    try:
        for config in CONFIGS:
            deployments[(config, "module")] = Deployment(module, config)
            load_twin(deployments[(config, "module")].primary.port)
            check_replies(deployments[(config, "module")].r, rows, "module")
            if cell:
                deployments[(config, "peer")] = Deployment(cell, config)
                check_replies(deployments[(config, "peer")].r, rows, "peer")
        memory = measure_memory(deployments[("bare", "module")],
                                deployments.get(("bare", "peer")))
        runs = run_rounds(deployments, rows)
        version = deployments[("bare", "module")].r.info("server")["redis_version"]
    finally:
        for d in deployments.values():
            d.cleanup()
    summary = {k: summarize(v) for k, v in runs.items()}
    return dict(rows=rows, runs=runs, summary=summary, memory=memory, skipped=skipped,
                cell=str(cell) if cell else None, version=version,
                runtime_s=time.monotonic() - started)


def run_rounds(deployments, rows):
    plan = [(config, row, p) for config in CONFIGS for row in rows for p in B.PIPELINES]

    def run(config, row, p, n):
        d = deployments[(config, row["server"])]
        res = B.run_benchmark(d.primary, d.r, row, n, p)
        if res["error_replies"]:
            raise RuntimeError(f"peer rows, {row['id']} {config}: error replies")
        return res
    B.log(f"peer rows: calibrating {len(plan)} measurements ...")
    sizes = {}
    for config, row, p in plan:
        rps = run(config, row, p, B.CALIBRATION_N[p])["rps"]
        sizes[(config, row["id"], p)] = B.sized(rps * SECONDS)
    runs = {k: [] for k in sizes}
    for rep in range(B.REPEATS):
        shift = rep % len(plan)
        for config, row, p in plan[shift:] + plan[:shift]:
            key = (config, row["id"], p)
            res = run(config, row, p, sizes[key])
            runs[key].append(res)
            B.log(f"  [{rep + 1}/{B.REPEATS}] {config:<10} -P {p:<2} {row['path']:<16} "
                  f"{row['command']:<15} {res['rps']:>12,.0f} ops/s")
    return runs


def summarize(rs):
    rps = [x["rps"] for x in rs]
    return dict(median=statistics.median(rps), best=max(rps), min=min(rps),
                cpu_us=statistics.median(x["server_cpu_us_per_op"] for x in rs),
                p50=statistics.median(x["latency_ms"].get("p50", 0) for x in rs),
                n=rs[0]["n"])


def ratio(peer, key_a, key_b, stat):
    a, b = peer["summary"].get(key_a), peer["summary"].get(key_b)
    return a[stat] / b[stat] if a and b else None


def chart(peer, path):
    """Grouped bars: every row, per configuration and pipelining (median, whisker to best)."""
    plt = B.plt
    rows = peer["rows"]
    groups = [(c, p) for c in CONFIGS for p in B.PIPELINES]
    colors = {"incr": "#888", "throttle": "#2a7ab0", "tokenbucket": "#5fa2d0", "twin": "#e08a2c",
              "peer": "#6a3d9a"}
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs, ys, hi = [], [], []
        for j, (c, p) in enumerate(groups):
            s = peer["summary"][(c, row["id"], p)]
            xs.append(j + (i - (len(rows) - 1) / 2) * width)
            ys.append(s["median"] / 1000)
            hi.append((s["best"] - s["median"]) / 1000)
        label = f"{row['path']} {row['command']}" if row["path"] != "INCR" else "INCR"
        bars = ax.bar(xs, ys, width, label=label, color=colors[row["id"]],
                      yerr=[[0] * len(hi), hi], capsize=2, error_kw=dict(lw=0.8, ecolor="#333"))
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:,.0f}", (b.get_x() + b.get_width() / 2, y), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{CONFIG_TEXT[c]}\n-P {p}" for c, p in groups], fontsize=8)
    ax.set_ylabel("thousand ops/s")
    ax.set_title(f"Against {PEER} (median of {B.REPEATS}, whisker: best)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(peer, add, chart_rel):
    """The report's section on the peer and the production configuration."""
    add("## Against the peer (redis-cell) and in production configuration")
    add("")
    if peer["skipped"]:
        add(f"The peer's rows were **{peer['skipped']}**; the module's rows below still ran.")
    else:
        add(f"The peer: {PEER}, built by bench/peer.py from `{TARBALL.name}` "
            "(`../shared/peers/`), `cargo build --release`; its module runs on a server of its "
            "own (it registers CL.THROTTLE too), started with the same settings as the "
            "module's.")
    add("")
    add("- **bare**: `--save \"\" --appendonly no`, as above. **production**: "
        "`--appendonly yes --appendfsync everysec` plus one replica attached (`--replicaof`, "
        "same module, no AOF of its own): each write is also appended to the AOF and streamed "
        "to the replica, which applies it (on the same 2 cores). Each deployment is its own "
        "set of processes; an AOF rewrite may fork during a run, as in production.")
    add(f"- `redis-benchmark -c {B.CLIENTS} -r {B.KEYSPACE} -P <16|1>`, N for about "
        f"{SECONDS:g} s, {B.REPEATS} rounds interleaved over every row of both "
        "configurations, FLUSHALL before each run, error replies checked (none); "
        "median and best run shown.")
    add(f"- Arguments: CL.THROTTLE `key {' '.join(THROTTLE_ARGS)}` on every path (burst 10^6, "
        "so every request is admitted and writes), RL.TOKENBUCKET `key 1000000 1 1000`.")
    add("")
    rows = peer["rows"]
    add("| Configuration | -P | " + " | ".join(
        f"{r['path']} {r['command']}" if r["path"] != "INCR" else "INCR" for r in rows)
        + " |")
    add("|---|---:|" + "---:|" * len(rows))
    for c in CONFIGS:
        for p in B.PIPELINES:
            cells = []
            for r in rows:
                s = peer["summary"][(c, r["id"], p)]
                cells.append(f"{B.fmt_rps(s['median'])} (best {B.fmt_rps(s['best'])})")
            add(f"| {CONFIG_TEXT[c]} | {p} | " + " | ".join(cells) + " |")
    add("")
    add(f"![Against the peer]({chart_rel})")
    add("")
    add(f"Ratios of medians (best runs in brackets); the target is ≥ {TARGET_VS_PEER}x the peer "
        "in both configurations, pipelined (-P 16), where the servers' work per command "
        "dominates:")
    add("")
    add("| Configuration | -P | native CL.THROTTLE / peer | target | native / INCR | "
        "peer / INCR | native / twin (FCALL) |")
    add("|---|---:|---:|:---:|---:|---:|---:|")
    verdicts = []
    for c in CONFIGS:
        for p in B.PIPELINES:
            vs_peer = ratio(peer, (c, "throttle", p), (c, "peer", p), "median")
            vs_peer_best = ratio(peer, (c, "throttle", p), (c, "peer", p), "best")
            if p == 16 and vs_peer is not None:
                met = vs_peer >= TARGET_VS_PEER
                verdicts.append(met)
                target = "met" if met else "**missed**"
            else:
                target = ""
            add(f"| {CONFIG_TEXT[c]} | {p} | "
                + (f"{vs_peer:.2f}x ({vs_peer_best:.2f}x)" if vs_peer else "skipped")
                + f" | {target} | "
                f"{B.fmt_ratio(ratio(peer, (c, 'throttle', p), (c, 'incr', p), 'median'))} | "
                + (B.fmt_ratio(ratio(peer, (c, 'peer', p), (c, 'incr', p), 'median'))
                   if vs_peer else "") + " | "
                f"{B.fmt_ratio(ratio(peer, (c, 'throttle', p), (c, 'twin', p), 'median'))} |")
    add("")
    if verdicts:
        add("Target ≥ 1.5x the peer: " + ("met in both configurations." if all(verdicts)
                                          else "**missed** (see the table)."))
        add("")
    add("Server CPU per request (µs, medians; the server process only, not its replica):")
    add("")
    add("| Configuration | -P | " + " | ".join(
        f"{r['path']} {r['command']}" if r["path"] != "INCR" else "INCR" for r in rows) + " |")
    add("|---|---:|" + "---:|" * len(rows))
    for c in CONFIGS:
        for p in B.PIPELINES:
            add(f"| {CONFIG_TEXT[c]} | {p} | " + " | ".join(
                f"{peer['summary'][(c, r['id'], p)]['cpu_us']:.2f}" for r in rows) + " |")
    add("")
    add("Memory per limiter key (1,000 keys of one `CL.THROTTLE key "
        f"{' '.join(MEMORY_ARGS)}` each, bare servers; `MEMORY USAGE key SAMPLES 0`; "
        "growth: `used_memory` after − before, ÷ 1,000):")
    add("")
    add("| Path | encoding | value (first key) | MEMORY USAGE (first) | (avg) | growth / key |")
    add("|---|---|---|---:|---:|---:|")
    for m in peer["memory"]:
        add(f"| {m['path']} | {m['encoding']} | `{m['value']}` | {m['first']} B | "
            f"{m['avg']:.1f} B | {m['growth']:.1f} B |")
    add("")
    by_path = {m["path"]: m for m in peer["memory"]}
    add(memory_verdict(by_path["native"], by_path["FCALL"]))
    add("")


def memory_verdict(native, twin):
    """The memory target's paragraph, from this run's rows for the module and the twin."""
    gap = native["avg"] - twin["avg"]
    verdict = "met" if gap <= 0 else f"**missed** (+{gap:.1f} B per key)"
    growth = native["growth"] - twin["growth"]
    return (
        f"Target, no limiter key larger than the twin's: {verdict}: MEMORY USAGE "
        f"{native['avg']:.1f} B per key natively against {twin['avg']:.1f} B for the twin "
        f"(encodings `{native['encoding']}` and `{twin['encoding']}`, values `{native['value']}` "
        f"and `{twin['value']}`). These arguments give a whole-millisecond state, which is the "
        "key's expiry: the value is the marker `0`, which the module writes by running "
        "`SET key 0 PXAT <t>` through `RedisModule_Call` when it creates the key, so the "
        "server encodes it as it encodes the twin's `SET`; later requests move only the "
        "expiry (`PEXPIREAT` replicated) and never read the value. Keyspace growth "
        f"was {native['growth']:.1f} B per key natively and {twin['growth']:.1f} B for the twin "
        f"({growth:+.1f} B): `used_memory` also counts the dictionaries' tables, which double "
        "in steps and are rehashed a step per command, so over 1,000 keys it depends on where "
        "a rehash stands, not on the keys' layout.")


if __name__ == "__main__":  # this section alone: python3 bench/peer.py
    data = measure(B.MODULE)
    chart(data, B.BENCH_DIR / "peer.png")
    out = []
    section(data, out.append, "bench/peer.png")
    print("\n".join(out))
