"""Where the bench finds things and how long it measures: paths, durations, sizes and targets
shared by every family (BENCH_* environment variables, see run.py).
"""

import os
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DIST = ROOT / "dist"
MODULE = Path(os.environ.get("PATTERNS_MODULE") or ROOT / "target/release/libredis_patterns.so")
HANDWRITTEN = BENCH_DIR / "handwritten_tokenbucket.lua"

# What one run covers: BENCH_ONLY=lock,cache runs those sections alone (the rate-limiting
# section's INCR ceiling included only with `ratelimit`); BENCH_QUICK=1 runs everything
# selected once, short (a smoke test of every row: its figures are not worth publishing).
SECTIONS = ("ratelimit", "session", "leaderboard", "cache", "lock", "queue", "seeds", "peer",
            "callgrind")
ONLY = [s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()]
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
if set(ONLY) - set(SECTIONS):
    sys.exit(f"BENCH_ONLY: unknown {', '.join(sorted(set(ONLY) - set(SECTIONS)))} "
             f"(sections: {', '.join(SECTIONS)})")


def selected(section):
    return not ONLY or section in ONLY


# A partial or quick run writes beside the build, never over the published report and chart.
PARTIAL = bool(ONLY) or QUICK
OUT_DIR = ROOT / "target/bench" if PARTIAL else BENCH_DIR
OUT = Path(os.environ.get("BENCH_OUT") or (OUT_DIR / "BENCHMARKS.md" if PARTIAL
                                           else ROOT / "BENCHMARKS.md"))
CHART = OUT_DIR / "throughput.png"
PEER_CHART = OUT_DIR / "peer.png"
RESULTS = OUT_DIR / "results.json"
# Analyses written by hand (profiles, layouts, worst cases): appended to every report.
ANALYSIS = BENCH_DIR / "analysis.md"
# Quick mode: one repeat, a fifth of each measurement's length, small calibration runs.
TIME_SCALE = 0.2 if QUICK else 1.0
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "1" if QUICK else "3"))
BUDGET = float(os.environ.get("BENCH_BUDGET", "300"))
CLIENTS = 50
KEYSPACE = 10000
PIPELINES = (16, 1)
CALIBRATION_N = {16: 10000, 1: 2000} if QUICK else {16: 20000, 1: 5000}  # rough rates only
if QUICK:  # the queue rows (cases/queue.py) read their own sizes
    os.environ.setdefault("BENCH_QUEUE_JOBS", "2000")
    os.environ.setdefault("BENCH_QUEUE_ROUNDS", "1")
MEMORY_KEYS = 1000
EXACT_FULL_LOG = 100  # requests per key for the "full log" EXACT memory row (= its limit)
MEMORY_PASSES = 3  # the used_memory growth is the median over passes (allocator noise, Lua GC)

# Targets (pipelined): native >= 0.75x INCR, native >= 4x its Lua twin (FCALL and EVALSHA).
TARGET_VS_INCR = 0.75
TARGET_VS_LUA = 4.0
PATHS = ("native", "FCALL", "EVALSHA")


def log(msg):
    print(msg, file=sys.stderr, flush=True)
