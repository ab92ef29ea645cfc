"""The report: BENCHMARKS.md (tables per family, targets, machine) and bench/throughput.png.
"""

import os
import platform
import statistics
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import callgrind  # noqa: E402  (bench/callgrind.py: instructions per request)
import seeds  # noqa: E402  (bench/seeds.py: the seeds' hand-written patterns)

from config import (  # noqa: E402
    ANALYSIS, CHART, CLIENTS, KEYSPACE, MEMORY_KEYS, MEMORY_PASSES, OUT, PATHS, PEER_CHART,
    PIPELINES, REPEATS, RESULTS, ROOT, SECONDS, TARGET_VS_INCR, TARGET_VS_LUA,
)
from cases.common import shown  # noqa: E402
from cases.ratelimit import COMMANDS  # noqa: E402
from cases.session import (  # noqa: E402
    CREATE_FRESH_KEYSPACE, CREATE_KEYSPACE, SESSIONS, SESSION_ABSOLUTE_MS, SESSION_FAMILIES,
    CAP, CAP_KEYSPACE, SESSION_IDLE_MS, SESSION_INDEXES, SESSION_SECONDS, TWIN_ID_PREFIX,
    session_index,
)
from cases.leaderboard import LB_MEMBERS, LB_SECONDS, LB_TIES  # noqa: E402
from cases.cache import CACHE_ENTRIES, CACHE_TTL_MS, CACHE_VALUE, MEMORY_GOAL  # noqa: E402
from cases.lock import (  # noqa: E402
    LOCKS_HELD, LOCK_FAMILIES, LOCK_HOLDS, LOCK_OWNER, LOCK_SECONDS,
)
from cases import queue as queue_bench  # noqa: E402


# The Caching section's ratios: (row family, label, baseline, issue 19's goal or None).
CACHE_RATIOS = [
    ("c_get", "GET", "c_plainget", 0.7),
    ("c_set_notag", "SET (no tag)", "c_plainset", 0.5),
    ("c_set", "SET (1 tag: two writes)", "c_plainset", None),
]


def write_cache(ctx, add):
    """The Caching section: what the rows run, their throughput, native ÷ twin ratios."""
    s = ctx["summary"]
    cases = ctx["cache_cases"]
    add("## Caching")
    add("")
    add(f"Same method as the rate-limiting rows. Before every GET row, {CACHE_ENTRIES:,} entries "
        f"`cache:{{<i>}}` ({len(CACHE_VALUE)}-byte values, TTL {CACHE_TTL_MS} ms) are set "
        "natively, outside the timing; `BETA 0` turns XFetch off so every reply is a HIT, and "
        "the twin reads the same entries. SET rows write one tag per entry (two writes: the "
        "entry and the tag's set), except the native `CACHE.SET (no tag)` row (one write, as "
        "`SET ... PX` makes).")
    add("")
    add("| Path | Command line | -r |")
    add("|---|---|---:|")
    for c in cases:
        add(f"| {c['path']} | `{shown(c)}` | {c['keyspace']:,} |")
    add("")
    add_throughput_sections(add, "Caching", cases, s)
    add("Native ops/s ÷ the twin's and ÷ the plain-Redis baseline's (GET of a `SET ... PX` value "
        "for GET, SET ... PX for SET), against issue 19's goals (pipelined: the server's work per "
        "request). The SET goal is held by the row without a tag, one write like its baseline; "
        "the tagged row makes two writes where the baseline makes one, so it is shown, not "
        "held to the goal:")
    add("")
    add("| Command | -P | ÷ FCALL | ÷ EVALSHA | ÷ baseline | goal |")
    add("|---|---:|---:|---:|---:|---|")
    for fam, label, baseline, goal in CACHE_RATIOS:
        for p in PIPELINES:
            nat = s[(f"{fam}:native", p)]["rps"]
            vs = nat / s[(baseline, p)]["rps"]
            held = p > 1 and goal
            verdict = (f"≥ {goal}x: " + ("met" if vs >= goal else "missed")) if held else ""
            twins = [s.get((f"{fam}:{path}", p)) for path in ("fcall", "evalsha")]
            fcall, evalsha = (f"{nat / t['rps']:.2f}x" if t else "—" for t in twins)
            add(f"| {label} | {p} | {fcall} | {evalsha} | {vs:.2f}x | {verdict} |")
    add("")
    figures = ctx.get("cache_callgrind")
    if figures and "failed" in figures:
        figures = None  # the rate-limiting section reports the failure
    if figures:
        add("Instructions per request under callgrind (bench/callgrind.py, the rate-limiting "
            "section's method, load-independent), 100-byte values, every key written first:")
        add("")
        for line in callgrind.table(figures):
            add(line)
        add("")
        for cmd, plain, goal in (("cache_get", "get", 0.7), ("cache_set", "set_px", 0.5)):
            x = figures[plain]["total"] / figures[cmd]["total"]
            add(f"- {figures[cmd]['command'].split()[0]} ÷ {figures[plain]['command'].split()[0]}, "
                f"by instructions: {x:.2f}x (goal ≥ {goal}x: {'met' if x >= goal else 'missed'})")
        add("")
    if not ctx.get("cache_memory"):
        return
    add("Memory of one entry (`MEMORY USAGE`) against `SET ... PX` of the same value:")
    add("")
    add("| value | SET ... PX | CACHE.SET | ratio | goal |")
    add("|---:|---:|---:|---:|---|")
    for size, (plain, ours) in ctx["cache_memory"].items():
        verdict = "met" if ours / plain <= MEMORY_GOAL else "missed"
        add(f"| {size:,} B | {plain:,} B | {ours:,} B | {ours / plain:.2f}x | "
            f"≤ {MEMORY_GOAL}x: {verdict} |")
    add("")
    add("Worst case: one `CACHE.INVALIDATE` of a tag listing every entry, the server's time for "
        "the call (`INFO commandstats`); the server serves nothing else meanwhile:")
    add("")
    add("| keys listed | blocked |")
    add("|---:|---:|")
    for n, ms in ctx["cache_invalidate"].items():
        add(f"| {n:,} | {ms:.1f} ms |")
    add("")


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


def chart(summary, cases, session_cases):
    fams = [(cid, name) for cid, name, *_ in COMMANDS]
    colors = {"native": "#2a7ab0", "FCALL": "#e08a2c", "EVALSHA": "#c44e52"}
    fig, grid = plt.subplots(2, 2, figsize=(18, 9.5), gridspec_kw=dict(width_ratios=[11, 8]))
    chart_sessions(summary, grid[:, 1], colors)
    axes = grid[:, 0]
    for ax, pipeline in zip(axes, PIPELINES):
        path_bars(ax, summary, fams, pipeline, colors)
        incr = summary[("incr", pipeline)]["rps"] / 1000
        hw = summary[("handwritten", pipeline)]["rps"] / 1000
        ax.axhline(incr, color="#333", ls="--", lw=1, label=f"INCR (ceiling) {incr:,.0f}k")
        if pipeline == 16:
            ax.axhline(incr * TARGET_VS_INCR, color="#666", ls=":", lw=1,
                       label=f"target {TARGET_VS_INCR}x INCR")
        ax.axhline(hw, color="#6a3d9a", ls="-.", lw=1,
                   label=f"hand-written Lua token bucket {hw:,.0f}k")
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


def path_bars(ax, summary, fams, pipeline, colors):
    """Bars of thousand ops/s, one per path (native, FCALL, EVALSHA) for each (id, name) of
    `fams`: the median, min–max as error bars, the median written above. Returns the highest
    max."""
    width = 0.26
    top = 0
    for i, path in enumerate(PATHS):
        xs, ys, lo, hi = [], [], [], []
        for j, (fam, _) in enumerate(fams):
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
    ax.set_xticks(range(len(fams)))
    ax.set_xticklabels([n for _, n in fams])
    ax.set_ylabel("thousand ops/s")
    return top


def chart_sessions(summary, axes, colors):
    for ax, pipeline in zip(axes, PIPELINES):
        top = path_bars(ax, summary, SESSION_FAMILIES, pipeline, colors)
        hg = summary[("s_hgetall", pipeline)]["rps"] / 1000
        c10 = summary[("s_create10k:native", pipeline)]["rps"] / 1000
        ax.axhline(hg, color="#333", ls="--", lw=1, label=f"HGETALL of a 3-field hash {hg:,.0f}k")
        ax.axhline(c10, color="#2a7ab0", ls=":", lw=1,
                   label=f"native CREATE, 10k indexes {c10:,.0f}k")
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
    if "failed" in figures:
        add(f"(**Failed** in this run: `{figures['failed']}`.)")
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
  the argument vector. The module passes each argument in the form the server reads: the key
  as the caller's own string and `PXAT` as a string made once at first use and kept (a
  `Token`, passed by reference: a reference count instead of an object made and freed per
  call), the value and the time as C strings (the time as text rather than a long long,
  whose int-encoded object the AOF feed decodes into a new string on every write: see
  "CL.THROTTLE in production" in the analysis below). Keeping `PXAT` took about 300
  instructions off each request (by hand, 2026-12-02, this script on both builds:
  RL.TOKENBUCKET 14,113 → 13,811, CL.THROTTLE 13,997 → 13,725; argument objects 1,436 →
  1,261). The command name cannot be kept: `RM_Replicate` makes `argv[0]` from the C name
  and looks it up on every call, whatever the caller passes.
- Other ways to replicate, measured the same way and rejected: `RM_Call("SET", "!...")`, which
  writes, int-encodes the value and replicates in one call, costs about 6,000 more
  instructions per request than the key API plus `RM_Replicate` (SET's own parsing, its
  argument rewrite for propagation, the call machinery; and the next read of an int-encoded
  value through `RM_StringDMA` first converts it to a raw string); `RM_ReplicateVerbatim`,
  what redis-cell does, is not exact: the replica runs CL.THROTTLE again with its own clock.
- The reply (an array of 5 integers) goes through one module API call per element.
- The `INFO patterns` counters (issue 13's limit: no command more than 1% slower): a bump is
  one load and one store. Measured by hand (2026-12-02) with this script on two builds, the
  counters in and compiled out, as the self cost of each command's body: RL.TOKENBUCKET 339 →
  343 instructions per request, CL.THROTTLE 400 → 405, RL.SLIDINGWINDOW 449 → 453, so about
  0.03% of a request (RL.FIXEDWINDOW's body varied more than that between runs with its
  windows' turnover). The whole-request totals differ between runs by up to 2% for reasons
  of their own (hash tables resizing, keys expiring), so the body's self cost is the figure
  that shows the counters.
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
        "run, after its `FLUSHALL` and outside the timing, the bench creates "
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
    add("- **The seeds' read**: `HGETALL`, then `PEXPIRE` of the same hash (two calls per "
        "request, what the hand-written session code sends); its rate per request is "
        "1 / (1 / HGETALL's + 1 / PEXPIRE's). Issue 19's goal: `SESSION.GET` at least 0.7x.")
    add(f"- **CREATE MAX {CAP}**: `SESSION.CREATE sessions:{{m__rand_int__}} MAX {CAP} ...` over "
        f"{CAP_KEYSPACE:,} indexes: once an index holds {CAP} sessions, every create also "
        "destroys its least recently used one.")
    add("")
    add("The session binding reads a session with `RedisModule_ScanKey` (a hash stored as a "
        "listpack, which small sessions are; `HGETALL` through `RedisModule_Call` otherwise), "
        "slides its TTL, prunes its index and fixes the index's TTL through the module's key "
        "API, replicating each change as the command that makes it; HSET, RENAME, a single "
        "DEL and ZREM run as Redis commands through `RedisModule_Call`. The Lua twin runs the "
        "same steps through `redis.call`. The rate-limit targets above do not apply to this "
        "family.")
    add("")
    add("Chart: the right half of `bench/throughput.png` (above).")
    add("")
    add_command_lines(add, cases, s, lambda c: f"{c['keyspace']:,}"
                      if any("__rand_int__" in a for a in c["argv"]) else "—")
    add("")
    add_throughput_sections(add, "Sessions", cases, s)
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
    add_twin_ratio_table(add, SESSION_FAMILIES, sr, [("native / HGETALL", "hgetall")])
    add("")
    write_session_goals(ctx, add)
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


def write_session_goals(ctx, add):
    """SESSION.GET against the seeds' two-call read (issue 19), its instructions per request,
    and SESSION.DESTROYALL's worst case (issue 11)."""
    sr = ctx["session_ratios"]
    add("### Sessions, goals and worst case")
    add("")
    add("| Goal | Mode | measured | goal | |")
    add("|---|---|---:|---:|---|")
    for p in PIPELINES:
        x = sr[("s_get", p)]["seeds_read"]
        add(f"| `SESSION.GET` ÷ the seeds' `HGETALL` + `PEXPIRE` per request | -P {p} | "
            f"{fmt_ratio(x)} | ≥ 0.7x | {'met' if x >= 0.7 else 'missed'} |")
    figures = ctx.get("session_callgrind")
    if figures and "failed" in figures:
        figures = None  # the rate-limiting section reports the failure
    if figures:
        seeds = figures["hgetall"]["total"] + figures["pexpire"]["total"]
        x = seeds / figures["session_get"]["total"]
        add(f"| the same, instructions per request (callgrind, below) | -P 16 | "
            f"{fmt_ratio(x)} | ≥ 0.7x | {'met' if x >= 0.7 else 'missed'} |")
    add("")
    if figures:
        add("Instructions per request under callgrind (bench/callgrind.py: the same method as "
            "the rate-limiting section's, load-independent) on one 3-field session, written in "
            "the documented layout so `redis-benchmark` can name it:")
        add("")
        for line in callgrind.table(figures):
            add(line)
        add("")
    d = ctx["session_memory"]["destroyall"]
    add(f"`SESSION.DESTROYALL` of one index of {d['sessions']:,} sessions (3 fields each), "
        f"the server's time for the command from `SLOWLOG` ({len(d['us'])} rounds): "
        f"{min(d['us']) / 1000:,.0f}–{max(d['us']) / 1000:,.0f} ms, "
        f"{min(d['us']) * 1000 / d['sessions']:,.0f}–{max(d['us']) * 1000 / d['sessions']:,.0f}"
        " ns per session. This is the command's worst case, and it grows with the index: see "
        "README (Sessions) for why it is not cut into steps.")
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
        f"new score groups updated). `LB.RANK` and `LB.TOP 10` on the plain `ZADD` board "
        f"(\"native, plain board\") compare with `ZREVRANK` and `ZREVRANGE 0 9 WITHSCORES` on "
        f"the same board (issue 20's goal: at least 0.5x). `-r {LB_MEMBERS}`.")
    add("")
    for p in PIPELINES:
        add(f"### Leaderboards, -P {p}")
        add("")
        add_throughput_table(add, ctx["lb_cases"], s, p)
        add("")
    add("### Leaderboards, worst cases")
    add("")
    add("One call each on a board built with plain `ZADD` (then, for the reads, stamped members "
        "added by `LB.ADD` with names between the others'), timed by the server itself "
        "(`SLOWLOG`, the whole command; reads: the slowest of 3). Before issue 11, the first "
        "`LB.ADD` recorded every member (11.4 s on 1,000,000 members on this machine under "
        "load, 2.3 s in the issue); it now records only what it writes.")
    add("")
    add("| Board | Command | server µs |")
    add("|---|---|---:|")
    for what, command, us in ctx.get("lb_worst") or []:
        add(f"| {what} | {command} | {us:,} |")
    add("")
    write_lb_callgrind(ctx, add)


# Issue 20's goals, by instructions per request: (ours, the seeds' command, goal).
LB_GOALS = [("lb_rank", "zrevrank", 0.5), ("lb_top", "zrevrange", 0.5),
            ("lb_page", "zrevrange_page", 0.5), ("lb_around", ("zrevrank", "zrevrange_page"), 0.5),
            ("lb_add", "zadd", 0.3), ("lb_incr", "zincrby", 0.3), ("lb_rank_tb", "zrevrank", 0.3),
            ("lb_top_tb", "zrevrange", 0.3)]


def write_lb_callgrind(ctx, add):
    """The leaderboards' callgrind rows and issue 20's goals by instructions per request."""
    figures = ctx.get("lb_callgrind")
    if not figures or "failed" in figures:
        return
    add("### Leaderboards, instructions per request")
    add("")
    add("Under callgrind (bench/callgrind.py, the rate-limiting section's method, "
        "load-independent): boards of 10,000 members, 10 per score, written by `ZADD` (plain) "
        "or `LB.ADD` (`p:lb:tb`, the tie-break board); writes move random members to random "
        "scores.")
    add("")
    for line in callgrind.table(figures):
        add(line)
    add("")
    for ours, seeds, goal in LB_GOALS:
        seeds = seeds if isinstance(seeds, tuple) else (seeds,)
        if ours not in figures or any(s not in figures for s in seeds):
            continue
        x = sum(figures[s]["total"] for s in seeds) / figures[ours]["total"]
        names = " + ".join(figures[s]["command"].split()[0] for s in seeds)
        add(f"- `{figures[ours]['command']}` against {names}: {x:.2f}x "
            f"(goal ≥ {goal}x: {'met' if x >= goal else 'missed'})")
    add("")


def path_ratios(summary, fam, p):
    """How much faster native is than each twin path, and how much more server CPU per op each
    twin path takes, for one family's rows at pipeline `p`."""
    nat = summary[(f"{fam}:native", p)]
    fc, ev = summary[(f"{fam}:fcall", p)], summary[(f"{fam}:evalsha", p)]
    return dict(
        fcall=nat["rps"] / fc["rps"], evalsha=nat["rps"] / ev["rps"],
        cpu_fcall=fc["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
        cpu_evalsha=ev["cpu_us"] / nat["cpu_us"] if nat["cpu_us"] else None,
    )


def lock_ratios_of(summary):
    """Per lock row and mode: native vs the twin, and the ACQUIRE+RELEASE cycle (a grant plus a
    release: cycles/s = 1 / (1/grants/s + 1/releases/s)) per path."""
    out = {}
    for fam, _ in LOCK_FAMILIES:
        for p in PIPELINES:
            out[(fam, p)] = path_ratios(summary, fam, p)
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
        f"timing, the bench sets up {LOCKS_HELD:,} locks `lock:{{<i>}}` held by `{LOCK_OWNER}` "
        f"with {LOCK_HOLDS:,} holds each (`<i>` with 12 digits, as redis-benchmark writes "
        f"`__rand_int__`); every request drops one hold (`-r {LOCKS_HELD}`). A release that "
        "frees the lock (`DEL`, then serving any waiters) is not measured on its own.")
    add("- **Re-entry** (`LOCK.ACQUIRE` by the holder of those locks): one more hold and a fresh "
        "TTL per request.")
    add("- **Read hold** (`RWLOCK.ACQUIRE ... READ` of a free read/write lock): "
        f"`rw:{{g__rand_int__}}` with `-r {CREATE_FRESH_KEYSPACE}`; it checks the write hold "
        "and the fencing counter, prunes the read holds and adds one with the set's expiry.")
    add("- **Cycle**: a grant plus a release, cycles/s = 1 / (1 / grants/s + 1 / releases/s), "
        "derived from the medians (not measured as one command). Waiting (`WAIT`) is not "
        "benchmarked: a blocked client's time is the holder's.")
    add("")
    add_command_lines(add, cases, s)
    add("")
    add_throughput_sections(add, "Locks", cases, s)
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
    add_twin_ratio_table(add, LOCK_FAMILIES, lr)
    add("")


# The twin-ratio columns: (title, key in a family's ratios).
TWIN_RATIOS = [
    ("native / FCALL", "fcall"),
    ("native / EVALSHA", "evalsha"),
    ("server CPU, FCALL / native", "cpu_fcall"),
    ("server CPU, EVALSHA / native", "cpu_evalsha"),
]


def add_twin_ratio_table(add, families, ratios, extra=()):
    """The table of native ops/s ÷ the twin's and the twin's server CPU ÷ the native
    command's, a row per (family, pipelining mode); `extra`: more (title, key) columns."""
    columns = TWIN_RATIOS + list(extra)
    add("| Command | Mode | " + " | ".join(title for title, _ in columns) + " |")
    add("|---|---|" + "---:|" * len(columns))
    for fam, name in families:
        for pipeline in PIPELINES:
            x = ratios[(fam, pipeline)]
            cells = " | ".join(fmt_ratio(x[key]) for _, key in columns)
            add(f"| {name} | -P {pipeline} | {cells} |")


def add_command_lines(add, cases, s, keyspace=lambda c: f"{c['keyspace']:,}"):
    """The table of each row's command line, its -r (`keyspace`) and its N per mode."""
    add("| Path | Command line | -r | N (-P 16) | N (-P 1) |")
    add("|---|---|---:|---:|---:|")
    for c in cases:
        add(f"| {c['path']} | `{shown(c)}` | {keyspace(c)} | {s[(c['id'], 16)]['n']:,} | "
            f"{s[(c['id'], 1)]['n']:,} |")


def add_throughput_sections(add, family, cases, s):
    """A `### <family>, <mode>` section with its throughput table per pipelining mode."""
    for pipeline in PIPELINES:
        mode = "pipelined (-P 16)" if pipeline > 1 else "unpipelined (-P 1)"
        add(f"### {family}, {mode}")
        add("")
        add_throughput_table(add, cases, s, pipeline)
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


def write_rate_limiting(ctx, add):
    """The rate-limiting section: commands, targets, callgrind, throughput, ratios, memory."""
    s = ctx["summary"]
    cases = ctx["cases"]
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
            add(f"![Throughput per command and path]({os.path.relpath(CHART, OUT.parent)})")
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


def write_rate_limiting_notes(ctx, add):
    """Notes on the rate-limiting rows: admission, churn, CPU shares, noise."""
    s = ctx["summary"]
    cases = ctx["cases"]
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


def write_report(ctx):
    cases = ctx["cases"]
    m = ctx["machine"]
    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(f"Generated by `make bench` (`bench/run.py`) on {ctx['date']}; every number here comes "
        f"from that run (total {ctx['runtime_s'] / 60:.1f} min). Rerun `make bench` to refresh.")
    add("")
    add("One part: `BENCH_ONLY=<sections> make bench`, sections among `ratelimit`, `session`, "
        "`leaderboard`, `cache`, `lock`, `queue`, `seeds`, `peer`, `callgrind` "
        "(comma-separated); a quick check that every row runs (each once, a fifth of the "
        "length): `BENCH_QUICK=1 make bench`. Both write `target/bench/BENCHMARKS.md`, never this file. More settings: "
        "`bench/run.py`'s docstring.")
    add("")
    if ctx["partial"]:
        add(f"**A partial run** (`BENCH_ONLY={','.join(ctx['only']) or '(all)'}`, "
            f"`BENCH_QUICK={int(ctx['quick'])}`): only the sections selected"
            + (", each measured once and briefly: a check that every row runs, not figures "
               "to publish" if ctx["quick"] else "") + ".")
        add("")
    add("## Setup")
    add("")
    add(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB RAM, "
        f"Linux {m['kernel']} {m['arch']}. Load average (1/5/15 min) at start "
        f"{' / '.join(ctx['load_start'])}, at end {' / '.join(ctx['load_end'])}. "
        "The machine is shared: server, client and neighbours compete for the same cores.")
    add(f"- Server: redis-server {ctx['server_version']} started by bench/run.py: "
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
    if cases:
        write_rate_limiting(ctx, add)
    elif ctx["callgrind"]:
        where_the_time_goes(ctx, add)
        add("")
    if ctx["session_cases"]:
        write_sessions(ctx, add)
    if ctx["lb_cases"]:
        write_leaderboards(ctx, add)
    if ctx["cache_cases"]:
        write_cache(ctx, add)
    if ctx["lock_cases"]:
        write_locks(ctx, add)
    import peer  # bench/peer.py imports this file: loaded once this one is
    for name, data, write in (
            ("queues", ctx["queue"], queue_bench.section),
            ("the seeds' hand-written patterns", ctx["seeds"], seeds.section),
            ("the peer (redis-cell) and the production configuration", ctx["peer"],
             lambda d, a: peer.section(d, a, os.path.relpath(PEER_CHART, OUT.parent)))):
        if data and "failed" in data:
            add(f"## Against {name}")
            add("")
            add(f"**Failed** in this run: `{data['failed']}`.")
            add("")
        elif data:
            write(data, add)
    # The analyses written by hand while the work was done (profiles, layouts, worst cases):
    # kept in their own file so a rerun does not lose them.
    add(ANALYSIS.read_text().rstrip("\n"))
    add("")
    add("## Notes")
    add("")
    if cases:
        write_rate_limiting_notes(ctx, add)
    add("- Raw runs (every repetition, all latency columns): "
        f"`{os.path.relpath(RESULTS, ROOT)}`.")
    add("")
    OUT.write_text("\n".join(lines))
